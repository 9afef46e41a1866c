"""Embeddings another tool computed (TRIDENT, CLAM, STAMP) made into an ordinary store of their slide.

The tiles keep the file's order and exact corners (to the level-0 pixel); a grid is fitted to them for maps,
spot overlaps and the viewer: its step is the file's (the side, or less when tiles overlap), its origin the
tiles' own phase. Tiles that do not sit on one grid (CLAM's patching starts each tissue piece at its own
corner) are placed on the nearest cell and the largest shift is reported; two tiles on one cell are refused.
The store is the same schema as an embedded one, so train/encode/correlate/export read it unchanged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.store import TileStore, content_sha256, slide_sha256, writer_lock
from ..data.tiles import TileGeometry, TileGrid, read_level_for, tissue_fractions, tissue_mask
from ..errors import PathsaeError
from ..io.importers import ImportedTiles, importer_for
from ..io.slides import Slide, open_slide

log = logging.getLogger(__name__)

#: Tiles shifted more than this (level-0 px) onto the fitted grid are reported.
SHIFT_REPORTED_PX = 1.0


@dataclass(frozen=True)
class FittedGrid:
    grid_index: np.ndarray  # (N, 2) int (row, col)
    origin0: tuple[float, float]  # level-0 (x, y) of cell (0, 0)
    max_shift0: float  # largest distance (level-0 px, per axis) between a tile's cell and where it is


def fit_grid(coords: np.ndarray, side0: float, step0: float) -> FittedGrid:
    """The grid of cells ``step0`` apart nearest to the tiles: its phase is the slide's corner when that fits
    them as well as the tiles' most common phase does (corners rounded to whole pixels shift by ≤ 0.5 px)."""
    cells = coords + (side0 - step0) / 2  # where each tile's cell starts: its middle part when tiles overlap
    common = np.empty(2)
    for axis in (0, 1):
        values, counts = np.unique(np.round(np.mod(cells[:, axis], step0), 2), return_counts=True)
        common[axis] = values[np.argmax(counts)]
    at_corner, at_common = _largest_shift(cells, np.zeros(2), step0), _largest_shift(cells, common, step0)
    corner = at_corner <= max(at_common, 0.5 + 1e-6)
    phase, shift = (np.zeros(2), at_corner) if corner else (common, at_common)
    index = np.round((cells - phase) / step0).astype(np.int64)
    low = np.minimum(index.min(axis=0), 0)  # cells before the phase's first one: the grid starts there
    index -= low
    origin = phase + low * step0
    grid_index = index[:, ::-1].astype(np.int32)  # (x, y) → (row, col)
    _, counts = np.unique(grid_index, axis=0, return_counts=True)
    if (counts > 1).any():
        raise PathsaeError(
            f"{int((counts - 1).sum())} tiles fall on the grid cell of another (tiles of several patchings in one "
            "file, or overlapping tiles without their overlap recorded?)"
        )
    return FittedGrid(grid_index, (float(origin[0]), float(origin[1])), shift)


def _largest_shift(cells: np.ndarray, phase: np.ndarray, step0: float) -> float:
    """The largest distance (per axis) from a cell corner to the nearest corner of the grid with this phase."""
    offset = np.mod(cells - phase, step0)
    return float(np.minimum(offset, step0 - offset).max())


def check_tiles_fit(tiles: ImportedTiles, slide: Slide, name: str) -> None:
    """Refused in one line: a file made from another slide, or tiles lying off this one."""
    height, width = slide.shape_yx
    if tiles.slide_shape_xy is not None and tuple(tiles.slide_shape_xy) != (width, height):
        w, h = tiles.slide_shape_xy
        raise PathsaeError(f"{name} was made from a {w}x{h} px slide; {slide.path.name} is {width}x{height} px")
    x, y = tiles.coords[:, 0], tiles.coords[:, 1]
    outside = (x >= width) | (y >= height) | (x + tiles.side0 <= 0) | (y + tiles.side0 <= 0)
    if outside.any():
        hint = " (is the slide's µm/px right? --slide-mpp)" if tiles.format == "stamp" else ""
        raise PathsaeError(
            f"{int(outside.sum())} of {len(x)} tiles in {name} lie outside the {width}x{height} px slide "
            f"{slide.path.name}: not the slide these features came from{hint}"
        )


def encoder_record(tiles: ImportedTiles, source_sha256: str) -> dict:
    """The encoder's provenance as a store records it. Imports of one encoder by one tool share an identity
    (an SAE trained on one applies to the others); an encoder the file does not name is tied to this file."""
    name = tiles.encoder if tiles.encoder != "unknown" else f"unknown ({source_sha256[:12]})"
    return {
        "spec": f"{name} via {tiles.format}",
        "architecture": name,
        "input_size": tiles.tile_px,
        "pooling": f"as written by {tiles.format}",
        "random_init": False,
        "weights_sha256": f"not recorded: imported from {tiles.format}",
        "width": int(tiles.features.shape[1]),
        "imported_from": tiles.format,
    }


def import_embeddings(
    path: str | Path,
    slide_path: str | Path,
    store_path: str | Path,
    format: str | None = None,
    coords_path: str | Path | None = None,
    slide_mpp: float | None = None,
    encoder: str | None = None,
    chunk_tiles: int = 512,
    slide_backend: str | None = None,
) -> dict:
    """Import one embedding file of ``slide_path`` into the store ``store_path``; returns the summary.

    ``encoder`` names the encoder when the file does not (CLAM); an existing store of the same slide, file
    and grid is finished, not redone; of anything else, refused."""
    path, start = Path(path), time.perf_counter()
    coords_path = Path(coords_path) if coords_path is not None else None
    importer = importer_for(path, format)
    slide = open_slide(slide_path, mpp=slide_mpp, backend=slide_backend)
    try:
        if slide.mpp is None:
            raise PathsaeError(f"{slide.path.name}: resolution unknown; pass the slide's µm/px (--slide-mpp)")
        tiles = importer.read(path, coords_path, slide.mpp, encoder)
        if encoder:
            tiles.encoder = encoder
        elif tiles.encoder == "unknown":
            tiles.notes.append(f"{path.name} does not name its encoder: give it with --encoder NAME")
        if len(tiles.coords) == 0:
            raise PathsaeError(f"{path.name} holds no tiles")
        check_tiles_fit(tiles, slide, path.name)
        fitted = fit_grid(tiles.coords, tiles.side0, tiles.step0 or tiles.side0)
        if fitted.max_shift0 > SHIFT_REPORTED_PX:
            tiles.notes.append(
                f"tiles are not on one grid: shown on the nearest grid cell, moved by up to "
                f"{fitted.max_shift0 * slide.mpp:.1f} µm (their exact corners are kept)"
            )
        sha = slide_sha256(path)  # a file, or every file of a folder (a SpatialData zarr)
        store = _create_store(store_path, slide, tiles, fitted, (path, sha), coords_path, chunk_tiles)
        with writer_lock(store.path):
            for chunk in store.pending_chunks():
                rows = store.chunk_slices()[chunk]
                store.write_chunk(chunk, {"pooled": tiles.features[rows]})
            summary = {
                "imported": str(path), "format": tiles.format, "slide": str(slide_path), "store": str(store_path),
                "tiles": len(tiles.coords), "width": int(tiles.features.shape[1]), "encoder": tiles.encoder,
                "seconds": round(time.perf_counter() - start, 3), "notes": list(tiles.notes),
            }  # fmt: skip
            if not store.complete:
                store.mark_complete(summary)
    finally:
        slide.close()
    bad = int((~np.isfinite(tiles.features).all(axis=1)).sum())
    if bad:
        log.warning("%s: %d tiles have NaN/inf features; train and encode skip them", path.name, bad)
    return summary


def _create_store(store_path, slide, tiles: ImportedTiles, fitted: FittedGrid, source, coords_path, chunk_tiles):
    """The store of the imported tiles: their tissue share measured on this slide, the grid fitted to them."""
    coords = np.round(tiles.coords).astype(np.int64)
    tile_px = tiles.tile_px or round(tiles.side0)
    geometry = TileGeometry(tile_px, tiles.side0 * slide.mpp / tile_px, 0.0)
    fractions = tissue_fractions(tissue_mask(slide), coords.astype(float), tiles.side0)
    shape = tuple(int(v) + 1 for v in fitted.grid_index.max(axis=0))
    grid = TileGrid(
        coords, tiles.side0, fractions, geometry, slide.mpp, read_level_for(slide, geometry.mpp), shape,
        fitted.grid_index, tiles.step0 or tiles.side0, fitted.origin0, imported=True,
    )  # fmt: skip
    path, sha = source
    identity = {"imported_sha256": sha}
    if coords_path is not None:
        identity["imported_coords_sha256"] = content_sha256(coords_path)
    provenance = {
        "imported_from": tiles.format,
        "imported_file": str(Path(path).resolve()),
        "imported_coords_file": str(Path(coords_path).resolve()) if coords_path is not None else None,
        "imported_metadata": tiles.metadata,
        "imported_notes": tiles.notes,
        "grid_max_shift_level0_px": fitted.max_shift0,
    }
    encoder = encoder_record(tiles, sha)
    widths = {"pooled": (int(tiles.features.shape[1]),)}
    return TileStore.create(store_path, slide, grid, encoder, widths, chunk_tiles, provenance, identity)
