"""Slide-level variables against each feature's per-slide mean, with the slide as the unit of the test.

Tiles of one slide are not independent samples of a diagnosis: n is the number of slides, never tiles.
Numbers: Spearman's rho; categories: Kruskal-Wallis H on the slides' ranks (two groups: the Mann-Whitney
test). With few slides (≤ 7) p is exact, from every permutation of the variable over the slides; with more,
from the statistic's distribution over n slides (t with n - 2 degrees of freedom for rho, chi-squared with
groups - 1 for H), which, unlike 9,999 random permutations (p ≥ 1e-4), leaves Benjamini-Hochberg room over
thousands of features. q by Benjamini-Hochberg over the features, per variable.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import chi2, false_discovery_control, rankdata
from scipy.stats import t as student_t

#: Below this many slides with a value no test is made (the smallest p would exceed 0.05).
MIN_SLIDES = 4
#: Up to this many slides, p comes from every permutation (7! = 5,040 orders).
EXACT_SLIDES = 7


def slide_associations(
    means: np.ndarray, variables: pd.DataFrame
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(names, kinds, statistic, p, q, notes) for each variable column against ``means`` (S slides × F)."""
    names, kinds, stats, ps, qs, notes = [], [], [], [], [], []
    for column in variables.columns:
        values = variables[column]
        known = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
        numeric = pd.api.types.is_numeric_dtype(values)
        groups = values[known].nunique()
        if known.sum() < MIN_SLIDES or groups < 2:
            notes.append(f"{column}: {int(known.sum())} slides with a value, {groups} distinct; not tested "
                         f"(needs {MIN_SLIDES} slides and 2 values)")  # fmt: skip
            continue
        x = means[known]
        if numeric:
            stat, p = _spearman(x, values[known].to_numpy(dtype=float))
        else:
            stat, p = _kruskal(x, values[known].astype(str).to_numpy())
        names.append(str(column))
        kinds.append("spearman" if numeric else "kruskal")
        stats.append(stat)
        ps.append(p)
        qs.append(false_discovery_control(p, method="bh"))
    f = means.shape[1]
    as_array = lambda rows: np.array(rows, dtype=np.float64).reshape(len(rows), f)  # noqa: E731
    return names, kinds, as_array(stats), as_array(ps), as_array(qs), notes


def _permutations(n: int) -> np.ndarray:
    """(n!, n) every order of n slides, the identity first."""
    return np.array(list(itertools.permutations(range(n))))


#: Permutations evaluated together: bounds the null's memory to BATCH × features (≈ 25 MB at 3,072 features).
BATCH = 1_000


def _p_values(orders: np.ndarray, statistic) -> tuple[np.ndarray, np.ndarray]:
    """The observed statistic (orders[0] is the identity) and the share of orders at least as extreme,
    computed a batch of orders at a time so memory stays flat however many permutations."""
    observed = statistic(orders[:1])[0]
    extreme = np.zeros_like(observed)
    for begin in range(0, len(orders), BATCH):
        extreme += (statistic(orders[begin : begin + BATCH]) >= observed - 1e-12).sum(axis=0)
    return observed, extreme / len(orders)


def _standard(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    norm = np.sqrt((a**2).sum(axis=0))
    return a / np.where(norm > 0, norm, 1.0)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    zx = _standard(rankdata(x, axis=0))
    zy = _standard(rankdata(y)[:, None])[:, 0]
    n = len(y)
    if n <= EXACT_SLIDES:
        _, p = _p_values(_permutations(n), lambda orders: np.abs(zy[orders] @ zx))
        return zy @ zx, p
    rho = np.clip(zy @ zx, -1.0, 1.0)
    t = rho * np.sqrt((n - 2) / np.maximum(1.0 - rho**2, 1e-300))
    return rho, 2 * student_t.sf(np.abs(t), n - 2)


def _kruskal(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(labels)
    ranks = rankdata(x, axis=0)
    codes = np.unique(labels, return_inverse=True)[1]
    sizes = np.bincount(codes).astype(float)

    def h(orders: np.ndarray) -> np.ndarray:
        onehot = np.eye(len(sizes))[codes[orders]]  # (P, n, G)
        rank_sums = np.einsum("png,nf->pgf", onehot, ranks)
        return 12.0 / (n * (n + 1)) * (rank_sums**2 / sizes[None, :, None]).sum(axis=1) - 3 * (n + 1)

    if n <= EXACT_SLIDES:
        return _p_values(_permutations(n), h)
    observed = h(np.arange(n)[None])[0]
    return observed, chi2.sf(observed, len(sizes) - 1)
