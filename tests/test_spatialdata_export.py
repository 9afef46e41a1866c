"""The HER2+ section as a SpatialData zarr: read back by spatialdata (tiles, activations, spots, genes, the slide
image, one µm coordinate system, aligned to the pixel) and opened by napari-spatialdata in a real window."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from conftest import HER2ST_HE
from napari_pathsae.cli import main
from napari_pathsae.data.store import TileStore
from napari_pathsae.io.slides import open_slide
from napari_pathsae.io.visium import open_visium

MPP = 0.69


@pytest.fixture(scope="module")
def exported(her2st_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sdata") / "b4.zarr"
    argv = ["export", str(her2st_model / "b4.zarr"), "-o", str(out), "--visium", str(her2st_model / "planted")]
    assert main(argv) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spatialdata

        return spatialdata.read_zarr(out), out


def test_spatialdata_reads_tiles_spots_and_slide_aligned_in_micrometres(exported, her2st_model):
    from spatialdata import transform
    from spatialdata.transformations import get_transformation

    sdata, _ = exported
    store = TileStore.open(her2st_model / "b4.zarr")
    acts = store.activations()[:]
    table = sdata.tables["tile_features"]
    tiles = table.obs["instance_id"].to_numpy()
    np.testing.assert_array_equal(np.asarray(table.X), acts[tiles])
    assert set(table.obs["region"]) == {"tiles"} and table.uns["spatialdata_attrs"]["region"] == "tiles"
    # tiles in µm: each square is the tile's level-0 box times µm/px
    squares = transform(sdata.shapes["tiles"], to_coordinate_system="global").loc[tiles]
    bounds = np.stack(squares.geometry.bounds.to_numpy())
    side = store.tile_side0
    np.testing.assert_allclose(bounds[:, :2], store.coords[tiles] * MPP, atol=1e-6)
    np.testing.assert_allclose(bounds[:, 2:] - bounds[:, :2], side * MPP, atol=1e-6)
    # spots in µm, with their genes and the features averaged under them
    sample = open_visium(her2st_model / "planted")
    spots = transform(sdata.shapes["spots"], to_coordinate_system="global")
    xy = np.stack([spots.geometry.x.to_numpy(), spots.geometry.y.to_numpy()], axis=1)
    np.testing.assert_allclose(xy, sample.spots_level0_xy * MPP, atol=1e-6)
    genes = sdata.tables["spot_genes"]
    assert genes.n_obs == sample.adata.n_obs and "PLANTED1" in genes.var_names
    assert genes.obsm["pathsae_features"].shape == (sample.adata.n_obs, acts.shape[1])
    # the slide: at the level whose pixels, scaled to µm, sit under the same tiles
    image = sdata.images["slide"]
    scale = get_transformation(image, "global").to_affine_matrix(("y", "x"), ("y", "x"))
    downsample = scale[0, 0] / MPP
    level0 = np.asarray(image["scale0"]["image"])
    slide = open_slide(HER2ST_HE, mpp=MPP)
    reference = np.asarray(slide.levels[int(np.log2(round(downsample)))]).transpose(2, 0, 1)
    np.testing.assert_array_equal(level0, reference)
    assert downsample == pytest.approx(slide.downsample(int(np.log2(round(downsample)))))


def test_napari_spatialdata_opens_it_in_one_frame(exported, qtbot):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from napari_spatialdata import Interactive

    sdata, _ = exported
    interactive = Interactive(sdata, headless=True)
    viewer = interactive._viewer
    try:
        for count, name in enumerate(("slide", "tiles", "spots"), start=1):
            interactive.add_element(name, "global")
            qtbot.waitUntil(lambda count=count: len(viewer.layers) == count, timeout=60_000)
            time.sleep(0.1)
        image, tiles, spots = (viewer.layers[n] for n in ("slide", "tiles", "spots"))
        low, high = image.extent.world
        for layer in (tiles, spots):  # on the slide, in µm
            assert (layer.extent.world[0] >= low - 1).all() and (layer.extent.world[1] <= high + 1).all()
        sample_xy = sdata.shapes["spots"].geometry
        first = np.array([sample_xy.y.iloc[0], sample_xy.x.iloc[0]]) * MPP
        np.testing.assert_allclose(spots.data_to_world(spots.data[0]), first, atol=1e-3)
    finally:
        viewer.close()
