"""Visium samples: every layout opens, and spots land on the tissue through the whole scale chain."""

from __future__ import annotations

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from napari.layers import Image

from conftest import CYTASSIST, HER2ST, HER2ST_HE, HER2ST_OUTS, SCANPY_VISIUM, SQUIDPY_H5AD
from napari_pathsae import PathsaeError, open_visium
from napari_pathsae.io.visium import read_positions
from napari_pathsae.plugin.layers import slide_layer, visium_layers


def saturation(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(float)
    return rgb.max(axis=-1) - rgb.min(axis=-1)


def image_layer(sample) -> Image:
    data, kwargs, _ = visium_layers(sample)[0]
    return Image(data, **kwargs)


def sample_at(layer: Image, world_rowcol: np.ndarray) -> np.ndarray:
    """Pixel values of the layer's finest level under world points (NaN outside)."""
    image = layer.data[0] if layer.multiscale else layer.data
    data = np.array([layer.world_to_data(p) for p in world_rowcol])[:, :2]
    ij = np.round(data).astype(int)
    inside = (ij >= 0).all(axis=1) & (ij[:, 0] < image.shape[0]) & (ij[:, 1] < image.shape[1])
    values = np.full(len(ij), np.nan)
    values[inside] = saturation(np.asarray(image)[ij[inside, 0], ij[inside, 1]])
    return values


@pytest.mark.parametrize(
    ("root", "n_spots", "n_genes", "image_kind", "library_id"),
    [
        (SCANPY_VISIUM, 100, 100, "lowres", "custom"),  # v1 positions, .h5, blank hires placeholder
        (
            CYTASSIST,
            2898,
            19465,
            "lowres",
            "visium_cytassist_mouse",
        ),  # v2 positions, MEX, lowres only
        (HER2ST_OUTS, 283, 15289, "hires", "B4"),  # v2 positions, .h5
    ],
)
def test_space_ranger_layouts(root, n_spots, n_genes, image_kind, library_id):
    sample = open_visium(root)
    assert sample.adata.shape == (n_spots, n_genes)
    assert sample.image_kind == image_kind and sample.library_id == library_id
    positions = read_positions(root / "spatial").loc[sample.adata.obs_names]
    xy = positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(float)
    np.testing.assert_allclose(sample.adata.obsm["spatial"], xy)  # AnnData convention: (x, y)
    np.testing.assert_allclose(sample.spots_fullres_rowcol, xy[:, ::-1])
    scalefactors = json.loads((root / "spatial" / "scalefactors_json.json").read_text())
    assert sample.adata.uns["spatial"][library_id]["scalefactors"] == scalefactors
    assert sample.spot_diameter_world == pytest.approx(55.0)  # µm, from the 55 µm Visium spot


def test_blank_hires_placeholder_falls_back_to_lowres():
    sample = open_visium(SCANPY_VISIUM)
    assert sample.image_kind == "lowres"
    assert any("blank" in note for note in sample.notes)


@pytest.mark.parametrize("root", [SCANPY_VISIUM, CYTASSIST])
def test_spots_land_on_tissue_and_transposing_breaks_it(root):
    """Space Ranger's own in_tissue calls agree with where our spots fall on the image layer."""
    sample = open_visium(root)
    layer = image_layer(sample)
    positions = read_positions(root / "spatial")
    in_tissue = positions["in_tissue"].to_numpy() == 1
    rowcol = positions[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy(float)

    def contrast(rc):
        values = sample_at(layer, sample.frame.fullres_rowcol_to_world(rc))
        return np.nanmean(values[in_tissue]) / np.nanmean(values[~in_tissue])

    assert contrast(rowcol) > 4
    assert contrast(rowcol[:, ::-1]) < 2.5


def test_image_pixel_under_each_spot_is_pxl_times_scalef():
    """World → hires data coordinates equal Space Ranger's pxl_*_in_fullres x scalef (< 0.01 px)."""
    sample = open_visium(HER2ST_OUTS)
    layer = image_layer(sample)
    expected = sample.spots_fullres_rowcol * sample.scalefactors["tissue_hires_scalef"]
    got = np.array([layer.world_to_data(p) for p in sample.spots_world])[:, :2]
    np.testing.assert_allclose(got, expected, atol=0.01)


def test_her2st_spots_match_the_original_selection_table():
    """The converted folder's spots equal the study's own pixel_x/pixel_y, in (row, col)."""
    sample = open_visium(HER2ST_OUTS)
    selection = pd.read_csv(HER2ST / "B4_selection.tsv", sep="\t").set_index(["y", "x"])
    obs = sample.adata.obs
    table = selection.loc[list(zip(obs["array_row"], obs["array_col"], strict=True))]
    np.testing.assert_allclose(sample.spots_fullres_rowcol, table[["pixel_y", "pixel_x"]].to_numpy(), atol=0.6)


def test_fullres_slide_and_hires_png_agree_under_every_spot():
    """Spots over the full-resolution slide see the same tissue as over the hires PNG."""
    hires = open_visium(HER2ST_OUTS)
    fullres = open_visium(HER2ST_OUTS, fullres_image=HER2ST_HE)
    assert fullres.image_kind == "fullres" and fullres.image_px_in_fullres_px == 1.0
    np.testing.assert_allclose(fullres.spots_world, hires.spots_world)
    a = sample_at(image_layer(hires), hires.spots_world)
    data, kwargs, _ = slide_layer(fullres.image, fullres.frame)
    full_layer = Image(data, **kwargs)
    b = sample_at(full_layer, fullres.spots_world)
    assert np.corrcoef(a, b)[0, 1] > 0.8
    transposed = sample_at(full_layer, fullres.spots_world[:, ::-1])
    assert np.nanmean(b) > 1.5 * np.nanmean(transposed)


def test_mpp_precedence_user_then_slide_then_spot_diameter(tmp_path):
    assert open_visium(HER2ST_OUTS).mpp_source.startswith("assumed from a 55 µm spot")
    legacy = open_visium(HER2ST_OUTS, spot_diameter_um=100)  # legacy ST spots are 100 µm
    assert legacy.frame.mpp == pytest.approx(100 / 144.805)
    user = open_visium(HER2ST_OUTS, fullres_image=HER2ST_HE, mpp=0.69)
    assert user.frame.mpp == 0.69 and user.image.mpp == 0.69 and user.mpp_source == "user"
    assert user.spot_diameter_world == pytest.approx(144.805 * 0.69)


def test_wrong_fullres_image_is_refused():
    with pytest.raises(PathsaeError, match="not the slide these spots were registered to"):
        open_visium(HER2ST_OUTS, fullres_image=SQUIDPY_H5AD.parent / "test_img.jpg")


def test_h5ad_with_uns_spatial():
    sample = open_visium(SQUIDPY_H5AD)
    adata = ad.read_h5ad(SQUIDPY_H5AD)
    assert sample.adata.shape == (49, 1999) and sample.library_id == "V1_Adult_Mouse_Brain"
    np.testing.assert_allclose(sample.spots_fullres_rowcol, adata.obsm["spatial"][:, ::-1])
    scalef = adata.uns["spatial"]["V1_Adult_Mouse_Brain"]["scalefactors"]["tissue_hires_scalef"]
    assert sample.image_kind == "hires" and sample.image_px_in_fullres_px == pytest.approx(1 / scalef)


def _hd_folder(tmp_path, bins=(8, 16)):
    """A Visium HD-style outs/ built from the real her2st section (parquet positions, µm/px)."""
    outs = tmp_path / "outs"
    for size in bins:
        root = outs / "binned_outputs" / f"square_{size:03d}um"
        (root / "spatial").mkdir(parents=True)
        shutil.copy(HER2ST_OUTS / "filtered_feature_bc_matrix.h5", root)
        shutil.copy(HER2ST_OUTS / "spatial" / "tissue_hires_image.png", root / "spatial")
        read_positions(HER2ST_OUTS / "spatial").reset_index().to_parquet(root / "spatial" / "tissue_positions.parquet")
        scalefactors = json.loads((HER2ST_OUTS / "spatial" / "scalefactors_json.json").read_text())
        scalefactors.update(microns_per_pixel=0.6897, bin_size_um=float(size), spot_diameter_fullres=size / 0.6897)
        (root / "spatial" / "scalefactors_json.json").write_text(json.dumps(scalefactors))
    return outs


def test_visium_hd_bins_from_parquet(tmp_path):
    outs = _hd_folder(tmp_path)
    sample = open_visium(outs)  # 8 µm by default
    assert sample.path == outs and sample.spot_shape == "square"
    assert sample.frame.mpp == pytest.approx(0.6897) and sample.mpp_source == "Visium HD microns_per_pixel"
    assert sample.spot_diameter_world == pytest.approx(8.0)
    assert open_visium(outs, bin_size_um=16).spot_diameter_world == pytest.approx(16.0)
    with pytest.raises(PathsaeError, match="no 2 µm bins"):
        open_visium(outs, bin_size_um=2)


def test_visium_errors_are_one_clear_line(tmp_path):
    with pytest.raises(PathsaeError, match="no spatial/ folder"):
        open_visium(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(SCANPY_VISIUM, broken)
    (broken / "spatial" / "scalefactors_json.json").unlink()
    with pytest.raises(PathsaeError, match=r"no scalefactors_json\.json"):
        open_visium(broken)
    positions = pd.read_csv(broken / "spatial" / "tissue_positions_list.csv", header=None)
    positions[0] = "X" + positions[0]
    positions.to_csv(broken / "spatial" / "tissue_positions_list.csv", header=False, index=False)
    shutil.copy(SCANPY_VISIUM / "spatial" / "scalefactors_json.json", broken / "spatial")
    with pytest.raises(PathsaeError, match="no barcode of the count matrix"):
        open_visium(broken)
    adata = ad.read_h5ad(SQUIDPY_H5AD)
    del adata.uns["spatial"]
    adata.write_h5ad(tmp_path / "plain.h5ad")
    with pytest.raises(PathsaeError, match=r"obsm\['spatial'\] is there but uns\['spatial'\]"):
        open_visium(tmp_path / "plain.h5ad")


def test_a_preview_png_given_as_the_slide_is_named_as_a_preview():
    """Seen in a journey: a folder with only its lowres PNG, that PNG given as the slide, was refused as "not the
    slide these spots were registered to" (true, but no hint that a preview cannot be tiled)."""
    with pytest.raises(PathsaeError) as raised:
        open_visium(CYTASSIST, fullres_image=CYTASSIST / "spatial" / "tissue_lowres_image.png")
    assert str(raised.value).startswith("tissue_lowres_image.png is the sample's lowres preview, too coarse to tile")
