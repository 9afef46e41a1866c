"""STAMP (Kather lab) tile features: h5 ``feats`` (N, D) and ``coords`` (N, 2) in µm, attributes on the file.

STAMP ≥ 2.1 writes ``unit = "um"``, ``tile_size_um``, ``tile_size_px`` and ``extractor``; 2.0 wrote
``tile_size`` with ``unit``. Files from before STAMP 2 (no unit, 224 px tiles of 256 µm) are refused: their
coordinates cannot be placed on the slide without guessing. µm become level-0 px with the slide's µm/px
(the one STAMP used: the slide's metadata, or ``--slide-mpp`` as given to STAMP). STAMP reads
``ceil(tile_size_um / mpp)`` slide pixels per tile and its supertiles are whole numbers of those, so that is
the side and the grid's step; the µm corners it records inside a supertile step by ``tile_size_um`` instead
and so sit up to a pixel a tile off the pixels read (the store keeps the recorded corners, rounded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import PathsaeError
from . import EmbeddingImporter, ImportedTiles, register_importer
from .h5 import file_attrs, h5_keys, read_coords, read_matrix


def is_stamp(path: Path) -> bool:
    return {"feats", "coords"} <= h5_keys(path)[0]


def read_stamp(path: Path, coords_path: Path | None, mpp: float, encoder: str | None = None) -> ImportedTiles:
    if coords_path is not None:
        raise PathsaeError("STAMP files hold their own coordinates: drop --coords")
    attrs = file_attrs(path)
    coords_um, coord_attrs = read_coords(path)
    unit = attrs.get("unit", coord_attrs.get("unit"))
    tile_um = attrs.get("tile_size_um", attrs.get("tile_size") if unit == "um" else None)
    if unit != "um" or not tile_um:
        raise PathsaeError(
            f"{path.name}: coordinates without a unit and tile size (STAMP before 2.0?); re-extract with STAMP ≥ 2"
        )
    features = read_matrix(path, "feats")
    if len(features) != len(coords_um):
        raise PathsaeError(f"{len(features)} feature rows but {len(coords_um)} tile coordinates: not the same tiles")
    coords = coords_um / mpp
    side0 = float(np.ceil(float(tile_um) / mpp - 1e-6))
    tile_px = int(attrs["tile_size_px"]) if attrs.get("tile_size_px") else None
    encoder = str(attrs.get("extractor") or attrs.get("encoder") or "unknown")
    return ImportedTiles(coords, side0, side0, features, encoder, tile_px, "stamp", attrs)


register_importer(EmbeddingImporter("stamp", "STAMP h5 (feats + coords in µm)", is_stamp, read_stamp))
