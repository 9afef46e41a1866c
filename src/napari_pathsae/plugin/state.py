"""Per-viewer state the panels share: the engine session, the selected features, and signals to follow."""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QEvent, QObject, QThreadPool, QTimer, Signal

from ..names import LayerKind, layer_kind
from .background import run_in_background
from .gc_freeze import MADE_AFTER_THE_FREEZE, thaw, thaw_before_removals
from .gl_context import guard_layer_removal
from .warm_up import warm_up_once

if TYPE_CHECKING:  # the engine (torch) loads when a model does, not when a panel opens
    from ..engine.session import ExplorerSession

log = logging.getLogger(__name__)
#: Closing the window waits this long for background jobs (a cancelled training ends within 50 steps).
BACKGROUND_WAIT_MS = 60_000


class ExplorerState(QObject):
    """One per viewer; panels hold it, so state survives layers being switched or removed."""

    session_changed = Signal()  # a session loaded, or None: unloaded as its slide layer was removed
    tiles_computed = Signal(object)  # np.ndarray of tile indices just computed
    whole_slide_progress = Signal(int, int)  # done, total of the whole-slide run
    worker_stopped = Signal(object)  # WorkerStopped: the inference process is gone (restart_worker starts one)
    selection_changed = Signal(object)  # list[int] of selected features
    current_changed = Signal(object)  # int | None: the feature the dashboard and spots panel follow
    correlations_changed = Signal()
    labels_changed = Signal()
    concepts_changed = Signal()

    def __init__(self, viewer):
        super().__init__()
        self.viewer = viewer
        self.session: ExplorerSession | None = None
        self.selected: list[int] = []
        self.current: int | None = None
        self.concepts = None  # exploration.Concepts shown as a Labels layer
        self.worker = None  # the ViewportWorker, made with the session
        self.cancel_training = threading.Event()  # checked by training at each progress report
        self._closed = False
        self._window_open = True  # False from the window's Close event: nothing more reaches the panels
        from .painter import HeatmapPainter

        self.painter = HeatmapPainter(self)
        viewer.layers.events.removed.connect(self._layer_removed)
        self._leftovers: list = []  # an unloaded session's layers, removed one per turn
        self._drop_soon = QTimer(self)
        self._drop_soon.setSingleShot(True)
        self._drop_soon.timeout.connect(self._drop_leftover)
        with contextlib.suppress(AttributeError):  # label-map legends stack as lines at the top left
            viewer.canvas.overlay_tiling.top_left = "vertical"

    def set_session(self, session: ExplorerSession) -> None:
        while self._leftovers:  # an unloaded session's layers still there go first (they share names)
            self._drop_leftover()
        self._drop_soon.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.session is not None:
            self.concepts = None
            self.painter.paint([])  # the previous SAE's heatmaps and concepts go with it
            self.painter.settle_now()
            self.painter.paint_concepts()
            if self.session is not session:
                self.session.close()
        self.session = session
        self.selected, self.current, self.concepts = [], None, None
        self.painter.paint([])
        from .viewport_worker import ViewportWorker

        self.worker = ViewportWorker(self)
        self.worker.whole_slide_progress.connect(self.notify_progress)
        self.worker.stopped.connect(self.notify_stopped)
        self.session_changed.emit()

    def _shows_the_session_slide_only(self, layer) -> bool:
        """Whether ``layer`` is the last slide layer showing the session's file (another slide's removal, as
        the Cohort panel swaps slides after loading the new session, is not)."""
        if self.session is None or not self._window_open or layer_kind(layer) != LayerKind.SLIDE:
            return False
        shown = _same_file(self.session.computer.slide.path)
        if shown is None or _same_file(layer.metadata["pathsae"].get("path")) != shown:
            return False
        others = [other for other in self.viewer.layers if other is not layer and layer_kind(other) == LayerKind.SLIDE]
        return not any(_same_file(other.metadata["pathsae"].get("path")) == shown for other in others)

    def _layer_removed(self, event) -> None:
        """The session's slide layer removed: the model is unloaded, so nothing goes on computing a slide that
        is not on screen and the panels say what is."""
        if self._shows_the_session_slide_only(event.value):
            self.unload()

    def unload(self) -> None:
        """Close the session: the exploration on screen is saved beside the store (the next Load restores it),
        training is cancelled, the worker stops and the session closes off the UI thread, and its heatmaps,
        concepts and argmax map are removed, one per event-loop turn."""
        from .exploration_io import save

        session = self.session
        if session is None:
            return
        shown = {LayerKind.HEATMAPS, LayerKind.HEATMAP, LayerKind.CONCEPTS, LayerKind.REGION}
        if session.n_features and any(layer_kind(layer) in shown for layer in self.viewer.layers):
            try:
                save(self)
            except Exception:  # unloading goes on; the last save is kept
                log.warning("pathsae: the exploration could not be saved", exc_info=True)
        self.cancel_training.set()
        # the layers a session paints (gc_freeze.py's list) go with it
        self._leftovers += [layer for kind in MADE_AFTER_THE_FREEZE for layer in self.painter.layers_of(kind)]
        self.painter.forget()
        worker, self.worker = self.worker, None
        if worker is not None:
            _disconnect(worker)
        run_in_background(_stop_and_close, worker, session)  # the batch in flight is written first
        self.session, self.selected, self.current, self.concepts = None, [], None, None
        self.session_changed.emit()
        self.current_changed.emit(None)
        self._drop_soon.start(0)

    def _drop_leftover(self) -> None:
        """One layer of an unloaded session removed, then the next on the next turn (napari collects garbage
        for each: 0.44-0.61 s on the EPYC, so all at once froze the window 4.8 s)."""
        while self._leftovers:
            layer = self._leftovers.pop()
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
                self._drop_soon.start(0)
                return

    def select(self, features: list[int], current: int | None = None) -> None:
        """Paint exactly ``features``; the current one is ``current``, else the one just added, else kept."""
        before = set(self.selected)
        self.selected = [int(f) for f in features]
        if current is None:
            added = [f for f in self.selected if f not in before]
            current = added[-1] if added else (self.current if self.current in self.selected else None)
            if current is None and self.selected:
                current = self.selected[0]
        self.selection_changed.emit(self.selected)
        self.set_current(current)

    def set_current(self, feature: int | None) -> None:
        changed = feature != self.current
        self.current = None if feature is None else int(feature)
        if changed:
            self.current_changed.emit(self.current)

    def set_concepts(self, concepts) -> None:
        """Show these concepts (an exploration.Concepts) as the concepts layer."""
        self.concepts = concepts
        self.painter.paint_concepts()
        self.concepts_changed.emit()

    @property
    def window_open(self) -> bool:
        """False from the window's Close event on: nothing more is painted or reaches the panels."""
        return self._window_open

    def notify_computed(self, indices: np.ndarray) -> None:
        if self._window_open:
            self.tiles_computed.emit(indices)

    def notify_progress(self, done: int, total: int) -> None:
        if self._window_open:
            self.whole_slide_progress.emit(done, total)

    def notify_stopped(self, exc: Exception) -> None:
        if self._window_open:
            self.worker_stopped.emit(exc)

    def close(self) -> None:
        """Stop the worker (after its batch in flight) and background jobs, and close the session."""
        if self._closed:
            return
        thaw()
        self.cancel_training.set()
        if self.worker is not None:
            self.worker.stop()
            _disconnect(self.worker)
        # background jobs (training stops at its next step) end before their Qt signals are deleted
        QThreadPool.globalInstance().waitForDone(BACKGROUND_WAIT_MS)
        if self.session is not None:
            self.session.close()
        self._closed = True

    def save_on_close(self) -> None:
        """The exploration survives closing the window (saved beside the store; a failure is only logged).

        Skipped once napari has emptied the viewer (``Viewer.close()`` removes the layers before the
        window closes): an empty viewer would overwrite the exploration saved by the user."""
        from .exploration_io import save

        if self.session is None or not self.session.n_features or self._closed:
            return
        if not any(layer_kind(layer) == LayerKind.SLIDE for layer in self.viewer.layers):
            return

        try:
            save(self)
        except Exception:  # closing must go on whatever happens
            log.warning("pathsae: the exploration could not be saved", exc_info=True)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            thaw()  # the window's objects, frozen with the libraries, are garbage soon
            self.save_on_close()  # the layers are still there (a window closed by the user)
            self._window_open = False  # the panels may be deleted before the worker stops
            QTimer.singleShot(0, self._close_if_window_closed)  # napari may still ask "close?" and be told no
        return False

    def _close_if_window_closed(self) -> None:
        try:
            still_open = main_window(self.viewer).isVisible()
        except (AttributeError, RuntimeError):  # the window is gone
            still_open = False
        self._window_open = still_open
        if still_open:  # napari asked "close?" and was told no
            self.painter.resume()
        else:
            self.close()


def _disconnect(worker) -> None:
    """Nothing more from ``worker`` reaches the panels."""
    for signal in (worker.computed, worker.whole_slide_progress, worker.failed, worker.stopped):
        with contextlib.suppress(TypeError, RuntimeError):  # nothing connected
            signal.disconnect()


def _stop_and_close(worker, session) -> None:
    """Off the UI thread: the viewport thread ends after its batch in flight, then the session (its worker
    process, its slide) closes."""
    if worker is not None:
        worker.stop()
    session.close()


def _same_file(path) -> Path | None:
    """``path`` resolved, to compare two names of one file (None for none)."""
    return None if not path else Path(path).resolve()


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def state_for(viewer) -> ExplorerState:
    """The viewer's shared state (made on first use)."""
    state = _STATES.get(viewer)
    if state is None:
        state = _STATES[viewer] = ExplorerState(viewer)
        guard_layer_removal(viewer)
        thaw_before_removals(viewer)
        # closing the window mid-inference stops the worker before the panels are deleted (napari
        # offers no public close event, so the main window's Close event is watched)
        window = main_window(viewer)
        if window is not None:
            window.installEventFilter(state)
        warm_up_once()  # the engine imported, napari's Shapes compiled, before the first clicks need them
    return state


def main_window(viewer):
    """napari's QMainWindow (None without one). napari offers no public handle and warns on the private
    one; its Close event is the only place where the layers are still there when the user closes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return getattr(getattr(viewer, "window", None), "_qt_window", None)
