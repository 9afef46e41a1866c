"""The atlas's pictures: real tiles cut once from their slides (JPEG thumbnails), and small maps of where a
feature fires on a slide (PNG, one pixel block per tile, magma)."""

from __future__ import annotations

import logging
from collections import defaultdict
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
MAP_PX = 200


def tile_file(slide: str, tile: int) -> str:
    return f"tiles/{slide}_{tile}.jpg"


def cut_tiles(wanted: dict[str, set[int]], stores: dict[str, Path], folder: Path) -> tuple[int, list[str]]:
    """Thumbnails of the ``wanted`` tiles of each slide under ``folder/tiles``; a slide whose file is gone
    gets grey squares and a note. Returns (tiles written, notes)."""
    (folder / "tiles").mkdir(exist_ok=True)
    written, notes = 0, []
    for slide_name, tiles in sorted(wanted.items()):
        indices = np.array(sorted(tiles), dtype=np.int64)
        store = TileStore.open(stores[slide_name])
        pixels = _read(store, indices, slide_name, notes)
        for tile, image in zip(indices, pixels, strict=True):
            thumb = Image.fromarray(image).resize((THUMB_PX, THUMB_PX), Image.Resampling.BILINEAR)
            thumb.save(folder / tile_file(slide_name, int(tile)), quality=88)
            written += 1
    return written, notes


def _read(store: TileStore, indices: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
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
    (``scale``), read in one pass over the slide's activations. Returns the number of maps."""
    from matplotlib import colormaps

    (folder / "maps").mkdir(exist_ok=True)
    palette = (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    count = 0
    for slide_name, features in sorted(wanted.items()):
        store = TileStore.open(stores[slide_name])
        columns = np.array(sorted(set(features)), dtype=np.int64)
        values = _columns(store, sae, columns)
        rows, cols = store.grid_shape
        cell = max(1, MAP_PX // max(rows, cols, 1))
        where = store.grid_index
        inside = (where[:, 0] >= 0) & (where[:, 0] < rows) & (where[:, 1] >= 0) & (where[:, 1] < cols)
        for j, feature in enumerate(columns):
            image = np.full((rows, cols, 3), 255, dtype=np.uint8)
            level = np.nan_to_num(values[:, j] / max(float(scale[feature]), 1e-12), nan=0.0)
            shade = palette[np.clip((level * 255).astype(int), 0, 255)]
            image[where[inside, 0], where[inside, 1]] = shade[inside]
            picture = Image.fromarray(image).resize((cols * cell, rows * cell), Image.Resampling.NEAREST)
            picture.save(folder / map_file(int(feature), slide_name), optimize=False)
            count += 1
    return count


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
