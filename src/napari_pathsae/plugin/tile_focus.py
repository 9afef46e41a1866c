"""Taking the camera to a tile: centred, a few tiles around it in view, and outlined in white."""

from __future__ import annotations

import numpy as np

from ..names import LayerKind
from .viewport_worker import camera_of, visible_world_box

TARGET_LAYER = "pathsae target tile"


def canvas_width(viewer) -> float:
    """Width of the world box the canvas shows, in screen px (camera zoom is screen px per world unit)."""
    box = visible_world_box(viewer)
    return float(abs(box[1, 1] - box[0, 1]) * camera_of(viewer).zoom)


def go_to_tile(viewer, session, index: int) -> None:
    """Centre the camera on the session's tile ``index``, zoom to show a few tiles around it, and outline it."""
    box = session.placement.tile_box_world(session.grid_index[[index]])[0]
    camera = camera_of(viewer)
    camera.center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    camera.zoom = canvas_width(viewer) / (5 * (box[2] - box[0]))
    outline_tile(viewer, box, session.world_units)


def outline_tile(viewer, box: np.ndarray, units: str) -> None:
    """A white frame around the tile jumped to (one layer, moved each time)."""
    rectangle = np.array([[box[0], box[1]], [box[2], box[3]]])
    edge = (box[2] - box[0]) * 0.06
    if TARGET_LAYER in viewer.layers:
        layer = viewer.layers[TARGET_LAYER]
        layer.data = [rectangle]
    else:
        layer = viewer.add_shapes(
            [rectangle], shape_type="rectangle", name=TARGET_LAYER, edge_color="white",
            face_color="transparent", edge_width=edge, units=units,
            metadata={"pathsae": {"kind": LayerKind.TARGET}},
        )  # fmt: skip
    layer.visible = True
