"""Pyramids for images stored with a single level, and dask chunking of levels.

Tiled files get lazy dask 2x2-mean levels (nothing is read until napari asks). Plain images,
which must be decoded whole anyway, get levels computed once on first read and kept in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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


def _needs_another_level(shape: tuple[int, ...], yx_axes: tuple[int, int]) -> bool:
    sides = [shape[a] for a in yx_axes]
    return max(sides) > SMALLEST_LEVEL_SIDE and min(sides) >= 4


def halve(image: np.ndarray) -> np.ndarray:
    """2x2 mean of a (Y, X[, S]) array, integers rounded half up, dtype kept."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    quads = (image[0:h:2, 0:w:2], image[1:h:2, 0:w:2], image[0:h:2, 1:w:2], image[1:h:2, 1:w:2])
    if np.issubdtype(image.dtype, np.integer):
        unsigned = np.issubdtype(image.dtype, np.unsignedinteger)
        wide = {1: np.uint16, 2: np.uint32}.get(image.itemsize, np.int64) if unsigned else np.int64
        total = quads[0].astype(wide)
        for quad in quads[1:]:
            total += quad
        total += 2
        total //= 4
        return total.astype(image.dtype)
    return (sum(q.astype(np.float32) for q in quads) / 4).astype(image.dtype)


def _halve_lazily(level: da.Array, yx_axes: tuple[int, int]) -> da.Array:
    factors = {axis: (2 if axis in yx_axes else 1) for axis in range(level.ndim)}
    mean = da.coarsen(np.mean, level, factors, trim_excess=True, dtype=np.float32)
    if np.issubdtype(level.dtype, np.integer):
        mean = da.round(mean)
    return mean.astype(level.dtype)


def computed_pyramid(level0: da.Array, yx_axes: tuple[int, int]) -> list[da.Array]:
    """[level0, level0/2, level0/4, ...] as lazy dask 2x2 means down to SMALLEST_LEVEL_SIDE."""
    levels = [level0]
    while _needs_another_level(levels[-1].shape, yx_axes):
        levels.append(_halve_lazily(levels[-1], yx_axes))
    return levels


class Memoised:
    """Array-like whose pixels ``produce()`` makes once, on first read; shape and dtype known up front."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, produce: Callable[[], np.ndarray]):
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self._produce = produce
        self._pixels: np.ndarray | None = None
        self._lock = threading.Lock()

    def __getitem__(self, key):
        with self._lock:
            if self._pixels is None:
                self._pixels = self._produce()
        return self._pixels[key]


def in_memory_pyramid(level0: Memoised) -> list[da.Array]:
    """Levels of a (Y, X[, S]) image decoded whole: each computed once from the one above."""
    memos = [level0]
    while _needs_another_level(memos[-1].shape, (0, 1)):
        above = memos[-1]
        shape = (above.shape[0] // 2, above.shape[1] // 2, *above.shape[2:])
        memos.append(Memoised(shape, above.dtype, lambda above=above: halve(above[...])))
    return [
        # meta given, so dask does not slice (and so decode) the image to learn its type
        da.from_array(m, chunks=level_chunks(m.shape, m.shape, (0, 1)), meta=np.empty((0,) * m.ndim, m.dtype))
        for m in memos
    ]
