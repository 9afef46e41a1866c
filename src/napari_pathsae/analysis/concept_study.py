"""Concepts over one or many slides (Bajger et al. 2025): clusters of SAE activations, their maps, which
concepts border which (concept_space.py), and their importance for a spot-level target (genes at Visium
spots) or a slide-level one (a table per slide).

Importance is a ridge regression of the target on concept weights (a spot's share of each concept, a
slide's mean weight): standardised coefficients, each concept's own r, and the held-out r of the whole
model (spatially blocked folds over spots, leave-one-slide-out over slides).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from ..data.store import TileStore
from ..errors import PathsaeError
from .features import concept_legend, concept_weights
from .probe import ridge_probe, zscore
from .spots import spot_design


@dataclass
class Concepts:
    labels: list[np.ndarray]  # per store: (N,) 1..k, 0 where the tile is not computed
    weights: list[np.ndarray]  # per store: (N, k), NaN where the tile is not computed
    profiles: np.ndarray  # (k, F)
    legend: pd.DataFrame  # concept, tiles, top_features


def find_concepts(
    stores: list[TileStore], n_concepts: int, method: str = "kmeans", sae: str | None = None, seed: int = 0
) -> Concepts:
    """Concepts fitted on every store's tiles together, so concept c means the same thing on every slide."""
    arrays = [np.asarray(store.activations(sae)[:], dtype=np.float32) for store in stores]
    if len({a.shape[1] for a in arrays}) > 1:
        raise PathsaeError("the stores hold activations of different widths; encode them with the same SAE")
    labels, profiles, weights = concept_weights(np.concatenate(arrays), n_concepts, method, seed)
    bounds = np.cumsum([0, *(len(a) for a in arrays)])
    split = [slice(a, b) for a, b in pairwise(bounds)]
    legend = concept_legend(profiles, labels, {})
    return Concepts([labels[s] for s in split], [weights[s] for s in split], profiles, legend)


def tile_concept_table(store_name: str, store: TileStore, labels: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """One row per computed tile: store, tile, level-0 x/y of its corner, concept, and its weight on each concept."""
    computed = np.flatnonzero(labels > 0)
    coords = store.coords[computed]
    table = pd.DataFrame(
        {"store": store_name, "tile": computed, "x": coords[:, 0], "y": coords[:, 1], "concept": labels[computed]}
    )
    columns = [f"w{c + 1}" for c in range(weights.shape[1])]
    return pd.concat([table, pd.DataFrame(weights[computed], columns=columns)], axis=1)


def _importance_rows(inputs: np.ndarray, targets: pd.DataFrame, folds: np.ndarray, unit: str) -> pd.DataFrame:
    result = ridge_probe(inputs, targets.to_numpy(), folds)
    own_r = zscore(inputs).T @ zscore(targets.to_numpy())  # (concepts, targets)
    rows = []
    for t, target in enumerate(targets.columns):
        for c in range(inputs.shape[1]):
            rows.append(
                {"target": target, "concept": c + 1, "coefficient": result.coefficients[c, t],
                 "concept_r": own_r[c, t], "model_r": result.r[t], "n": len(inputs), "unit": unit}
            )  # fmt: skip
    return pd.DataFrame(rows)


def spot_importance(
    store: TileStore,
    sample,
    weights: np.ndarray,
    genes: list[str] | None,
    top_genes: int = 20,
    n_folds: int = 5,
    block_um: float = 1000.0,
) -> pd.DataFrame:
    """Concept importance for each gene over the Visium spots (spot weights: overlap-weighted tile weights)."""
    design = spot_design(store, sample, weights, genes, None if genes else top_genes, n_folds, block_um)
    return _importance_rows(design.inputs, design.expression, design.folds, "spot")


def slide_importance(names: list[str], weights: list[np.ndarray], targets: pd.DataFrame) -> pd.DataFrame:
    """Concept importance for slide-level targets (``targets`` indexed by store name, numeric columns)."""
    missing = [n for n in names if n not in targets.index]
    if missing:
        raise PathsaeError(f"the slide table has no row for {', '.join(missing[:5])} (first column: store name)")
    if len(names) < 3:
        raise PathsaeError(f"slide-level importance needs at least 3 slides; got {len(names)}")
    means = np.stack([np.nanmean(w, axis=0) for w in weights]).astype(np.float64)
    values = targets.loc[names].select_dtypes("number")
    if values.shape[1] == 0 or not np.isfinite(values.to_numpy()).all():
        raise PathsaeError("the slide table needs numeric target columns with a value for every slide")
    return _importance_rows(means, values.astype(np.float64), np.arange(len(names)), "slide")
