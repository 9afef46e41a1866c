"""Lazily computed pyramids for slides stored with a single level, and dask chunking of levels."""

from __future__ import annotations

import dask.array as da
import numpy as np

#: Stop adding levels once the longest side is at most this many pixels.
SMALLEST_LEVEL_SIDE = 1024
#: Target dask chunk side. Tiles are grouped: slicing cost grows with the chunk count (a 100k px
#: slide: 0.18-0.5 s per view with 256 px chunks, 18 ms with 1024 px), while a chunk decodes only
#: its own tiles.
CHUNK_SIDE = 1024


def level_chunks(shape: tuple[int, ...], native: tuple[int, ...], yx_axes: tuple[int, int]) -> tuple:
    """Dask chunks for one level: whole native tiles grouped to about CHUNK_SIDE px per side."""
    chunks = list(shape)
    for axis in yx_axes:
        tile = max(1, min(native[axis], shape[axis]))
        chunks[axis] = min(shape[axis], max(1, CHUNK_SIDE // tile) * tile)
    return tuple(chunks)


def _halve(level: da.Array, yx_axes: tuple[int, int]) -> da.Array:
    """2x2 mean, lazily, keeping the dtype."""
    factors = {axis: (2 if axis in yx_axes else 1) for axis in range(level.ndim)}
    mean = da.coarsen(np.mean, level, factors, trim_excess=True, dtype=np.float32)
    if np.issubdtype(level.dtype, np.integer):
        mean = da.round(mean)
    return mean.astype(level.dtype)


def computed_pyramid(level0: da.Array, yx_axes: tuple[int, int]) -> list[da.Array]:
    """[level0, level0/2, level0/4, ...] as lazy 2x2 means down to SMALLEST_LEVEL_SIDE."""
    levels = [level0]
    while (
        max(levels[-1].shape[a] for a in yx_axes) > SMALLEST_LEVEL_SIDE
        and min(levels[-1].shape[a] for a in yx_axes) >= 4
    ):
        levels.append(_halve(levels[-1], yx_axes))
    return levels
