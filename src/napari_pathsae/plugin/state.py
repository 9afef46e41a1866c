"""Per-viewer state the panels share: the engine session, the selected features, and signals to follow."""

from __future__ import annotations

import contextlib
import weakref

import numpy as np
from qtpy.QtCore import QEvent, QObject, Signal

from ..session import ExplorerSession


class ExplorerState(QObject):
    """One per viewer; panels hold it, so state survives layers being switched or removed."""

    session_changed = Signal()
    tiles_computed = Signal(object)  # np.ndarray of tile indices just computed
    selection_changed = Signal(object)  # list[int] of selected features
    correlations_changed = Signal()
    labels_changed = Signal()

    def __init__(self, viewer):
        super().__init__()
        self.viewer = viewer
        self.session: ExplorerSession | None = None
        self.selected: list[int] = []
        self.worker = None  # the ViewportWorker, made with the session
        from .painter import HeatmapPainter

        self.painter = HeatmapPainter(self)

    def set_session(self, session: ExplorerSession) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.session is not None and self.session is not session:
            self.session.close()
        self.session = session
        self.selected = []
        self.painter.paint([])
        from .viewport_worker import ViewportWorker

        self.worker = ViewportWorker(self)
        self.session_changed.emit()

    def select(self, features: list[int]) -> None:
        self.selected = [int(f) for f in features]
        self.selection_changed.emit(self.selected)

    def notify_computed(self, indices: np.ndarray) -> None:
        self.tiles_computed.emit(indices)

    def close(self) -> None:
        """Stop the worker (after its batch in flight) and close the session; nothing more reaches the panels."""
        if self.worker is not None:
            self.worker.stop()
            for signal in (self.worker.computed, self.worker.whole_slide_progress, self.worker.failed):
                with contextlib.suppress(TypeError, RuntimeError):  # nothing connected
                    signal.disconnect()
        if self.session is not None:
            self.session.close()

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            self.close()
        return False


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def state_for(viewer) -> ExplorerState:
    """The viewer's shared state (made on first use)."""
    state = _STATES.get(viewer)
    if state is None:
        state = _STATES[viewer] = ExplorerState(viewer)
        # closing the window mid-inference stops the worker before the panels are deleted (napari
        # offers no public close event, so the main window's Close event is watched)
        window = getattr(getattr(viewer, "window", None), "_qt_window", None)
        if window is not None:
            window.installEventFilter(state)
    return state
