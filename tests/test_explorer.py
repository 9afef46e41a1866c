"""The engine behind the viewer: lazy tile computation, grid placement, feature tables, concepts, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import HER2ST_HE, HER2ST_OUTS, TINY_ENCODER
from napari_pathsae.analysis.features import argmax_feature, concept_weights, feature_table, top_tiles
from napari_pathsae.data.store import TileStore
from napari_pathsae.data.tiles import TileGeometry
from napari_pathsae.data.viewport import GridPlacement, patch_value_grid, tile_value_grid, tiles_in_view
from napari_pathsae.engine.embed import EmbedOptions
from napari_pathsae.engine.session import ExplorerSession
from napari_pathsae.errors import PathsaeError

OPTIONS = EmbedOptions(geometry=TileGeometry.from_options(tile_um=112), slide_mpp=0.69, batch_size=64)


def test_tiles_in_view_are_the_overlapping_ones_nearest_the_centre_first():
    rows, cols = np.meshgrid(np.arange(20), np.arange(30), indexing="ij")
    grid_index = np.stack([rows.ravel(), cols.ravel()], axis=1)
    placement = GridPlacement(side0=100.0, world_per_px=0.5, grid_shape=(20, 30))  # tiles are 50 world units
    box = np.array([[120.0, 220.0], [330.0, 480.0]])  # rows 2.4-6.6 → tiles 2..6, cols 4.4-9.6 → tiles 4..9
    found = tiles_in_view(grid_index, placement, box)
    assert sorted({tuple(g) for g in grid_index[found]}) == [(r, c) for r in range(2, 7) for c in range(4, 10)]
    distances = np.hypot(grid_index[found, 0] + 0.5 - 4.5, grid_index[found, 1] + 0.5 - 7.0)
    assert np.all(np.diff(distances) >= -1e-9)  # nearest to the view centre first
    assert len(tiles_in_view(grid_index, placement, box, margin=0.25)) > len(found)


def test_grid_placement_puts_grid_pixel_edges_on_tile_edges():
    placement = GridPlacement(side0=162.3, world_per_px=0.69, grid_shape=(5, 5))
    (scale, _), (translate, _) = placement.scale(), placement.translate()
    # napari: grid pixel r spans (r ± 0.5)·scale + translate; level-0 pixel p is centred at p·0.69
    for r in (0, 3):
        low = (r - 0.5) * scale + translate
        assert low == pytest.approx((r * 162.3 - 0.5) * 0.69)  # left edge of level-0 px at r·side
        assert low + scale == pytest.approx(((r + 1) * 162.3 - 0.5) * 0.69)
    (sub_scale, _), (sub_translate, _) = placement.scale(16), placement.translate(16)
    assert (-0.5) * sub_scale + sub_translate == pytest.approx(-0.5 * 0.69)  # patch grid shares the tile edge
    patches = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    image = patch_value_grid(np.array([[0, 1], [2, 0]]), (5, 5), patches)
    np.testing.assert_array_equal(image[0:16, 16:32], patches[0])
    np.testing.assert_array_equal(image[32:48, 0:16], patches[1])
    assert np.isnan(image[0, 0])
    grid = tile_value_grid(np.array([[1, 2]]), (3, 4), np.array([7.0]))
    assert grid[1, 2] == 7.0 and np.isnan(grid).sum() == 11


def test_lazy_tiles_match_the_cli_store_and_a_cli_run_finishes_the_store(her2st_model, tmp_path):
    reference = TileStore.open(her2st_model / "b4.zarr")
    session = ExplorerSession.load(
        HER2ST_HE, tmp_path / "lazy.zarr", TINY_ENCODER, her2st_model / "sae", OPTIONS, dtype="fp32"
    )
    chosen = np.array([5, 17, 300, 301, 900])
    values = session.compute(chosen)
    assert session.computer.activated().sum() == 5 and sorted(session.missing(np.arange(20)))[:3] == [0, 1, 2]
    np.testing.assert_allclose(values, reference.activations()[:][chosen], rtol=1e-2, atol=1e-2)  # batch-size fp noise
    stored = TileStore.open(tmp_path / "lazy.zarr")
    np.testing.assert_allclose(
        stored.embeddings()[:][chosen], reference.embeddings()[:][chosen], rtol=0, atol=5e-3
    )  # a tile read alone or within a row run is resampled from a different band: ±1 grey level
    assert not stored.complete and np.isnan(stored.embeddings()[0, 0])
    # reopening reuses the cached tiles; the SAE's activations come back from the store
    again = ExplorerSession.load(
        HER2ST_HE, tmp_path / "lazy.zarr", TINY_ENCODER, her2st_model / "sae", OPTIONS, dtype="fp32"
    )
    assert set(np.flatnonzero(again.computer.activated())) == set(chosen)
    # the CLI finishes what the viewer started, in the same store
    from napari_pathsae.engine.embed import embed_slide
    from napari_pathsae.models.encoders import load_encoder

    summary = embed_slide(HER2ST_HE, tmp_path / "lazy.zarr", load_encoder(TINY_ENCODER, dtype="fp32"), OPTIONS)
    assert summary["tiles"] == reference.n_tiles and TileStore.open(tmp_path / "lazy.zarr").complete


def test_feature_table_top_tiles_and_argmax_on_known_values():
    acts = np.array([[0, 2, 0], [1, 0, 0], [3, 1, 0], [np.nan, np.nan, np.nan]], dtype=np.float32)
    table = feature_table(acts)
    np.testing.assert_allclose(table.frequency, [2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(table["max"], [3, 2, 0])
    np.testing.assert_allclose(table.mean_active, [2, 1.5, 0])
    np.testing.assert_array_equal(top_tiles(acts[:, 0], 5), [2, 1])
    np.testing.assert_array_equal(argmax_feature(acts), [2, 1, 1, 0])


@pytest.mark.parametrize("method", ["kmeans", "nmf"])
def test_concepts_recover_planted_tissue_types(method):
    rng = np.random.default_rng(0)
    kinds = rng.integers(0, 3, size=600)
    profiles = np.zeros((3, 40))
    profiles[0, :5], profiles[1, 10:15], profiles[2, 30:36] = 4, 4, 4
    acts = np.clip(profiles[kinds] + rng.normal(0, 0.3, (600, 40)), 0, None).astype(np.float32)
    acts[:20] = np.nan  # not computed yet: no concept
    labels, found, _ = concept_weights(acts, 3, method)
    assert (labels[:20] == 0).all() and found.shape == (3, 40)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(kinds[20:], labels[20:]) > 0.95
    with pytest.raises(PathsaeError, match="cannot make"):
        concept_weights(acts[:25], 8, method)


def test_feature_labels_are_saved_beside_the_sae_and_reloaded(her2st_model, tmp_path):
    import shutil

    sae = shutil.copytree(her2st_model / "sae", tmp_path / "sae")
    session = ExplorerSession.load(HER2ST_HE, her2st_model / "b4.zarr", TINY_ENCODER, sae, OPTIONS)
    session.set_label(12, "  tumour epithelium ")
    session.set_label(40, "stroma")
    session.set_label(40, "")
    assert session.feature_table().set_index("feature").loc[12, "label"] == "tumour epithelium"
    session.attach_sae(sae)
    assert session.labels == {12: "tumour epithelium"} and session.feature_name(12) == "f12 tumour epithelium"
    (sae / "feature_labels.json").write_text("{not json")
    with pytest.raises(PathsaeError, match="damaged feature labels"):
        session.attach_sae(sae)


def test_region_spot_table_on_a_partly_computed_store(her2st_model, tmp_path):
    """Spots over computed tiles get their mean over those tiles; uncomputed tiles never enter a mean."""
    from shapely.geometry import box

    from napari_pathsae.io.visium import open_visium
    from napari_pathsae.report.export import export_spots

    session = ExplorerSession.load(
        HER2ST_HE, tmp_path / "lazy.zarr", TINY_ENCODER, her2st_model / "sae", OPTIONS, dtype="fp32"
    )
    session.attach_sample(open_visium(HER2ST_OUTS, mpp=0.69))
    xy = session.sample.spots_level0_xy
    region = box(5000, 6000, 7500, 8500)  # level-0 (x0, y0, x1, y1)
    inside = np.flatnonzero((xy[:, 0] > 5000) & (xy[:, 0] < 7500) & (xy[:, 1] > 6000) & (xy[:, 1] < 8500))
    first_half = inside[: len(inside) // 2]
    session.compute(session.tiles_under_spots(first_half))
    rows = export_spots(session.store, session.sample, tmp_path / "spots.csv", sae="sae", polygon=region)
    table = pd.read_csv(tmp_path / "spots.csv")
    assert rows == len(inside) and sorted(table.barcode) == sorted(session.sample.adata.obs_names[inside])
    expected = session.spot_values(session.activations)[inside]
    by_barcode = table.set_index("barcode").loc[session.sample.adata.obs_names[inside]]
    np.testing.assert_allclose(by_barcode.filter(regex=r"^f\d+$").to_numpy(), expected, rtol=1e-5, equal_nan=True)
    on_tissue = np.array([len(session.tiles_under_spots([s])) > 0 for s in first_half])
    assert on_tissue.sum() > 5 and np.isfinite(expected[: len(first_half)][on_tissue]).all()  # computed: values
    assert np.isnan(expected[: len(first_half)][~on_tissue]).all()  # no tile under the spot: NaN, not 0


def test_training_refuses_too_few_tiles_and_computes_first_without_an_sae(tmp_path):
    from conftest import SVS
    from napari_pathsae.models.sae.train import TrainOptions

    options = EmbedOptions(geometry=TileGeometry.from_options(tile_um=448))  # the small sample in 4 tiles
    session = ExplorerSession.load(SVS, tmp_path / "s.zarr", TINY_ENCODER, options=options, dtype="fp32")
    n = session.computer.n_tiles
    assert 0 < n < 32 and len(session.missing()) == n  # without an SAE, "missing" means not embedded
    session.compute(session.missing())
    assert len(session.missing()) == 0 and TileStore.open(tmp_path / "s.zarr").complete  # complete with no SAE
    with pytest.raises(PathsaeError, match=f"{n} tissue tiles are too few to train an SAE"):
        session.train_sae(tmp_path / "sae", TrainOptions.for_section(n))
    assert not (tmp_path / "sae").exists()
    session.close()
