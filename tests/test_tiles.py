"""Tissue detection and the tile grid on real slides; tile pixels equal a direct crop-and-resize."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import DATA, HER2ST_HE, SVS
from napari_pathsae import PathsaeError, open_slide
from napari_pathsae.data.tiles import (
    MIN_TISSUE_DEFAULT,
    TileGeometry,
    read_level_for,
    read_tiles,
    saturation,
    tile_grid,
    tiled_tissue_fraction,
    tissue_mask,
)  # fmt: skip


def test_geometry_options():
    assert TileGeometry.from_options() == TileGeometry(224, 0.5, MIN_TISSUE_DEFAULT)
    assert TileGeometry.from_options(tile_um=224).mpp == pytest.approx(1.0)
    assert TileGeometry.from_options(tile_um=64, tile_px=256).mpp == pytest.approx(0.25)
    for bad in ({"tile_px": 4}, {"tile_px": 0}, {"tile_um": 0}, {"tile_um": -50}, {"tile_um": float("nan")},
                {"tile_um": 1e7}, {"min_tissue": 2}):  # fmt: skip
        with pytest.raises(PathsaeError):
            TileGeometry.from_options(**bad)
    with pytest.raises(PathsaeError, match="change --tile-um or --tile-px"):
        TileGeometry.from_options(tile_um=1e5)


@pytest.mark.parametrize(
    ("name", "mpp"),
    [("cmu_small_region.svs", None), ("her2st_B4/B4_HE.jpg", 0.69), ("tiatoolbox_target_image.png", 0.25),
     ("tiatoolbox_colon_nuclei.png", 0.25)],
)  # fmt: skip
def test_the_grid_tiles_the_whole_detected_tissue_edges_included(name, mpp):
    """No untiled strip at the right or bottom edge (none of these sizes is a multiple of the tile)."""
    slide = open_slide(DATA / name, mpp=mpp)
    mask = tissue_mask(slide)
    grid = tile_grid(slide, TileGeometry(), mask)
    assert tiled_tissue_fraction(grid, mask) >= 0.97
    height, width = slide.shape_yx
    assert grid.grid_shape == (int(np.ceil(height / grid.side0)), int(np.ceil(width / grid.side0)))
    tissue, per_px = mask
    edge = int(np.ceil((width % grid.side0) / per_px))  # the last partial column, in mask pixels
    if tissue[:, -edge:].mean() > 0.2:
        assert (grid.grid_index[:, 1] == grid.grid_shape[1] - 1).any()
    last = np.flatnonzero(grid.grid_index[:, 1] == grid.grid_shape[1] - 1)
    if len(last) and width % grid.side0 > 1:  # the part of an edge tile past the slide reads as white
        assert (read_tiles(slide, grid, last[:1])[0, :, -2:] == 255).all()


def test_tissue_mask_separates_tissue_from_glass():
    slide = open_slide(SVS)
    mask, per_px = tissue_mask(slide)
    image = np.asarray(slide.levels[1])
    sat = saturation(image)
    assert per_px == 2.0 and mask.shape == image.shape[:2]
    assert 0.2 < mask.mean() < 0.6
    assert sat[mask].mean() > 3 * sat[~mask].mean()


def test_grid_keeps_tissue_tiles_at_the_target_size():
    slide = open_slide(SVS)  # 0.499 µm/px
    grid = tile_grid(slide, TileGeometry())
    assert grid.side0 == pytest.approx(112 / 0.499)
    assert grid.grid_shape == (int(np.ceil(2967 / grid.side0)), int(np.ceil(2220 / grid.side0)))
    assert 0 < len(grid) < grid.grid_shape[0] * grid.grid_shape[1]
    assert (grid.tissue_fraction >= MIN_TISSUE_DEFAULT).all()
    np.testing.assert_allclose(grid.coords, np.round(grid.grid_index[:, ::-1] * grid.side0))
    image = tifffile.imread(SVS)
    half = tile_grid(slide, TileGeometry(min_tissue=0.5))
    sat_kept = [saturation(image[y : y + 224, x : x + 224]).mean() for x, y in half.coords]
    everything = tile_grid(slide, TileGeometry(min_tissue=0.0))
    dropped = [
        saturation(image[y : y + 224, x : x + 224]).mean()
        for (x, y), f in zip(everything.coords, everything.tissue_fraction, strict=True)
        if f < 0.5
    ]
    assert np.mean(sat_kept) > 2 * np.mean(dropped)


def test_tiles_equal_a_direct_crop_and_resize():
    slide = open_slide(HER2ST_HE, mpp=0.69)
    grid = tile_grid(slide, TileGeometry())
    pick = np.array([0, 5, 6, 7, len(grid) // 2, len(grid) - 1])
    tiles = read_tiles(slide, grid, pick)
    assert tiles.shape == (6, 224, 224, 3) and tiles.dtype == np.uint8
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(HER2ST_HE) as full:
        for tile, i in zip(tiles, pick, strict=True):
            r, c = grid.grid_index[i]
            box = (c * grid.side0, r * grid.side0, (c + 1) * grid.side0, (r + 1) * grid.side0)
            expected = np.asarray(full.resize((224, 224), Image.Resampling.BILINEAR, box=box))
            assert np.abs(tile.astype(int) - expected.astype(int)).mean() < 1.0


def test_read_level_is_the_coarsest_at_or_finer_than_the_target(ome_subifd_5_levels):
    slide = open_slide(ome_subifd_5_levels)  # 0.6897 µm/px, levels 1, 2, 4, 8, 16
    assert read_level_for(slide, 0.5) == 0
    assert read_level_for(slide, 1.5) == 1
    assert read_level_for(slide, 3.0) == 2
    grid = tile_grid(slide, TileGeometry.from_options(tile_um=672, tile_px=224))
    assert grid.read_level == 2
    tiles = read_tiles(slide, grid, np.arange(min(4, len(grid))))
    assert tiles.shape[1:] == (224, 224, 3)


def test_unknown_resolution_is_a_clear_error(svs_jpeg2000_no_mpp):
    with pytest.raises(PathsaeError, match="resolution unknown"):
        tile_grid(open_slide(svs_jpeg2000_no_mpp), TileGeometry())
