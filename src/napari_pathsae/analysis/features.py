"""Per-feature summaries of SAE activations, top tiles, and concepts (clusters of activation profiles)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PathsaeError
from ..names import feature_name

CONCEPT_METHODS = ("kmeans", "nmf")


def computed_rows(activations: np.ndarray) -> np.ndarray:
    """(N,) bool: tiles whose activations are computed (a tile not computed yet is a NaN row)."""
    return ~np.isnan(activations).any(axis=1)


def feature_table(activations: np.ndarray) -> pd.DataFrame:
    """One row per feature over the computed tiles: frequency, max, mean when active."""
    values = activations[computed_rows(activations)]
    n = len(values)
    active = values > 0
    count = active.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_active = np.where(count > 0, np.where(active, values, 0).sum(axis=0) / count, 0.0)
    return pd.DataFrame(
        {
            "feature": np.arange(activations.shape[1]),
            "frequency": count / max(n, 1),
            "max": values.max(axis=0) if n else np.zeros(activations.shape[1]),
            "mean_active": mean_active,
        }
    )


def top_tiles(values: np.ndarray, k: int = 12) -> np.ndarray:
    """Indices of the ``k`` highest finite positive values, highest first."""
    finite = np.flatnonzero(np.isfinite(values) & (values > 0))
    order = np.argsort(-values[finite], kind="stable")[:k]
    return finite[order]


def argmax_feature(activations: np.ndarray) -> np.ndarray:
    """(N,) int: 1 + the strongest feature of each tile; 0 where nothing fires or the tile is not computed."""
    filled = np.nan_to_num(activations, nan=0.0)
    best = filled.argmax(axis=1) + 1
    best[filled.max(axis=1) <= 0] = 0
    return best


def concept_weights(activations: np.ndarray, n_concepts: int = 8, method: str = "kmeans", seed: int = 0):
    """Concepts with each tile's weight on each: (labels (N,), profiles (k, F), weights (N, k), NaN if not computed).

    k-means on L2-normalised profiles (a tile's weights are one-hot), or NMF (weights are the tile's
    non-negative loadings; its label is the largest), as in Bajger et al. 2025's clustering of activations.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import NMF
    from sklearn.preprocessing import normalize

    if method not in CONCEPT_METHODS:
        raise PathsaeError(f"unknown concept method {method!r} (choose {', '.join(CONCEPT_METHODS)})")
    if not isinstance(n_concepts, (int, np.integer)) or n_concepts < 2:
        raise PathsaeError(f"{n_concepts} concepts: ask for at least 2")
    computed = computed_rows(activations)
    values = np.clip(activations[computed], 0, None)
    if len(values) < n_concepts:
        raise PathsaeError(
            f"{len(values)} computed tiles cannot make {n_concepts} concepts; compute more or ask for fewer"
        )
    labels = np.zeros(len(activations), dtype=np.int32)
    weights = np.full((len(activations), n_concepts), np.nan, dtype=np.float32)
    if method == "kmeans":
        model = KMeans(n_clusters=n_concepts, n_init=4, random_state=seed).fit(normalize(values))
        labels[computed] = model.labels_ + 1
        profiles = np.stack([values[model.labels_ == c].mean(axis=0) for c in range(n_concepts)])
        weights[computed] = np.eye(n_concepts, dtype=np.float32)[model.labels_]
    else:
        model = NMF(n_components=n_concepts, init="nndsvda", random_state=seed, max_iter=400)
        loadings = model.fit_transform(values)
        labels[computed] = loadings.argmax(axis=1) + 1
        profiles = model.components_
        weights[computed] = loadings
    return labels, profiles.astype(np.float32), weights


def concept_legend(
    profiles: np.ndarray, labels: np.ndarray, feature_labels: dict[int, str], top: int = 3
) -> pd.DataFrame:
    """One row per concept: label value, tile count and its strongest features (with user labels)."""
    rows = []
    for c, profile in enumerate(profiles):
        strongest = np.argsort(-profile)[:top]
        names = [feature_labels.get(int(f)) or feature_name(f) for f in strongest]
        rows.append({"concept": c + 1, "tiles": int((labels == c + 1).sum()), "top_features": ", ".join(names)})
    return pd.DataFrame(rows)
