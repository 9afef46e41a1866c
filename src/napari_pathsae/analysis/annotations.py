"""A per-tile table the user supplies (cell counts, grades, stain scores…) set against SAE features over tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.store import TileStore
from ..errors import PathsaeError
from ..names import feature_names
from .spots import correlation_table


def read_tile_annotations(store: TileStore, path: str | Path) -> pd.DataFrame:
    """The table's numeric columns, one row per store tile (NaN where the table says nothing).

    Rows name their tile by a ``tile`` column (the store's tile index, as `pathsae export` writes it)
    or by ``x`` and ``y``: a level-0 point inside the tile (a cell centroid, a tile corner).
    """
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PathsaeError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    if "tile" in table:
        tiles = pd.to_numeric(table["tile"], errors="coerce").to_numpy()
        keys = ["tile"]
    elif {"x", "y"} <= set(table.columns):
        tiles = store.tile_at(table[["x", "y"]].to_numpy(dtype=float)).astype(float)
        tiles[tiles < 0] = np.nan
        keys = ["x", "y"]
    else:
        raise PathsaeError(f"{path}: needs a 'tile' column, or 'x' and 'y' columns (level-0 pixels)")
    values = table.drop(columns=keys).select_dtypes("number")
    if values.shape[1] == 0:
        raise PathsaeError(f"{path}: no numeric column to correlate besides {', '.join(keys)}")
    valid = np.isfinite(tiles) & (tiles >= 0) & (tiles < store.n_tiles)
    if not valid.any():
        raise PathsaeError(f"{path}: no row names a tile of {store.path.name}")
    out = pd.DataFrame(np.nan, index=np.arange(store.n_tiles), columns=values.columns)
    grouped = values[valid].groupby(tiles[valid].astype(np.int64)).mean()  # several cells in a tile: their mean
    out.loc[grouped.index] = grouped.to_numpy()
    return out


def correlate_annotations(store_path, annotations, sae: str | None = None, everything: bool = False) -> pd.DataFrame:
    """Feature x annotation correlation table over the tiles that have both (``n_tiles``)."""
    store = TileStore.open(store_path)
    activations = np.asarray(store.activations(sae)[:], dtype=np.float32)
    table = read_tile_annotations(store, annotations)
    names = feature_names(activations.shape[1])
    centres = store.tile_centres * store.slide_mpp
    result = correlation_table(activations, table, centres, names, everything=everything)
    return result.rename(columns={"gene": "annotation", "n_spots": "n_tiles"})
