"""Per-viewer state the panels share: the engine session, the selected features, and signals to follow."""

from __future__ import annotations

import weakref

import numpy as np
from qtpy.QtCore import QObject, Signal

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
        if self.worker is not None:
            self.worker.stop()
        if self.session is not None:
            self.session.close()


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def state_for(viewer) -> ExplorerState:
    """The viewer's shared state (made on first use)."""
    state = _STATES.get(viewer)
    if state is None:
        state = _STATES[viewer] = ExplorerState(viewer)
    return state
