"""The atlas's pictures: real tiles cut once from their slides (JPEG thumbnails), and small maps of where a
feature fires on a slide (PNG, one pixel block per tile, magma)."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ...data.identity import verified_slide_path
from ...data.store import TileStore
from ...data.tiles import read_tiles
from ...errors import PathsaeError
from ...io.slides import open_slide

log = logging.getLogger(__name__)

THUMB_PX = 128


def tile_file(slide: str, tile: int) -> str:
    return f"tiles/{slide}_{tile}.jpg"


def cut_tiles(wanted: dict[str, set[int]], stores: dict[str, Path], folder: Path) -> tuple[int, list[str]]:
    """Thumbnails of the ``wanted`` tiles of each slide under ``folder/tiles`` (slides read on two threads:
    decoding and resizing release the GIL); a slide whose file is gone gets grey squares and a note.
    Returns (tiles written, notes)."""
    (folder / "tiles").mkdir(exist_ok=True)
    notes: list[str] = []

    def one(slide_name: str) -> int:
        indices = np.array(sorted(wanted[slide_name]), dtype=np.int64)
        pixels = store_tile_pixels(TileStore.open(stores[slide_name]), indices, slide_name, notes)
        for tile, image in zip(indices, pixels, strict=True):
            thumb = Image.fromarray(image).resize((THUMB_PX, THUMB_PX), Image.Resampling.BILINEAR)
            thumb.save(folder / tile_file(slide_name, int(tile)), quality=85)
        return len(indices)

    return sum(_per_slide(one, sorted(wanted))), notes


def _per_slide(function, names: list[str]) -> list:
    """``function(name)`` for every slide on two threads, results in order; the first error is raised."""
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        return list(pool.map(function, names))


def store_tile_pixels(store: TileStore, indices: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    """Pixels of a store's tiles read from its slide; grey 8 px squares (and a note) when the slide is gone."""
    try:
        path = verified_slide_path(store)
    except PathsaeError as exc:
        notes.append(f"{name}: {exc}; its tiles are grey")
        path = None
    if path is None:
        if not any(n.startswith(f"{name}:") for n in notes):
            notes.append(f"{name}: slide {store.provenance['slide_path']} is gone; its tiles are grey")
        return np.full((len(indices), 8, 8, 3), 200, dtype=np.uint8)
    slide = open_slide(path, mpp=store.slide_mpp, backend=store.provenance.get("slide_backend"))
    try:
        return read_tiles(slide, store.tile_grid(), indices)
    finally:
        slide.close()


def map_file(feature: int, slide: str) -> str:
    return f"maps/f{feature}_{slide}.png"


def draw_maps(wanted: dict[str, list[int]], stores: dict[str, Path], sae: str, scale: np.ndarray, folder: Path) -> int:
    """For each slide, the maps of the features listed for it: activation / the feature's cohort maximum
    (``scale``), read in one pass over the slide's activations; one pixel per tile (the page enlarges them
    without smoothing). Returns the number of maps."""
    from matplotlib import colormaps

    (folder / "maps").mkdir(exist_ok=True)
    palette = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)

    def one(slide_name: str) -> int:
        store = TileStore.open(stores[slide_name])
        columns = np.array(sorted(set(wanted[slide_name])), dtype=np.int64)
        values = _columns(store, sae, columns)
        where = store.grid_index
        inside = (where >= 0).all(axis=1)
        rows, cols = (where[inside].max(axis=0) + 1) if inside.any() else (1, 1)
        for j, feature in enumerate(columns):
            image = np.full((rows, cols, 3), 255, dtype=np.uint8)
            level = np.nan_to_num(values[:, j] / max(float(scale[feature]), 1e-12), nan=0.0)
            image[where[inside, 0], where[inside, 1]] = palette[np.clip((level[inside] * 255).astype(int), 0, 255)]
            Image.fromarray(image).save(folder / map_file(int(feature), slide_name), compress_level=1)
        return len(columns)

    return sum(_per_slide(one, sorted(wanted)))


def _columns(store: TileStore, sae: str, columns: np.ndarray, block_rows: int = 8192) -> np.ndarray:
    """(N, len(columns)) activations of some features, streamed over row blocks (never the whole array)."""
    array = store.activations(sae)
    out = np.empty((array.shape[0], len(columns)), dtype=np.float32)
    for begin in range(0, array.shape[0], block_rows):
        out[begin : begin + block_rows] = np.asarray(array[begin : begin + block_rows])[:, columns]
    return out


def group_by_slide(pairs) -> dict:
    grouped: dict = defaultdict(set)
    for slide, tile in pairs:
        grouped[slide].add(tile)
    return grouped
