"""Levels of libraries that read regions (OpenSlide, wsidicom) as array-likes: napari and tiling slice them,
each slice one region read, and dask chunks them on the library's tiles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dask.array as da
import numpy as np

from ...errors import reported_as
from ..pyramid import level_chunks

#: (level, x, y, width, height) → (height, width, 3) uint8; x and y in that level's pixels.
RegionRead = Callable[[int, int, int, int, int], np.ndarray]


class RegionLevel:
    """One level (height, width, 3) uint8 whose slices are regions read through ``read``."""

    def __init__(self, read: RegionRead, level: int, width: int, height: int):
        self.read, self.level = read, level
        self.shape, self.dtype, self.ndim = (int(height), int(width), 3), np.dtype(np.uint8), 3

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows, cols = (*key, slice(None), slice(None))[:2]
        y0, y1, _ = rows.indices(self.shape[0])
        x0, x1, _ = cols.indices(self.shape[1])
        if y1 <= y0 or x1 <= x0:
            return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0), 3), np.uint8)[(slice(None), slice(None), *key[2:])]
        region = self.read(self.level, x0, y0, x1 - x0, y1 - y0)
        return region[(slice(None), slice(None), *key[2:])] if len(key) > 2 else region


def region_levels(read: RegionRead, sizes: list[tuple[int, int]], tile: tuple[int, int]) -> tuple[list, list]:
    """(dask levels, array-like sources) for levels of (width, height) ``sizes``, chunked on ``tile`` (w, h)."""
    sources = [RegionLevel(read, i, w, h) for i, (w, h) in enumerate(sizes)]
    native = (max(1, tile[1]), max(1, tile[0]), 3)
    levels = [
        da.from_array(s, chunks=level_chunks(s.shape, native, (0, 1)), meta=np.empty((0, 0, 0), np.uint8))
        for s in sources
    ]
    return levels, sources


def rgba_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) RGBA as (H, W, 3) RGB over white: outside the scanned area (alpha 0) is glass."""
    rgb, alpha = rgba[..., :3].astype(np.float32), rgba[..., 3:4].astype(np.float32) / 255.0
    if (alpha == 1).all():
        return np.ascontiguousarray(rgba[..., :3])
    return np.round(rgb * alpha + 255.0 * (1 - alpha)).astype(np.uint8)


@contextmanager
def closed_on_failure(close: Callable[[], None], message: str) -> Iterator[None]:
    """Reading a slide's structure: any failure closes the library's handle and becomes ``message (cause)``."""
    try:
        with reported_as(message):
            yield
    except BaseException:
        close()
        raise
