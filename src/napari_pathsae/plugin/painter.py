"""Keeps the selected features painted: a layer each for its settings and legend, one layer draws them all.

Each selected feature is an Image layer of its own (name, hue, contrast limits, opacity, visibility,
name on the canvas) that draws nothing; one composite RGBA layer draws every feature over the grey of
tiles not computed yet. Ten features therefore cost one texture upload and one layer's drawing per
frame, not ten (napari issue 3630; measured in benchmarks/viewport.py). Only the current feature's
layer shows its colorbar: a colorbar is five visuals that vispy draws from Python in every frame
(2-3 ms each under software GL), so one per feature doubled the frame of five features. Editing a
feature's layer (hiding it, its contrast, its colormap, its opacity) or removing it repaints the
composite on the next event-loop turn; tiles arriving repaint it at most once per REFRESH_MS.
"""

from __future__ import annotations

import time

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QTimer

from ..data.viewport import tile_lookup
from ..names import LayerKind, layer_kind
from .heatmap_layers import (
    HEATMAPS_LAYER,
    HEATMAPS_LAYER_COMPUTING,
    NOT_COMPUTED_RGBA,
    composite_rgba,
    contrast_for,
    feature_rgba,
    heatmap_grid,
    heatmap_layer,
    heatmap_name,
    heatmaps_layer,
    hue_rgba,
    not_computed_grid,
    show_legend,
    tile_labels_layer,
)
from .hover_status import read_tiles_on_hover, tiles_text
from .layers import raster_of, shown_limits
from .viewport_worker import camera_of

#: The composite is repainted at most this often while tiles arrive (each repaint is one texture upload
#: and one frame: under software GL a frame of the slide and the composite takes 30-60 ms).
REFRESH_MS = 500
#: ... and at most this often while the camera moves: each repaint's frame comes on top of the pan's own frames.
REFRESH_MOVING_MS = 1500
#: The camera counts as moving this long after its last change.
MOVING_S = 0.6
#: Events of a feature's layer that change what the composite draws.
DRAWN_SETTINGS = ("visible", "opacity", "colormap", "contrast_limits")


class HeatmapPainter:
    """Adds a layer per selected feature, drops deselected ones, and draws them all as one composite."""

    def __init__(self, state):
        self.state = state
        self._timer = _single_shot(REFRESH_MS, self.refresh_now)
        self._repaint_soon = _single_shot(0, self.repaint)
        self._settle_soon = _single_shot(0, self.settle)
        self._shown: list[int] = []  # the selected features, in hue order
        self._grids: dict[int, np.ndarray] = {}  # each shown feature's grid as last read (refreshed as tiles arrive)
        self._to_add: list[int] = []  # features whose layer is still to be added (one per event-loop turn)
        self._to_remove: list = []  # deselected features' layers still to be removed
        self._lookup = None  # (session, tile at each grid cell), for the status bar
        state.selection_changed.connect(self.paint)
        state.tiles_computed.connect(self.refresh)
        state.labels_changed.connect(self.rename)
        state.current_changed.connect(self._activate_current)
        state.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._moved_at = 0.0  # when the camera last moved (time.monotonic)
        camera = camera_of(state.viewer)
        camera.events.center.connect(self._camera_moved)
        camera.events.zoom.connect(self._camera_moved)

    def layers_of(self, kind: str) -> list:
        """This session's layers of ``kind`` in the viewer."""
        if self.state.session is None:
            return []
        store = str(self.state.session.store.path)
        return [
            layer
            for layer in self.state.viewer.layers
            if layer_kind(layer) == kind
            and (meta := layer.metadata["pathsae"]).get("store") == store
            and meta.get("sae") == self._sae
        ]

    def heatmaps(self) -> dict[int, object]:
        """This session's feature layers in the viewer, by feature (in the order they are drawn)."""
        return {_feature_of(layer): layer for layer in self.layers_of(LayerKind.HEATMAP)}

    def composite(self):
        """The layer that draws the features (None when none is shown)."""
        found = self.layers_of(LayerKind.HEATMAPS)
        return found[0] if found else None

    @property
    def _sae(self) -> str | None:
        return self.state.session.sae_name

    def paint(self, features: list[int]) -> None:
        """Show exactly ``features`` (in hue order): the composite at once, their layers over the next turns.

        Adding or removing a napari layer holds the UI thread 150-300 ms under software GL (its Qt
        controls, its visuals, its legend's text), so a click only re-points the layers it can reuse
        and repaints the composite from the features' grids; each layer still to add or remove is one
        later event-loop turn (``settle``), so clicks and pans are served between them."""
        session = self.state.session
        self._shown = [int(f) for f in features]
        self._grids = {feature: heatmap_grid(session, feature) for feature in self._shown}
        existing = self.heatmaps()
        spare = [layer for feature, layer in existing.items() if feature not in self._shown]
        for position, feature in enumerate(self._shown):
            layer = existing.get(feature)
            if layer is None and spare:
                layer = spare.pop()
                self._point(layer, feature, position)
            if layer is not None:
                self._show(layer)
        self._to_add = [f for f in self._shown if f not in self.heatmaps()]
        self._to_remove = spare
        self._place_colorbar()
        self.repaint()
        self._settle_soon.start()

    @property
    def settled(self) -> bool:
        """Every selected feature has its layer and no deselected one is left (tests, scripts)."""
        return not (self._to_add or self._to_remove) and (self.composite() is not None) == bool(self._shown)

    def settle(self) -> None:
        """One layer added or removed (or the composite), then the next on the next turn."""
        session, viewer = self.state.session, self.state.viewer
        if session is None or not self.state.window_open:  # (napari empties a closing viewer: nothing comes back)
            return
        if self._shown and self.composite() is None:
            missing = session.missing()
            data, kwargs, _ = heatmaps_layer(session, self._rgba(missing))
            layer = Image(data, **kwargs)
            read_tiles_on_hover(layer, lambda rowcol: self.hover_text(rowcol, self._shown))  # before napari asks
            viewer.add_layer(layer)
            show_legend(layer, NOT_COMPUTED_RGBA, colorbar=False)
            self._name_composite(layer, missing)
        elif self._to_remove:
            viewer.layers.remove(self._to_remove.pop())
        elif self._to_add:
            feature = self._to_add.pop(0)  # (_to_add is rebuilt from the selection at each paint)
            if feature not in self.heatmaps():
                position = self._shown.index(feature)
                data, kwargs, _ = heatmap_layer(session, feature, position, self._grids.get(feature))
                layer = Image(data, **kwargs)
                read_tiles_on_hover(layer, lambda rowcol, layer=layer: self.hover_text(rowcol, [_feature_of(layer)]))
                viewer.add_layer(layer)  # active at once: napari asks its status as it lands
                for setting in DRAWN_SETTINGS:
                    getattr(layer.events, setting).connect(self._schedule_repaint)
                self._show(layer)
                self._place_colorbar()
        elif not self._shown and (layer := self.composite()) is not None:
            viewer.layers.remove(layer)
        else:
            self._activate_current()  # napari made each layer active as it landed: the last, not the current
            return
        self._settle_soon.start()

    def _activate_current(self, _feature: int | None = None) -> None:
        """The current feature's layer is napari's active layer (its controls edit what the dashboard shows)
        and shows the colorbar."""
        layer = self.heatmaps().get(self.state.current) if self.state.session is not None else None
        selection = self.state.viewer.layers.selection
        if layer is not None and selection.active is not layer:
            selection.active = layer
        self._place_colorbar()

    def _place_colorbar(self) -> None:
        """One colorbar on the canvas: the current feature's, else the first shown feature's."""
        if self.state.session is None:
            return
        layers = self.heatmaps()
        owner = (
            self.state.current
            if self.state.current in layers
            else next((feature for feature in self._shown if feature in layers), None)
        )
        for feature, layer in layers.items():
            if feature == owner and not layer.colorbar.visible:
                show_legend(layer, legend_colour(layer))
            elif feature != owner and layer.colorbar.visible:
                layer.colorbar.visible = False

    def hover_text(self, rowcol: np.ndarray, features: list[int]) -> str:
        """The status bar's text over ``rowcol`` (world) for these features (hover_status.py)."""
        session = self.state.session
        if session is None:
            return ""
        if self._lookup is None or self._lookup[0] is not session:
            self._lookup = (session, tile_lookup(session.grid_index, session.placement.grid_shape))
        return tiles_text(session, self._lookup[1], rowcol, features)

    def forget(self) -> None:
        """Nothing shown or pending (the session is unloading; its layers are removed by the state)."""
        self._shown, self._grids, self._to_add, self._to_remove, self._lookup = [], {}, [], [], None
        self._settle_soon.stop()
        self._repaint_soon.stop()

    def resume(self) -> None:
        """Go on adding, removing and repainting (the window was not closed after all)."""
        self._settle_soon.start()
        self._repaint_soon.start()

    def settle_now(self) -> None:
        """Every pending layer added and removed at once (tests, scripts, the demo's screenshot)."""
        for _ in range(2 * len(self._shown) + len(self._to_remove) + 2):  # each step adds or removes one layer
            if self.settled or self.state.session is None:
                break
            self.settle()
        self._settle_soon.stop()

    def _point(self, layer, feature: int, position: int) -> None:
        """Re-point a deselected feature's layer at ``feature`` (far cheaper than a new layer)."""
        data, kwargs, _ = heatmap_layer(self.state.session, feature, position, self._grids[feature])
        layer.metadata = kwargs["metadata"]
        layer.data = data
        layer.colormap = kwargs["colormap"]
        layer.contrast_limits = kwargs["contrast_limits"]
        layer.name = kwargs["name"]

    @staticmethod
    def _recolour_name(event) -> None:
        """A colormap the user picks for a feature's layer recolours its name too."""
        event.source.name_overlay.color = legend_colour(event.source)

    def _show(self, layer) -> None:
        layer.visible = True  # a selected feature is always shown, even in a layer the user had hidden
        show_legend(layer, legend_colour(layer), colorbar=False)  # its name in its hue (_place_colorbar: the bar)

    def _rgba(self, missing: np.ndarray) -> np.ndarray:
        """The composite's pixels: each shown feature with its layer's settings (the defaults while it has
        none), over the grey of the ``missing`` tiles."""
        layers, session = self.heatmaps(), self.state.session
        colours = []
        for position, feature in enumerate(self._shown):
            grid = self._grids.get(feature)
            if grid is None:
                grid = self._grids[feature] = heatmap_grid(session, feature)
            layer = layers.get(feature)
            if layer is not None and layer.visible:
                colours.append(feature_rgba(grid, layer.colormap, layer.contrast_limits, layer.opacity))
            elif layer is None and feature in self._to_add:  # its layer comes on a later turn
                colours.append(hue_rgba(grid, position))
        return composite_rgba(colours, not_computed_grid(session, missing))

    def _name_composite(self, layer, missing: np.ndarray) -> None:
        """Its name says what the grey is while some tiles are not computed; the name shows on the canvas then."""
        computing = bool(missing.any())
        name = HEATMAPS_LAYER_COMPUTING if computing else HEATMAPS_LAYER
        if layer.name != name:
            layer.name = name
        layer.name_overlay.visible = computing

    def _schedule_repaint(self, _event=None) -> None:
        self._repaint_soon.start()

    def _on_layer_removed(self, event) -> None:
        if layer_kind(event.value) == LayerKind.HEATMAP and self.state.session is not None:
            self._schedule_repaint()

    def repaint(self) -> None:
        """Draw the composite again from the feature layers and their grids as last read (one texture upload)."""
        if self.state.session is None or not self.state.window_open or (layer := self.composite()) is None:
            return
        missing = self.state.session.missing()  # read once: the grey and the name both follow it
        rgba = self._rgba(missing)
        if layer.data.shape == rgba.shape and layer.data.dtype == rgba.dtype:
            layer.data[...] = rgba  # in place, then one re-slice: the data setter would re-check every layer's dims
            layer.refresh(extent=False, highlight=False)
        else:
            layer.data = rgba
        self._name_composite(layer, missing)
        self._repaint_soon.stop()

    def refresh(self, _indices: np.ndarray | None = None) -> None:
        """Read the shown features' grids again and repaint, soon (at most once per REFRESH_MS)."""
        if self.state.session is not None and not self._timer.isActive():
            moving = time.monotonic() - self._moved_at < MOVING_S
            self._timer.start(REFRESH_MOVING_MS if moving else REFRESH_MS)

    def _camera_moved(self, _event=None) -> None:
        self._moved_at = time.monotonic()

    def refresh_now(self) -> None:
        """Read the grids again and repaint at once (tests, scripts)."""
        self._timer.stop()
        self._reread()
        self.repaint()

    def _reread(self) -> None:
        self._grids = {feature: heatmap_grid(self.state.session, feature) for feature in self._shown}
        for feature, layer in self.heatmaps().items():
            if feature not in self._grids:
                continue
            low, high = contrast_for(self._grids[feature])
            if high > layer.contrast_limits[1] or layer.contrast_limits[1] == 1.0:
                layer.data[:] = (low, high)  # in place: napari's data setter would re-check every layer's dims
                layer.contrast_limits = (low, high)  # its colorbar follows; the composite is repainted once

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
        """Colour the spots by ``values`` (kept as feature ``column``); the layer's name and colorbar say ``what``.
        Visium HD bins are one raster: its pixels become the values."""
        raster = layer.metadata["pathsae"].get("raster")
        if raster is not None:
            layer.metadata["pathsae"]["values"][column] = np.asarray(values)
            layer.data = raster_of(raster["rows"], raster["cols"], values)
            layer.colormap = "viridis"
            layer.contrast_limits = shown_limits(values)
            layer.name = f"{self.state.session.sample.library_id} bins: {what}"
        else:
            features = layer.features.copy()
            features[column] = values
            layer.features = features
            layer.face_colormap = "viridis"
            layer.face_color = column
            layer.face_contrast_limits = shown_limits(values)
            layer.name = f"{self.state.session.sample.library_id} spots: {what}"
        layer.metadata["pathsae"]["shown"] = {"column": column, "what": what}
        show_legend(layer, position="bottom_left")  # apart from the heatmaps' legends (top right)

    def rename(self) -> None:
        for feature, layer in self.heatmaps().items():
            layer.name = heatmap_name(self.state.session, feature)


def _single_shot(interval_ms: int, slot) -> QTimer:
    """A single-shot timer calling ``slot`` (restarting it while active coalesces the calls)."""
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setInterval(interval_ms)
    timer.timeout.connect(slot)
    return timer


def legend_colour(layer) -> tuple:
    """The colour a feature's name is written in: its colormap's strongest colour, opaque (so the name
    matches its colorbar and its tiles, whatever hue the layer kept or the user chose)."""
    return (*layer.colormap.colors[-1][:3], 1.0)


def _feature_of(layer) -> int:
    """The feature a feature's layer shows now (layers are re-pointed as selections change)."""
    return int(layer.metadata["pathsae"]["feature"])
