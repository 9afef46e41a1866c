"""Concepts in space: which concepts border which on one store's tile grid (a tumour edge against stroma).

The tiles are the nodes of a graph joining each tile to its 8 neighbours (squidpy's radius neighbours at
1.5 tile sides). Neighbourhood enrichment counts the edges between two concepts and compares them with
the counts after shuffling the concept labels over the same tiles: z > 0, the two touch more often than
chance; z < 0, they keep apart. Co-occurrence is the ratio P(b within d of a) / P(b within d) at growing
distances d: above 1, b gathers around a at that scale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.store import TileStore
from ..errors import PathsaeError
from .squidpy_quiet import radius_graph, squidpy

#: The tile graph joins tiles whose centres are closer than this many tile sides: the 8-neighbourhood
#: (diagonals at 1.41 sides), with room for the up-to-1-px rounding of the stored corners.
NEIGHBOUR_RADIUS_SIDES = 1.5
#: Co-occurrence within these distances (tile sides; each a disk, not a ring, as squidpy counts it).
#: The first matches the tile graph, so the nearest co-occurrence and the contacts see the same pairs.
CO_OCCURRENCE_SIDES = (1.5, 2.5, 4.0, 6.0, 10.0)
#: Fewer computed tiles than this leave too few edges for a permutation test to mean anything.
MIN_TILES = 10
#: co-occurrence compares every pair of tiles (memory grows as tiles x concepts²): larger stores are sampled.
CO_OCCURRENCE_MAX_TILES = 20_000


@dataclass
class ConceptNeighbourhood:
    """The spatial relations of the concepts on one store."""

    pairs: pd.DataFrame  # one row per ordered (concept_a, concept_b) of the concepts present
    co_occurrence: pd.DataFrame  # one row per (concept_a, concept_b, distance)


def tile_graph_adata(store: TileStore, labels: np.ndarray):
    """AnnData of the computed tiles (labels > 0): obs["concept"] categorical of the concepts present,
    obsm["spatial"] the tile centres in µm."""
    import anndata as ad

    labels = np.asarray(labels)
    if labels.shape != (store.n_tiles,):
        raise PathsaeError(f"{store.path.name}: {labels.shape[0]} concept labels for {store.n_tiles} tiles")
    computed = np.flatnonzero(labels > 0)
    present = np.unique(labels[computed])
    if len(computed) < MIN_TILES or len(present) < 2:
        raise PathsaeError(
            f"{store.path.name}: concept neighbourhoods need at least {MIN_TILES} computed tiles and 2 concepts; "
            f"it has {len(computed)} tiles of {len(present)} concept(s)"
        )
    centres_um = store.tile_centres[computed].astype(np.float64) * store.slide_mpp
    adata = ad.AnnData(
        obs=pd.DataFrame(
            {"tile": computed, "concept": pd.Categorical(labels[computed], categories=present)},
            index=computed.astype(str),
        )
    )
    adata.obsm["spatial"] = centres_um
    return adata


def concept_neighbourhood(
    store: TileStore, labels: np.ndarray, seed: int = 0, n_perms: int = 1000, store_name: str | None = None
) -> ConceptNeighbourhood:
    """Neighbourhood enrichment (z-scores, contacts) and co-occurrence over distance of the concepts
    ``labels`` (N,) (1..k; 0, not computed, left out) on the store's tile graph."""
    sq = squidpy()
    name = store_name or store.path.name.removesuffix(".zarr")
    adata = tile_graph_adata(store, labels)
    side_um = store.tile_side0 * store.slide_mpp
    radius_graph(adata, NEIGHBOUR_RADIUS_SIDES * side_um)
    with np.errstate(divide="ignore", invalid="ignore"):  # a pair no shuffle can change (z NaN): left NaN
        sq.gr.nhood_enrichment(adata, "concept", n_perms=n_perms, seed=seed, n_jobs=1, show_progress_bar=False)
    enrichment = adata.uns["concept_nhood_enrichment"]
    zscore, count = np.asarray(enrichment["zscore"]), np.asarray(enrichment["count"], dtype=np.int64)

    sample = adata
    if adata.n_obs > CO_OCCURRENCE_MAX_TILES:
        rng = np.random.default_rng(seed)
        sample = adata[np.sort(rng.choice(adata.n_obs, CO_OCCURRENCE_MAX_TILES, replace=False))].copy()
        sample.obs["concept"] = sample.obs["concept"].cat.remove_unused_categories()
    concepts = sample.obs["concept"].cat.categories.to_numpy()
    # squidpy counts pairs within interval[1:] (interval[0] is only the start of the axis)
    interval = np.array([0.0, *CO_OCCURRENCE_SIDES]) * side_um
    with warnings.catch_warnings():  # squidpy 1.8 warns that the bar option has no effect; older ones draw a bar
        warnings.filterwarnings("ignore", message=".*deprecated and has no effect", category=FutureWarning)
        sq.gr.co_occurrence(sample, "concept", interval=interval, n_jobs=1, show_progress_bar=False)
    occurrence = sample.uns["concept_co_occurrence"]
    occ, thresholds = np.asarray(occurrence["occ"]), np.asarray(occurrence["interval"])[1:]

    present = adata.obs["concept"].cat.categories.to_numpy()
    tiles = adata.obs["concept"].value_counts().reindex(present).to_numpy()
    nearest = {(a, b): occ[i, j, 0] for i, a in enumerate(concepts) for j, b in enumerate(concepts)}
    rows = []
    for i, a in enumerate(present):
        for j, b in enumerate(present):
            # squidpy's count is per tile of a, its neighbours of b: an edge inside one concept counts twice
            contacts = count[i, j] // 2 if i == j else count[i, j]
            rows.append(
                {"store": name, "concept_a": int(a), "concept_b": int(b), "tiles_a": int(tiles[i]),
                 "tiles_b": int(tiles[j]), "n_contacts": int(contacts), "nhood_z": float(zscore[i, j]),
                 "co_occurrence_ratio": float(nearest.get((a, b), np.nan)),
                 "co_occurrence_um": float(thresholds[0])}
            )  # fmt: skip
    distances = [
        {"store": name, "concept_a": int(a), "concept_b": int(b), "distance_um": float(d),
         "distance_tiles": float(d / side_um), "co_occurrence_ratio": float(occ[i, j, r]), "tiles": sample.n_obs}
        for i, a in enumerate(concepts) for j, b in enumerate(concepts) for r, d in enumerate(thresholds)
    ]  # fmt: skip
    return ConceptNeighbourhood(pd.DataFrame(rows), pd.DataFrame(distances))
