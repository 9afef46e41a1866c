"""Keeps the selected features painted: one heatmap layer each, refreshed as tiles are computed.

UI-thread cost is kept small: a deselected feature's layer is reused for the next selected one
(adding a napari layer costs ~100 ms, swapping its data ~10 ms), and refreshes while tiles arrive
are coalesced (at most one per REFRESH_MS) and done one layer per event-loop turn.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from .heatmap_layers import contrast_for, heatmap_grid, heatmap_layer

#: Heatmaps are refilled at most this often while tiles arrive.
REFRESH_MS = 250


class HeatmapPainter:
    """Adds a heatmap per selected feature, drops deselected ones, refills them as tiles arrive."""

    def __init__(self, state):
        self.state = state
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh_next)
        self._due: list[int] = []
        state.selection_changed.connect(self.paint)
        state.tiles_computed.connect(self.refresh)
        state.labels_changed.connect(self.rename)

    def heatmaps(self) -> dict[int, object]:
        """This session's heatmap layers in the viewer, by feature."""
        store = str(self.state.session.store.path)
        found = {}
        for layer in self.state.viewer.layers:
            meta = layer.metadata.get("pathsae", {})
            if meta.get("kind") == "heatmap" and meta.get("store") == store and meta.get("sae") == self._sae:
                found[int(meta["feature"])] = layer
        return found

    @property
    def _sae(self) -> str | None:
        return self.state.session.computer.sae_name

    def paint(self, features: list[int]) -> list:
        """Show exactly ``features`` (in hue order), reusing the layers of features no longer selected."""
        session, viewer = self.state.session, self.state.viewer
        existing = self.heatmaps()
        spare = [layer for feature, layer in existing.items() if feature not in features]
        layers = []
        for position, feature in enumerate(features):
            data, kwargs, _ = heatmap_layer(session, feature, position)
            layer = existing.get(feature) or (spare.pop() if spare else None)
            if layer is None:
                layer = viewer.add_image(data, **kwargs)
            else:
                layer.metadata = kwargs["metadata"]
                layer.data = data
                layer.colormap = kwargs["colormap"]
                layer.contrast_limits = kwargs["contrast_limits"]
                layer.name = kwargs["name"]
            layers.append(layer)
        for layer in spare:
            viewer.layers.remove(layer)
        return layers

    def refresh(self, _indices: np.ndarray | None = None) -> None:
        """Refill every heatmap soon (coalesced)."""
        if not self._timer.isActive() and not self._due:
            self._due = list(self.heatmaps())
            self._timer.start()

    def refresh_now(self) -> None:
        """Refill every heatmap at once (tests, scripts)."""
        self._timer.stop()
        self._due = list(self.heatmaps())
        while self._due:
            self._refresh_next()

    def _refresh_next(self) -> None:
        """Refill one heatmap, then yield to the event loop before the next."""
        layers = self.heatmaps()
        while self._due and self._due[0] not in layers:
            self._due.pop(0)
        if not self._due:
            return
        feature = self._due.pop(0)
        layer = layers[feature]
        grid = heatmap_grid(self.state.session, feature)
        layer.data = grid
        low, high = contrast_for(grid)
        if high > layer.contrast_limits[1] or layer.contrast_limits[1] == 1.0:
            layer.contrast_limits = (low, high)
        if self._due:
            QTimer.singleShot(0, self._refresh_next)

    def rename(self) -> None:
        for feature, layer in self.heatmaps().items():
            layer.name = f"pathsae {self.state.session.feature_name(feature)}"
