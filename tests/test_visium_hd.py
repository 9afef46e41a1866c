"""Visium HD at full size: 8 µm bins over the whole HER2+ section (built from its real spots and pixels by
benchmarks/visium_hd_like.py, a planted gene following each bin's own saturation). Bins open fast, are drawn
as one raster (not 150,000 points), meet tiles with exact areas, are summed into tiles for the tests, and the
planted gene comes first of all genes there and vanishes on a transposed null."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HER2ST_HE
from napari_pathsae.analysis.spots import bins_to_tiles, correlate_activations, spot_tile_weights
from napari_pathsae.data.store import TileStore
from napari_pathsae.io.visium import open_visium

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MPP = 0.69


@pytest.fixture(scope="module")
def hd_outs(tmp_path_factory):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from visium_hd_like import build_hd_like
    finally:
        sys.path.remove(str(BENCHMARKS))
    target = tmp_path_factory.mktemp("hd") / "b4_hd"
    made = build_hd_like(target, genes=300)
    assert made["bins"] > 100_000
    return target


@pytest.fixture(scope="module")
def hd(hd_outs):
    return open_visium(hd_outs, fullres_image=HER2ST_HE, mpp=MPP, bin_size_um=8)


def test_bins_open_as_squares_on_a_lattice_the_raster_places_exactly(hd):
    from napari_pathsae.plugin.layers import bin_raster, spots_layer

    assert hd.spot_shape == "square" and hd.adata.n_obs > 100_000 and hd.spot_diameter_world == pytest.approx(8.0)
    rows, cols, affine = bin_raster(hd)
    placed = (affine @ np.column_stack([rows, cols, np.ones(len(rows))]).T).T[:, :2]
    np.testing.assert_allclose(placed, hd.spots_world, atol=1e-6)  # each raster pixel is its bin
    data, _kwargs, kind = spots_layer(hd)
    assert kind == "image" and data.shape == (rows.max() + 1, cols.max() + 1)
    totals = np.asarray(hd.adata.X.sum(axis=1)).ravel()
    np.testing.assert_allclose(data[rows, cols], totals)
    assert np.isnan(data).sum() == data.size - len(rows)  # off the tissue: nothing drawn


def test_bin_tile_areas_are_exact(her2st_model, hd):
    store = TileStore.open(her2st_model / "b4.zarr")
    some = np.random.default_rng(0).choice(hd.adata.n_obs, 3000, replace=False)
    centres, side = hd.spots_level0_xy[some], hd.spot_diameter_fullres
    exact = spot_tile_weights(store, centres, side, shape="square").toarray()
    grid = (np.arange(40) + 0.5) / 40 * side - side / 2  # 1,600 equal-area samples of each square
    offsets = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    tiles = store.tile_at(centres[:, None, :] + offsets[None])
    sampled = np.zeros_like(exact)
    for row, hits in enumerate(tiles):
        np.add.at(sampled[row], hits[hits >= 0], 1 / len(offsets))
    np.testing.assert_allclose(exact, sampled, atol=1 / 40 + 1e-9)  # a sample row of error at most
    assert (exact.sum(axis=1) <= 1 + 1e-9).all() and (exact > 0).sum(axis=1).max() <= 4


def test_bins_summed_into_tiles_find_the_planted_gene_first_and_not_on_a_null(her2st_model, hd):
    store = TileStore.open(her2st_model / "b4.zarr")
    tiles = bins_to_tiles(store, hd)
    assert tiles.adata.n_obs <= store.n_tiles and tiles.spot_shape == "square"
    on_tiles = np.asarray(spot_tile_weights(store, hd.spots_level0_xy, hd.spot_diameter_fullres, shape="square")
                          .sum(axis=1)).ravel()  # fmt: skip
    bin_totals = np.asarray(hd.adata.X.sum(axis=1)).ravel()
    assert float(tiles.adata.X.sum()) == pytest.approx(float(bin_totals @ on_tiles), rel=1e-5)  # no UMI lost
    acts = store.activations()[:]
    table = correlate_activations(store, hd, acts, everything=True)
    ranked = table.sort_values("spearman_r_bound", ascending=False).drop_duplicates("gene")
    assert ranked.gene.iloc[0] == "PLANTED_HD" and ranked.q_spatial.iloc[0] < 1e-3
    assert table.n_spots.max() <= store.n_tiles  # tested over tiles, not over 150,000 bins
    null = correlate_activations(store, hd, acts, ["PLANTED_HD"], everything=True, null="transpose")
    assert null.q_spatial.min() > 0.05


def test_napari_shows_the_bins_as_one_raster_over_the_slide(make_napari_viewer, qtbot, hd_outs, tmp_path):
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    viewer = make_napari_viewer(show=True)
    opener = OpenSampleWidget(viewer)
    opener.slide.value, opener.visium.value, opener.mpp.value = HER2ST_HE, hd_outs, MPP
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and len(viewer.layers) == 2, timeout=120_000)
    _slide, bins = viewer.layers
    assert type(bins).__name__ == "Image" and bins.name.endswith("bins: total_counts")
    viewer.reset_view()
    qtbot.wait(500)
    screenshot = viewer.screenshot(canvas_only=True)
    assert screenshot.shape[0] > 100
    from PIL import Image

    Image.fromarray(screenshot).save(tmp_path / "hd.png")


def test_the_spots_panel_on_hd_bins_correlates_per_tile_and_colours_the_raster(
    make_napari_viewer, qtbot, hd_outs, her2st_model
):
    from napari_pathsae.plugin.layers import spot_values
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget
    from napari_pathsae.plugin.widgets.spots_panel import SpotsPanel
    from test_widgets import click_row, load_model

    viewer = make_napari_viewer(show=True)
    opener = OpenSampleWidget(viewer)
    opener.slide.value, opener.visium.value, opener.mpp.value = HER2ST_HE, hd_outs, MPP
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and len(viewer.layers) == 2, timeout=120_000)
    bins = viewer.layers[1]
    _, state = load_model(viewer, qtbot, her2st_model / "b4.zarr", her2st_model / "sae")
    try:
        panel = SpotsPanel(viewer)
        viewer.window.add_dock_widget(panel)
        panel.correlate()
        qtbot.waitUntil(
            lambda: state.session.correlations is not None and panel.correlate_button.isEnabled(), timeout=120_000
        )
        panel.gene.setText("PLANTED_HD")
        panel.show_gene("PLANTED_HD")
        assert float(panel.ranked.item(0, 1).text()) > 0.5
        click_row(qtbot, panel.ranked, 0)
        feature = state.selected[0]
        panel.colour_by_feature()  # the bins raster now shows the feature averaged under each bin
        column = state.session.feature_name(feature)
        expected = np.nan_to_num(state.session.spot_values(state.session.feature_values(feature)))
        np.testing.assert_allclose(spot_values(bins, column), expected)
        raster = bins.metadata["pathsae"]["raster"]
        np.testing.assert_allclose(bins.data[raster["rows"], raster["cols"]], expected, rtol=1e-6)
        assert " bins: " in bins.name and column.split()[0] in bins.name
        panel.colour_by_gene("PLANTED_HD")
        counts = state.session.sample.adata[:, "PLANTED_HD"].X.toarray().ravel()
        np.testing.assert_allclose(bins.data[raster["rows"], raster["cols"]], counts)
    finally:
        state.close()
