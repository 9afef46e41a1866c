"""The status bar over the painted features reads the activations under the cursor, not pixels.

A feature's own layer draws nothing (two texels at the grid's corner) and the composite's pixels are
colours: napari's status for either would be meaningless numbers. Hovering them says which tile is
under the cursor and the activations of the features there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def read_tiles_on_hover(layer, describe: Callable[[np.ndarray], str]) -> None:
    """``layer``'s status bar text becomes ``describe(world (row, col))`` after the cursor's position."""
    original = layer.get_status

    def get_status(position=None, *, view_direction=None, dims_displayed=None, world=False, value=None) -> dict:
        status = original(None)  # the layer's name and source, no position
        if position is None:
            return status
        point = np.asarray(position, dtype=float)
        rowcol = (point if world else np.asarray(layer.data_to_world(point)))[-2:]
        coords = "[" + ", ".join(f"{v:.1f}" for v in rowcol) + "]"
        text = describe(rowcol)
        status.update(coords=coords, value=text, coordinates=f"{coords}: {text}")
        return status

    layer.get_status = get_status


def tiles_text(session, lookup: np.ndarray, rowcol: np.ndarray, features: list[int]) -> str:
    """What hovering ``rowcol`` (world) says: the tile and each feature's activation there."""
    cell = np.floor(session.placement.world_to_grid(rowcol)).astype(int)
    inside = (cell >= 0).all() and (cell < lookup.shape).all()
    tile = int(lookup[cell[0], cell[1]]) if inside else -1
    if tile < 0:
        return "no tissue tile here"
    if len(session.missing(np.array([tile]))):
        return f"tile {tile}: not computed yet"
    values = session.activations[tile]
    return f"tile {tile}: " + ", ".join(f"{session.feature_name(f)} = {values[f]:.3g}" for f in features)
