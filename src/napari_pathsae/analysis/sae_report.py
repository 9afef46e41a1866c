"""An SAE's report card: the metrics SAELens and SAEBench users read, cross-seed stability per feature, and
how many features carry biology that survives the spatial test.

Reconstruction is measured on raw embeddings, as SAELens's evals do: ``explained_variance`` is
1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² over every tile (SAELens's current definition; ``explained_variance_legacy``
averages the per-tile ratio), ``mse`` the mean squared error per dimension, ``l2_ratio`` (shrinkage) the
mean ‖x̂‖ / ‖x‖. A feature is dead when it fires on no tile of the stores, dense when on more than 10 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.identity import check_sae_fits_store
from ..data.store import TileStore
from ..errors import PathsaeError
from ..models.sae.formats import load_sae, sae_layer, sae_provenance
from ..models.sae.train import DENSE_RATE
from ..names import feature_names
from .matching import match_saes
from .spots import correlate_activations, min_active_spots

#: Best-match activation r above which a feature counts as replicating in another seed (the PLUTO study
#: reports ≈ 0.96 for its best-matched biological features).
STABLE_R = 0.9
#: Significance of a feature's best gene under the spatial test.
MAX_Q = 0.05
#: Per-feature cross-seed stability written beside an SAE's weights (the feature browser reads it).
STABILITY_FILE = "stability.csv"


@dataclass
class SAEReport:
    summary: dict  # what report.json holds
    features: pd.DataFrame  # one row per feature: density, mean activation, stability, best gene


def reconstruction_metrics(sae, stores: list[TileStore], layer: str, rows: int = 4096) -> tuple[dict, np.ndarray]:
    """SAELens-style metrics over every finite embedding of the stores, and each feature's firing rate."""
    err = dev = legacy = l0 = l2_ratio = n = 0.0
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    mean = _embedding_mean(stores, layer, rows)
    with torch.no_grad():
        for store in stores:
            array = store.embeddings(layer)
            if array.shape[1] != sae.cfg.d_in:
                raise PathsaeError(
                    f"the SAE reads {sae.cfg.d_in}-d {layer}; {store.path.name} holds {array.shape[1]}-d"
                )
            for begin in range(0, array.shape[0], rows):
                x = torch.from_numpy(np.asarray(array[begin : begin + rows], dtype=np.float32))
                x = x[torch.isfinite(x).all(dim=1)].double()
                f = sae.encode(x.float()).double()
                x_hat = sae.decode(f.float()).double()
                per_tile = (x - x_hat).pow(2).sum(dim=1)
                spread = (x - mean).pow(2).sum(dim=1)
                err, dev = err + float(per_tile.sum()), dev + float(spread.sum())
                legacy += float((1 - per_tile / spread.clamp_min(1e-12)).sum())
                l0 += float((f > 0).sum())
                l2_ratio += float((x_hat.norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).sum())
                fires += (f > 0).sum(dim=0)
                n += len(x)
    if n < 2:
        raise PathsaeError("the stores hold fewer than 2 embedded tiles: nothing to report on")
    rate = (fires / n).numpy()
    metrics = {
        "explained_variance": 1 - err / max(dev, 1e-12),
        "explained_variance_legacy": legacy / n,
        "mse": err / (n * sae.cfg.d_in),
        "l0": l0 / n,
        "dead_fraction": float((rate == 0).mean()),
        "dense_fraction": float((rate > DENSE_RATE).mean()),
        "l2_ratio": l2_ratio / n,
        "n_features": int(sae.cfg.d_sae),
        "n_tiles": int(n),
    }
    return metrics, rate


def _embedding_mean(stores: list[TileStore], layer: str, rows: int) -> torch.Tensor:
    total, count = None, 0
    for store in stores:
        array = store.embeddings(layer)
        for begin in range(0, array.shape[0], rows):
            x = np.asarray(array[begin : begin + rows], dtype=np.float64)
            x = x[np.isfinite(x).all(axis=1)]
            total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
            count += len(x)
    return torch.from_numpy(total / max(count, 1))


def sae_report(
    sae_dir: str | Path, stores: list[TileStore], sample=None, other_sae: str | Path | None = None, top: int = 10
) -> SAEReport:
    """The report card of the SAE in ``sae_dir`` over ``stores``; with ``sample`` (a Visium sample of the first
    store's section) each feature's best gene under the spatial test; with ``other_sae`` (another seed)
    each feature's best-matched activation r there."""
    sae, cfg = load_sae(sae_dir)
    layer = sae_layer(cfg)
    for store in stores:  # another encoder's embeddings of the same width would give numbers about nothing
        check_sae_fits_store(sae_provenance(sae_dir, cfg), store, sae.cfg.d_in)
    metrics, rate = reconstruction_metrics(sae, stores, layer)
    features = pd.DataFrame({"feature": feature_names(sae.cfg.d_sae), "density": rate})
    summary = {"sae": str(Path(sae_dir)), "stores": [str(s.path) for s in stores], "layer": layer, **metrics}
    summary["log10_density_histogram"] = _density_histogram(rate)
    if other_sae is not None:
        summary["stability"], stability = _stability(sae_dir, other_sae, stores[0])
        features = pd.concat([features, stability], axis=1)
    if sample is not None:
        summary["biology"], best = _biology(stores[0], sample, sae, layer, top)
        features = features.merge(best, on="feature", how="left")
    return SAEReport(summary, features)


def _density_histogram(rate: np.ndarray) -> dict:
    """Counts of log10 firing rates in 0.5-wide bins (dead features counted apart)."""
    live = rate[rate > 0]
    edges = np.arange(np.floor(np.log10(live.min()) * 2) / 2 if len(live) else -6, 0.5, 0.5)
    counts, edges = np.histogram(np.log10(live), bins=edges) if len(live) else (np.zeros(0), edges)
    return {
        "edges": [round(float(e), 2) for e in edges],
        "counts": [int(c) for c in counts],
        "dead": int((rate == 0).sum()),
    }


def _stability(sae_dir, other_sae, store: TileStore) -> tuple[dict, pd.DataFrame]:
    """Each feature's best-matched activation r in the other SAE over the store's tiles, and a summary over
    the features that fire on enough tiles to correlate."""
    table = match_saes(sae_dir, other_sae, store)
    n = int(table["n_tiles"].iloc[0])
    firing = (table["frequency_a"] * n).round().to_numpy() >= min_active_spots(n)
    r = table["activation_r"].to_numpy()
    stable = firing & (np.nan_to_num(r) >= STABLE_R)
    summary = {
        "other_sae": str(other_sae),
        "median_r": float(np.nanmedian(r[firing])) if firing.any() else None,
        "stable_features": int(stable.sum()),
        "features_compared": int(firing.sum()),
        "stable_r": STABLE_R,
    }
    columns = pd.DataFrame(
        {"stability_r": r, "stability_match": table["activation_match_b"], "stable": stable, "comparable": firing}
    )
    return summary, columns


def _biology(store: TileStore, sample, sae, layer: str, top: int) -> tuple[dict, pd.DataFrame]:
    """Each feature's best gene (by the spatial test's conservative r) and how many features have a gene that
    survives the spatial test."""
    x = np.asarray(store.embeddings(layer)[:], dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    activations = np.full((len(x), sae.cfg.d_sae), np.nan, np.float32)
    with torch.no_grad():
        activations[finite] = sae.encode(torch.from_numpy(x[finite])).numpy()
    table = correlate_activations(store, sample, activations)
    best = table[table.rank_in_feature == 1][
        ["feature", "gene", "r", "spearman_r", "spearman_r_bound", "n_eff", "q", "q_spatial"]
    ]
    best = best.rename(columns={c: f"best_gene_{c}" if c != "feature" else c for c in best.columns})
    significant = best[best.best_gene_q_spatial <= MAX_Q].sort_values("best_gene_spearman_r_bound", ascending=False)
    summary = {
        "visium": str(sample.path),
        "n_spots": int(table["n_spots"].iloc[0]) if len(table) else 0,
        "features_with_spatial_gene": len(significant),
        "features_with_naive_gene": int((best.best_gene_q <= MAX_Q).sum()),
        "features_tested": int(best.feature.nunique()),
        "discoveries": table.attrs.get("discoveries", {}),
        "top": [
            {
                "feature": row.feature,
                "gene": row.best_gene_gene,
                "r": round(float(row.best_gene_r), 3),
                "spearman_r_bound": round(float(row.best_gene_spearman_r_bound), 3),
                "q_spatial": float(row.best_gene_q_spatial),
            }
            for row in significant.head(top).itertuples()
        ],
    }
    return summary, best
