"""Where the tile grid sits in a sample's world frame, and which tiles a view box shows.

Grid cell (row, col) covers level-0 pixels [ox + col·s, ox + (col+1)·s) x [oy + row·s, oy + (row+1)·s),
s the step between tiles (their side unless they overlap) and (ox, oy) the grid's origin (0 for the
store's own grids). napari centres image pixel i on ``i·scale + translate``, so level-0 pixel p is
centred on ``p·w`` (w: world units per level-0 pixel) and a one-value-per-cell grid needs
``scale = s·w`` and ``translate = (o + (s - 1) / 2)·w`` to share the cells' exact boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridPlacement:
    """The tile grid in world (row, col) units."""

    side0: float  # grid cell side in level-0 px: the tile side, or the step between overlapping tiles
    world_per_px: float  # world units per level-0 px (µm/px, or 1 when µm are unknown)
    grid_shape: tuple[int, int]  # rows, cols spanned by the tiles
    origin0: tuple[float, float] = (0.0, 0.0)  # level-0 (x, y) of cell (0, 0)'s top-left corner

    @property
    def _origin_rc(self) -> np.ndarray:
        return np.array([self.origin0[1], self.origin0[0]], dtype=float)

    def scale(self, subdivisions: int = 1) -> tuple[float, float]:
        """napari scale of a grid with ``subdivisions`` x ``subdivisions`` values per cell."""
        s = self.side0 * self.world_per_px / subdivisions
        return (s, s)

    def translate(self, subdivisions: int = 1) -> tuple[float, float]:
        """napari translate putting that grid's pixel edges on the cell edges."""
        t = (self._origin_rc + (self.side0 / subdivisions - 1) / 2) * self.world_per_px
        return (float(t[0]), float(t[1]))

    def tile_box_world(self, grid_index: np.ndarray) -> np.ndarray:
        """(N, 4) world (row0, col0, row1, col1) of cells' outer edges."""
        edge = self.side0 * self.world_per_px
        top_left = (np.asarray(grid_index, dtype=float) * self.side0 + self._origin_rc - 0.5) * self.world_per_px
        return np.concatenate([top_left, top_left + edge], axis=1)

    def world_to_grid(self, world_rowcol: np.ndarray) -> np.ndarray:
        """World (row, col) points to fractional grid (row, col)."""
        level0 = np.asarray(world_rowcol, dtype=float) / self.world_per_px + 0.5
        return (level0 - self._origin_rc) / self.side0


def tiles_in_view(grid_index: np.ndarray, placement: GridPlacement, box: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Indices of tiles overlapping the world box ((row0, col0), (row1, col1)), nearest to its centre first.

    ``margin`` widens the box by that fraction of its size on each side (prefetch around the view).
    """
    box = np.asarray(box, dtype=float)
    low, high = box.min(axis=0), box.max(axis=0)
    pad = (high - low) * margin
    g0, g1 = placement.world_to_grid(low - pad), placement.world_to_grid(high + pad)
    rows, cols = grid_index[:, 0], grid_index[:, 1]
    inside = (rows + 1 > g0[0]) & (rows < g1[0]) & (cols + 1 > g0[1]) & (cols < g1[1])
    index = np.flatnonzero(inside)
    centre = placement.world_to_grid((low + high) / 2)
    distance = np.hypot(rows[index] + 0.5 - centre[0], cols[index] + 0.5 - centre[1])
    return index[np.argsort(distance, kind="stable")]


def tile_lookup(grid_index: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """(rows, cols) int: the tile at each grid cell, -1 where there is none."""
    lookup = np.full(grid_shape, -1, dtype=np.int64)
    lookup[grid_index[:, 0], grid_index[:, 1]] = np.arange(len(grid_index))
    return lookup


def tile_value_grid(grid_index: np.ndarray, grid_shape: tuple[int, int], values: np.ndarray) -> np.ndarray:
    """(rows, cols) float32 image with each tile's value at its grid cell, NaN elsewhere."""
    image = np.full(grid_shape, np.nan, dtype=np.float32)
    image[grid_index[:, 0], grid_index[:, 1]] = values
    return image


def patch_value_grid(grid_index: np.ndarray, grid_shape: tuple[int, int], patches: np.ndarray) -> np.ndarray:
    """(rows·g, cols·g) image of (N, g, g) per-tile patch values, NaN where no tile was given."""
    g = patches.shape[1]
    image = np.full((grid_shape[0] * g, grid_shape[1] * g), np.nan, dtype=np.float32)
    view = image.reshape(grid_shape[0], g, grid_shape[1], g)
    view[grid_index[:, 0], :, grid_index[:, 1], :] = patches
    return image
