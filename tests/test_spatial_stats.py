"""The spatial test against its naive twin on fields with known truth: independent smooth fields (a null the
naive test fails), a planted association, sparse coincidences, and the nulls' geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from napari_pathsae.analysis.spatial_null import null_positions
from napari_pathsae.analysis.spatial_stats import distance_classes, effective_n, morans_i, spatial_p_values
from napari_pathsae.analysis.spots import correlation_table

SIDE = 24  # a 24 x 24 lattice of spots 100 µm apart


def lattice() -> np.ndarray:
    yy, xx = np.mgrid[:SIDE, :SIDE]
    return np.stack([xx.ravel(), yy.ravel()], axis=1) * 100.0


def smooth_fields(rng: np.random.Generator, count: int, sigma: float = 3.0) -> np.ndarray:
    """(spots, count) independent Gaussian fields smoothed over ~sigma spots: patches, as tissue has."""
    noise = rng.normal(size=(count, SIDE, SIDE))
    fields = np.stack([ndimage.gaussian_filter(n, sigma, mode="reflect") for n in noise])
    return fields.reshape(count, -1).T


@pytest.mark.parametrize(("sigma", "naive_at_least", "spatial_below"), [(1.5, 0.5, 0.10), (3.0, 0.7, 0.15)])
def test_independent_smooth_fields_fool_the_naive_test_not_the_spatial_one(sigma, naive_at_least, spatial_below):
    """900 pairs of independent fields: at 5 % the naive test calls 57 % (patches ~1.5 spots) to 77 % (~3
    spots) of them real; the spatial test 5-8 % and 9-12 % (measured over seeds 0-2). CRH's test is a
    little liberal when the effective spots are few (~20 here): Moran's I of few patches is biased low."""
    rng = np.random.default_rng(0)
    xy, x, y = lattice(), smooth_fields(rng, 30, sigma), smooth_fields(rng, 30, sigma)
    n = len(xy)
    r = stats.zscore(x).T @ stats.zscore(y) / n
    naive = 2 * stats.t.sf(np.abs(r) * np.sqrt((n - 2) / (1 - r**2)), n - 2)
    classes = distance_classes(xy)
    n_eff = effective_n(morans_i(x, classes), morans_i(y, classes), classes)
    spatial = spatial_p_values(r, n_eff)
    assert (naive < 0.05).mean() > naive_at_least
    assert (spatial < 0.05).mean() < spatial_below, (spatial < 0.05).mean()
    assert np.median(n_eff) < n / 4  # smooth fields carry a fraction of the spots' evidence
    noise = rng.normal(size=(n, 5))  # white noise keeps (almost) every spot
    assert effective_n(morans_i(noise, classes), morans_i(noise, classes), classes).min() > 0.7 * n


def test_a_planted_association_survives_and_ranks_first():
    rng = np.random.default_rng(1)
    xy = lattice()
    genes = pd.DataFrame(smooth_fields(rng, 20), columns=[f"g{i}" for i in range(20)])
    features = smooth_fields(rng, 15)
    features[:, 4] = genes["g7"] + 0.02 * rng.normal(size=len(xy))
    table = correlation_table(features, genes, xy, [f"f{i}" for i in range(15)], everything=True)
    planted = table[(table.gene == "g7") & (table.feature == "f4")].iloc[0]
    assert planted.rank_in_gene == 1 and planted.q_spatial < 1e-3
    others = table.drop(index=planted.name)
    assert (others.q <= 0.05).sum() > 50 and (others.q_spatial <= 0.05).sum() <= 5
    assert table.attrs["discoveries"]["q_spatial"] == (table.q_spatial <= 0.05).sum()


def test_a_sparse_gene_meeting_a_sparse_feature_is_not_a_discovery():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 3000, (200, 2))
    genes = pd.DataFrame(rng.normal(size=(200, 10)), columns=[f"g{i}" for i in range(10)])
    sparse_gene, sparse_feature = np.zeros(200), np.zeros(200)
    sparse_gene[:12] = rng.uniform(1, 3, 12)
    sparse_feature[4:16] = rng.uniform(1, 3, 12)  # 8 spots in common: r ≈ 0.65
    genes["rare"] = sparse_gene
    features = np.column_stack([rng.normal(size=(200, 5)), sparse_feature])
    table = correlation_table(features, genes, xy, [f"f{i}" for i in range(6)], everything=True)
    pair = table[(table.gene == "rare") & (table.feature == "f5")].iloc[0]
    assert pair.r > 0.6 and pair.q < 1e-10  # naive: overwhelming
    assert pair.n_eff <= 12 and pair.q_spatial > 0.05  # carried by 12 spots: no evidence
    assert table[table.gene == "rare"].spearman_r_bound.max() < 0.3


def test_nulls_move_every_spot_and_keep_the_layout():
    xy = lattice()[::3] + 0.5
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    for kind in ("transpose", "rotate"):
        moved = null_positions(xy, kind, block=500)
        np.testing.assert_allclose(np.linalg.norm(moved[:, None] - moved[None], axis=2), distances, atol=1e-9)
        assert (np.linalg.norm(moved - xy, axis=1) > 1).mean() > 0.9
    moved = null_positions(xy, "shuffle-blocks", block=500, seed=3)
    block = np.floor((xy - xy.min(axis=0)) / 500)
    landed = np.floor((moved - xy.min(axis=0)) / 500)
    assert not (block == landed).all(axis=1).any()  # no square stays where it was
    same = (block[:, None] == block[None]).all(axis=2)
    moved_distances = np.linalg.norm(moved[:, None] - moved[None], axis=2)
    np.testing.assert_allclose(moved_distances[same], distances[same], atol=1e-9)  # squares move whole
