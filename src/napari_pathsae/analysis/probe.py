"""Cross-validated linear probes with spatially blocked folds: held-out predictions and coefficients.

Neighbouring spots share tissue and expression, so random folds leak; here whole squares of tissue
are held out together (groups for scikit-learn's GroupKFold), as in Graziani et al. 2022's held-out
evaluation and the spatial-transcriptomics literature's blocked cross-validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PathsaeError

#: Ridge penalties tried inside each training fold (on standardised inputs and targets).
ALPHAS = np.logspace(-1, 5, 13)


def spatial_blocks(xy_um: np.ndarray, block_um: float) -> np.ndarray:
    """(N,) int: the square of side ``block_um`` each point falls in (the group a fold holds out whole)."""
    cells = np.floor((xy_um - xy_um.min(axis=0)) / block_um).astype(np.int64)
    _, blocks = np.unique(cells, axis=0, return_inverse=True)
    return blocks.ravel()


def spatial_folds(xy_um: np.ndarray, n_folds: int = 5, block_um: float = 1000.0) -> tuple[np.ndarray, float]:
    """(N,) fold of each point (0..n_folds-1) and the block side used.

    Blocks are halved until there are at least ``2 * n_folds`` of them, so a small section still
    gets balanced folds; a section too small for that is an error.
    """
    from sklearn.model_selection import GroupKFold

    if n_folds < 2:
        raise PathsaeError(f"{n_folds} folds: held-out prediction needs at least 2")
    if not (np.isfinite(block_um) and block_um > 0):
        raise PathsaeError(f"held-out squares of {block_um} µm: give a positive side")
    if len(xy_um) < 2 * n_folds:
        raise PathsaeError(f"{len(xy_um)} spots cannot make {n_folds} held-out folds; need at least {2 * n_folds}")
    side = float(block_um)
    blocks = spatial_blocks(xy_um, side)
    while blocks.max() + 1 < 2 * n_folds and side > 1e-3:
        side /= 2
        blocks = spatial_blocks(xy_um, side)
    if blocks.max() + 1 < n_folds:
        raise PathsaeError(f"the spots sit in {blocks.max() + 1} places; {n_folds} held-out folds need more")
    folds = np.empty(len(xy_um), dtype=np.int64)
    for fold, (_, test) in enumerate(GroupKFold(n_splits=n_folds).split(xy_um, groups=blocks)):
        folds[test] = fold
    return folds, side


def zscore(m: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm: ``zscore(a).T @ zscore(b)`` is their Pearson r."""
    centred = m - m.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / norm


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``a`` with the same column of ``b`` (NaN where either is constant)."""
    return (zscore(a) * zscore(b)).sum(axis=0)


@dataclass
class ProbeResult:
    """Held-out predictions of each target, their Pearson r, and the coefficients of a fit on all spots."""

    predicted: np.ndarray  # (N, T) out-of-fold predictions, in the targets' units
    r: np.ndarray  # (T,) Pearson r of held-out predictions with the measured targets, over all spots
    r_per_fold: np.ndarray  # (folds, T)
    coefficients: np.ndarray  # (P, T) on standardised inputs and targets (comparable across inputs)
    alpha: np.ndarray  # (T,) penalty chosen on all spots
    folds: np.ndarray  # (N,)


def fold_r(measured: np.ndarray, predicted: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """(folds, T) Pearson r inside each held-out fold."""
    return np.stack([pearson_columns(measured[folds == f], predicted[folds == f]) for f in np.unique(folds)])


def ridge_probe(inputs: np.ndarray, targets: np.ndarray, folds: np.ndarray, block: int = 2048) -> ProbeResult:
    """Ridge regression of each target on the inputs: penalty chosen inside each training fold, r on the held-out fold.

    Inputs and targets are standardised with the training fold's statistics only. Targets are fitted
    ``block`` at a time: scikit-learn's penalty search holds spots x targets x a few copies.
    """
    parts = [_ridge_block(inputs, targets[:, b : b + block], folds) for b in range(0, targets.shape[1], block)]
    predicted = np.concatenate([p[0] for p in parts], axis=1)
    return ProbeResult(
        predicted=predicted,
        r=pearson_columns(targets, predicted),
        r_per_fold=fold_r(targets, predicted, folds),
        coefficients=np.concatenate([p[1] for p in parts], axis=1),
        alpha=np.concatenate([p[2] for p in parts]),
        folds=folds,
    )


def _ridge_block(inputs: np.ndarray, targets: np.ndarray, folds: np.ndarray):
    """(held-out predictions, coefficients (P, T), penalties (T,)) for one block of targets."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(x: np.ndarray, y: np.ndarray):
        mean, scale = y.mean(axis=0), y.std(axis=0)
        scale[scale == 0] = 1.0
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS, alpha_per_target=True))
        model.fit(x, (y - mean) / scale)
        return model, mean, scale

    predicted = np.empty_like(targets, dtype=np.float64)
    for fold in np.unique(folds):
        train = folds != fold
        model, mean, scale = fit(inputs[train], targets[train])
        predicted[~train] = model.predict(inputs[~train]).reshape(-1, targets.shape[1]) * scale + mean
    ridge = fit(inputs, targets)[0][-1]
    coefficients = np.asarray(ridge.coef_).reshape(targets.shape[1], -1).T
    return predicted, coefficients, np.broadcast_to(np.asarray(ridge.alpha_, dtype=float), (targets.shape[1],))
