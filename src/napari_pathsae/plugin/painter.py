"""Keeps the selected features painted: one heatmap layer each, refreshed as tiles are computed.

UI-thread cost is kept small: a deselected feature's layer is reused for the next selected one
(adding a napari layer costs ~100 ms, swapping its data ~10 ms), and refreshes while tiles arrive
are coalesced (at most one per REFRESH_MS) and done one layer per event-loop turn.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from ..names import LayerKind
from .heatmap_layers import (
    HUES,
    NOT_COMPUTED_RGBA,
    contrast_for,
    heatmap_grid,
    heatmap_layer,
    heatmap_name,
    hue_for,
    layer_kind,
    not_computed_grid,
    not_computed_layer,
    show_legend,
    tile_labels_layer,
)

#: Heatmaps are refilled at most this often while tiles arrive.
REFRESH_MS = 250
#: The refresh queue's entry for the grey not-computed layer.
NOT_COMPUTED = -1


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

    def layers_of(self, kind: str) -> list:
        """This session's layers of ``kind`` in the viewer."""
        store = str(self.state.session.store.path)
        return [
            layer
            for layer in self.state.viewer.layers
            if layer_kind(layer) == kind
            and (meta := layer.metadata["pathsae"]).get("store") == store
            and meta.get("sae") == self._sae
        ]

    def heatmaps(self) -> dict[int, object]:
        """This session's heatmap layers in the viewer, by feature."""
        return {int(layer.metadata["pathsae"]["feature"]): layer for layer in self.layers_of(LayerKind.HEATMAP)}

    def _not_computed(self):
        found = self.layers_of(LayerKind.NOT_COMPUTED)
        return found[0] if found else None

    @property
    def _sae(self) -> str | None:
        return self.state.session.sae_name

    def paint(self, features: list[int]) -> list:
        """Show exactly ``features`` (in hue order), reusing the layers of features no longer selected."""
        session, viewer = self.state.session, self.state.viewer
        existing = self.heatmaps()
        spare = [layer for feature, layer in existing.items() if feature not in features]
        layers = []
        self._paint_not_computed(bool(features))
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
            layer.visible = True  # a selected feature is always shown, even in a layer the user had hidden
            show_legend(layer, HUES[hue_for(position)])
            layers.append(layer)
        for layer in spare:
            viewer.layers.remove(layer)
        return layers

    def _paint_not_computed(self, wanted: bool) -> None:
        """One grey layer under the heatmaps for tissue tiles not computed yet, while any heatmap is shown."""
        layer, viewer = self._not_computed(), self.state.viewer
        if not wanted:
            if layer is not None:
                viewer.layers.remove(layer)
            return
        if layer is None:
            data, kwargs, _ = not_computed_layer(self.state.session)
            layer = viewer.add_image(data, **kwargs)
            show_legend(layer, NOT_COMPUTED_RGBA, colorbar=False)
            _shown_while_grey(layer)
        else:
            self._fill_not_computed(layer)

    def _fill_not_computed(self, layer) -> None:
        layer.data = not_computed_grid(self.state.session)
        _shown_while_grey(layer)

    def refresh(self, _indices: np.ndarray | None = None) -> None:
        """Refill every heatmap soon (coalesced)."""
        if self.state.session is None:
            return
        if not self._timer.isActive() and not self._due:
            self._due = [NOT_COMPUTED, *self.heatmaps()]
            self._timer.start()

    def refresh_now(self) -> None:
        """Refill every heatmap at once (tests, scripts)."""
        self._timer.stop()
        self._due = [NOT_COMPUTED, *self.heatmaps()]
        while self._due:
            self._refresh_next()

    def _refresh_next(self) -> None:
        """Refill one heatmap, then yield to the event loop before the next."""
        if self._due and self._due[0] == NOT_COMPUTED:
            self._due.pop(0)
            if (grey := self._not_computed()) is not None:
                self._fill_not_computed(grey)
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

    def paint_concepts(self):
        """The state's concepts as one Labels layer (replacing the previous one); hovering names the concept."""
        from ..analysis.features import concept_legend

        viewer, session, concepts = self.state.viewer, self.state.session, self.state.concepts
        for layer in self.layers_of(LayerKind.CONCEPTS):
            viewer.layers.remove(layer)
        if concepts is None:
            return None
        legend = concept_legend(concepts.profiles, concepts.labels, session.labels)
        names = {int(r.concept): f"concept {r.concept}: {r.top_features}" for r in legend.itertuples(index=False)}
        name = f"pathsae concepts ({concepts.method}, k={len(concepts.profiles)})"
        data, kwargs, _ = tile_labels_layer(session, concepts.labels, name, LayerKind.CONCEPTS, "concept", names)
        layer = viewer.add_labels(data, **kwargs)
        show_legend(layer, colorbar=False, position="top_left")
        return layer

    def spots_layer(self):
        """The spots layer of the session's Visium sample (None when it was removed or none is loaded)."""
        sample = self.state.session.sample
        if sample is None:
            return None
        for layer in self.state.viewer.layers:
            if layer_kind(layer) == LayerKind.SPOTS and layer.metadata["pathsae"].get("path") == str(sample.path):
                return layer
        return None

    def colour_spots(self, layer, column: str, values: np.ndarray, what: str) -> None:
        """Colour the spots by ``values`` (kept as feature ``column``); the layer's name and colorbar say ``what``."""
        features = layer.features.copy()
        features[column] = values
        layer.features = features
        layer.face_colormap = "viridis"
        layer.face_color = column
        low, high = np.nanpercentile(values, [2, 98])  # a few outlying spots would wash the rest out
        layer.face_contrast_limits = (float(low), float(high) if high > low else float(low) + 1.0)
        layer.name = f"{self.state.session.sample.library_id} spots: {what}"
        layer.metadata["pathsae"]["shown"] = {"column": column, "what": what}
        show_legend(layer, position="bottom_left")  # apart from the heatmaps' legends (top right)

    def rename(self) -> None:
        for feature, layer in self.heatmaps().items():
            layer.name = heatmap_name(self.state.session, feature)


def _shown_while_grey(layer) -> None:
    """The grey layer is shown (and named on the canvas) only while some tiles are not computed."""
    layer.name_overlay.visible = layer.visible = bool(layer.data.any())
