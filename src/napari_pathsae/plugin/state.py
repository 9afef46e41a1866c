"""Per-viewer state the panels share: the engine session, the selected features, and signals to follow."""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QEvent, QObject, QThreadPool, QTimer, Signal

from ..names import LayerKind, layer_kind
from .gc_freeze import thaw, thaw_before_removals
from .gl_context import guard_layer_removal
from .warm_up import warm_up_once

if TYPE_CHECKING:  # the engine (torch) loads when a model does, not when a panel opens
    from ..engine.session import ExplorerSession

log = logging.getLogger(__name__)
#: Closing the window waits this long for background jobs (a cancelled training ends within 50 steps).
BACKGROUND_WAIT_MS = 60_000


class ExplorerState(QObject):
    """One per viewer; panels hold it, so state survives layers being switched or removed."""

    session_changed = Signal()
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
        with contextlib.suppress(AttributeError):  # label-map legends stack as lines at the top left
            viewer.canvas.overlay_tiling.top_left = "vertical"

    def set_session(self, session: ExplorerSession) -> None:
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
            worker = self.worker
            for signal in (worker.computed, worker.whole_slide_progress, worker.failed, worker.stopped):
                with contextlib.suppress(TypeError, RuntimeError):  # nothing connected
                    signal.disconnect()
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
