"""Tile tables as TRIDENT-style h5, for the user's own MIL pipelines: ``features`` (N, D) and ``coords`` (N, 2)
level-0 px, with TRIDENT's patch attributes on ``coords`` and the encoder (and SAE) on ``features``.

TRIDENT's attributes assume whole-pixel tiles; this package's tiles are a fractional number of level-0 pixels
(112 µm at 0.2527 µm/px is 443.2 px), so ``coords`` also carries the exact side (trident.EXACT_SIDE), which
TRIDENT ignores and the importer reads back: export then import is exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.store import TileStore
from ..io.importers.trident import EXACT_SIDE


def write_trident_h5(store: TileStore, meta: pd.DataFrame, matrix: np.ndarray, kind: str, sae: str | None, temp: Path):
    """Write the tile table ``meta`` (its x, y) with ``matrix`` to ``temp``, TRIDENT's layout."""
    import h5py

    record = store.provenance
    side0, step0 = store.tile_side0, store.grid_step0
    tile_px = int(record["geometry"]["tile_px"])
    ratio = side0 / tile_px  # level-0 px per target px
    height, width = record["slide_shape_yx"]
    coords_attrs = {
        "patch_size": tile_px,
        "patch_size_level0": round(side0),
        EXACT_SIDE: float(side0),
        "level0_magnification": 10.0 / store.slide_mpp,
        "target_magnification": 10.0 / (store.slide_mpp * ratio),
        "overlap": (side0 - step0) / ratio,
        "name": Path(record["slide_path"]).stem,
        "level0_width": int(width),
        "level0_height": int(height),
    }
    encoder = record["encoder"]
    features_attrs = {
        "name": Path(record["slide_path"]).stem,
        "encoder": encoder.get("architecture") or encoder.get("spec"),
        "values": kind,
        "sae": sae or "",
        "pathsae_store": str(store.path),
    }
    with h5py.File(temp, "w") as f:
        features = f.create_dataset("features", data=np.asarray(matrix, np.float32))
        coords = f.create_dataset("coords", data=meta[["x", "y"]].to_numpy(np.int64))
        f.create_dataset("tiles", data=meta["tile"].to_numpy(np.int64))  # rows of the store, beyond TRIDENT's
        for dataset, attrs in ((coords, coords_attrs), (features, features_attrs)):
            for key, value in attrs.items():
                dataset.attrs[key] = value
        f.attrs["pathsae_provenance"] = json.dumps(record, default=str)
