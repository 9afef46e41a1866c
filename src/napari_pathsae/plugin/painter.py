"""Keeps the selected features painted: one heatmap layer each, refreshed as tiles are computed."""

from __future__ import annotations

import numpy as np

from .heatmap_layers import contrast_for, heatmap_grid, heatmap_layer


class HeatmapPainter:
    """Adds a heatmap per selected feature, drops deselected ones, refills them as tiles arrive."""

    def __init__(self, state):
        self.state = state
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
        session, viewer = self.state.session, self.state.viewer
        existing = self.heatmaps()
        for feature, layer in existing.items():
            if feature not in features:
                viewer.layers.remove(layer)
        layers = []
        for position, feature in enumerate(features):
            data, kwargs, _ = heatmap_layer(session, feature, position)
            layer = existing.get(feature)
            if layer is None:
                layer = viewer.add_image(data, **kwargs)
            else:
                layer.colormap = kwargs["colormap"]
            layers.append(layer)
        return layers

    def refresh(self, _indices: np.ndarray | None = None) -> None:
        for feature, layer in self.heatmaps().items():
            grid = heatmap_grid(self.state.session, feature)
            layer.data = grid
            low, high = contrast_for(grid)
            if high > layer.contrast_limits[1] or layer.contrast_limits[1] == 1.0:
                layer.contrast_limits = (low, high)

    def rename(self) -> None:
        for feature, layer in self.heatmaps().items():
            layer.name = f"pathsae {self.state.session.feature_name(feature)}"
