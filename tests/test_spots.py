"""Spot aggregation by disk/tile overlap, and the correlation table's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from scipy import stats

from napari_pathsae.analysis.spots import correlation_table, spot_tile_weights
from napari_pathsae.data.store import TileStore


@pytest.fixture()
def grid_store(tmp_path):
    """A 10 x 10 grid of 100 px tiles with every tile kept."""
    rows, cols = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    grid_index = np.stack([rows.ravel(), cols.ravel()], axis=1)
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    root.create_array("grid_index", data=grid_index.astype(np.int32))
    root.create_array("coords", data=(grid_index[:, ::-1] * 100).astype(np.int64))
    root.attrs.update(
        {"format": "napari-pathsae/tiles-v1", "identity": {}, "provenance": {"tile_side_level0_px": 100.0}}
    )
    return TileStore.open(tmp_path / "s.zarr")


def test_overlap_weights(grid_store):
    centres = np.array([[150.0, 250.0], [200.0, 300.0], [-500.0, -500.0]])  # inside one tile; on a corner; outside
    weights = spot_tile_weights(grid_store, centres, diameter=40).toarray()
    assert weights[0, 2 * 10 + 1] == pytest.approx(1.0)  # (x 150, y 250) → row 2, col 1
    corner = weights[1][weights[1] > 0]
    assert len(corner) == 4 and corner == pytest.approx([0.25] * 4, abs=0.02) and corner.sum() == pytest.approx(1.0)
    assert weights[2].sum() == 0


def test_aggregated_values_follow_the_tiles(grid_store):
    centre_x = grid_store.coords[:, 0] + 50.0
    rng = np.random.default_rng(0)
    spots = rng.uniform(0, 1000, (200, 2))
    weights = spot_tile_weights(grid_store, spots, diameter=60)
    values = (weights @ centre_x[:, None]).ravel() / np.asarray(weights.sum(axis=1)).ravel()
    assert np.abs(values - spots[:, 0]).max() < 50 + 30  # within half a tile plus the radius


def test_correlation_table_ranks_the_planted_feature_and_controls_fdr():
    rng = np.random.default_rng(1)
    n = 200
    genes = pd.DataFrame(rng.normal(size=(n, 30)), columns=[f"g{i}" for i in range(30)])
    features = rng.normal(size=(n, 20))
    features[:, 7] = genes["g3"] + 0.3 * rng.normal(size=n)
    xy = rng.uniform(0, 5000, (n, 2))  # spots scattered at random: no spatial structure, n_eff ≈ n
    table = correlation_table(features, genes, xy, [f"f{i}" for i in range(20)], everything=True)
    assert len(table) == 600 and table.n_eff.min() > 0.8 * n
    top = table[table.gene == "g3"].iloc[0]
    assert top.feature == "f7" and top.rank_in_gene == 1 and top.r > 0.9 and top.q < 1e-10
    expected_r, expected_p = stats.pearsonr(features[:, 7], genes["g3"])
    assert top.r == pytest.approx(expected_r, abs=1e-5) and top.p == pytest.approx(expected_p, rel=1e-3, abs=1e-300)
    rho = stats.spearmanr(features[:, 7], genes["g3"]).statistic
    assert top.spearman_r == pytest.approx(rho, abs=1e-5)
    np.testing.assert_allclose(table["q"], stats.false_discovery_control(table["p"], method="bh"), rtol=1e-6)
    assert (table.drop(index=table.index[(table.gene == "g3") & (table.feature == "f7")])["q"] > 0.01).mean() > 0.95
    filtered = correlation_table(features, genes, xy, [f"f{i}" for i in range(20)], top=2)
    assert ((filtered.q_spatial <= 0.05) | (filtered.rank_in_gene <= 2) | (filtered.rank_in_feature <= 2)).all()


def test_nan_spots_and_rare_features_are_left_out():
    rng = np.random.default_rng(2)
    genes = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    features = rng.normal(size=(100, 3))
    features[:5] = np.nan  # spots without tiles
    features[:, 2] = 0.0
    features[50, 2] = 9.0  # fires once: leverage only
    table = correlation_table(features, genes, rng.uniform(0, 5000, (100, 2)), ["x", "y", "z"], everything=True)
    assert set(table.feature) == {"x", "y"} and (table.n_spots == 95).all()
