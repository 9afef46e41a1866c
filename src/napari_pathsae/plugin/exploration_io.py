"""The viewer side of a saved exploration: what is captured from napari and the panels, and put back."""

from __future__ import annotations

import numpy as np

from ..data.exploration import Exploration, load_exploration, save_exploration
from ..names import LayerKind, layer_kind
from .layers import spot_values
from .viewport_worker import camera_of

#: Layer kinds whose display settings (visibility, opacity, contrast) are saved.
SAVED_KINDS = tuple(k for k in LayerKind if k != LayerKind.PATCH_HEATMAP)


def capture(state) -> Exploration:
    """Selection, camera, layer settings, spot colouring and regions of the viewer; correlations and concepts."""
    viewer, session = state.viewer, state.session
    camera = camera_of(viewer)
    layers, regions, spots = {}, [], None
    for layer in viewer.layers:
        kind = layer_kind(layer)
        if kind not in SAVED_KINDS:
            continue
        settings = {"kind": kind, "visible": bool(layer.visible), "opacity": float(layer.opacity)}
        if kind == LayerKind.HEATMAP:
            settings["feature"] = int(layer.metadata["pathsae"]["feature"])
            settings["contrast_limits"] = [float(v) for v in layer.contrast_limits]
            layers[f"heatmap {settings['feature']}"] = settings
            continue
        layers[layer.name if kind != LayerKind.SPOTS else "spots"] = settings
        if kind == LayerKind.REGION:
            shapes = [np.asarray(v, float)[:, -2:].tolist() for v in layer.data]
            regions.append({"name": layer.name, "shapes": shapes, "types": list(layer.shape_type)})
        if kind == LayerKind.SPOTS and (shown := layer.metadata["pathsae"].get("shown")):
            values = spot_values(layer, shown["column"])
            spots = {**shown, "values": values.tolist()}
    view = {
        "selected": list(state.selected),
        "current": state.current,
        "camera": {"center": [float(v) for v in camera.center], "zoom": float(camera.zoom)},
        "layers": layers,
        "spots": spots,
        "regions": regions,
    }
    return Exploration(view=view, correlations=session.correlations, concepts=state.concepts)


def save(state):
    """Save the viewer's exploration beside the store (this SAE's previous save is replaced)."""
    return save_exploration(state.session, capture(state))


def restore(state, folder=None) -> bool:
    """Put back the exploration saved for the session's store and SAE; False when none was saved.

    A save from another store or SAE raises PathsaeError (one line) and changes nothing."""
    exploration = load_exploration(state.session, folder)
    if exploration is None:
        return False
    viewer, session, view = state.viewer, state.session, exploration.view
    if exploration.correlations is not None and session.sample is not None:
        session.correlations = exploration.correlations
        state.correlations_changed.emit()
    features = [f for f in view.get("selected", []) if 0 <= f < session.n_features]
    state.select(features, current=view.get("current") if view.get("current") in features else None)
    if exploration.concepts is not None and len(exploration.concepts.labels) == session.n_tiles:
        state.set_concepts(exploration.concepts)
    spots = view.get("spots")
    sized = spots and session.sample is not None and len(spots["values"]) == session.sample.adata.n_obs
    if sized and (layer := state.painter.spots_layer()) is not None:
        state.painter.colour_spots(layer, spots["column"], np.asarray(spots["values"]), spots["what"])
    for region in view.get("regions", []):
        if region["name"] not in viewer.layers:
            layer = add_region_layer(viewer, session.world_units, region["name"])
            if region["shapes"]:
                layer.add([np.asarray(s) for s in region["shapes"]], shape_type=region["types"])
            layer.mode = "pan_zoom"
    _apply_layer_settings(viewer, view.get("layers", {}))
    camera = view.get("camera")
    if camera:
        camera_of(viewer).center = camera["center"]
        camera_of(viewer).zoom = camera["zoom"]
    return True


def _apply_layer_settings(viewer, saved: dict) -> None:
    for layer in viewer.layers:
        kind = layer_kind(layer)
        if kind == LayerKind.HEATMAP:
            key = f"heatmap {layer.metadata['pathsae']['feature']}"
        elif kind == LayerKind.SPOTS:
            key = "spots"
        else:
            key = layer.name
        settings = saved.get(key)
        if settings is None or settings.get("kind") != kind:
            continue
        layer.visible, layer.opacity = settings["visible"], settings["opacity"]
        if kind == LayerKind.HEATMAP:
            layer.contrast_limits = settings["contrast_limits"]


REGION_LAYER = "pathsae region"
#: A region's outline is drawn this many screen pixels wide at the zoom it is drawn at (not in µm: 20 µm hid
#: a quarter of a small image's tiles).
REGION_EDGE_PX = 3


def add_region_layer(viewer, units: str, name: str = REGION_LAYER):
    """A Shapes layer for drawing a region (rectangle mode), marked as the plugin's region."""
    layer = viewer.add_shapes(
        name=name, edge_color="cyan", face_color="transparent", edge_width=REGION_EDGE_PX / camera_of(viewer).zoom,
        units=units,
        metadata={"pathsae": {"kind": LayerKind.REGION}},
    )  # fmt: skip
    layer.mode = "add_rectangle"
    return layer
