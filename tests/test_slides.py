"""Slides and images open as lazy levels whose pixels equal tifffile's, with the right µm/px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import DATA, SVS, downsample
from napari_pathsae import PathsaeError, open_slide
from napari_pathsae.io.pyramid import CHUNK_SIDE, SMALLEST_LEVEL_SIDE


def test_svs_level0_equals_tifffile_and_mpp_from_description():
    slide = open_slide(SVS)
    reference = tifffile.imread(SVS)
    assert slide.axes == "YXS" and slide.rgb
    assert slide.level_shapes[0] == reference.shape == (2967, 2220, 3)
    np.testing.assert_array_equal(slide.levels[0][1000:1300, 700:1100].compute(), reference[1000:1300, 700:1100])
    assert slide.mpp == pytest.approx(0.499) and slide.mpp_source == "Aperio MPP"
    assert slide.backend == "tifffile"


def test_single_level_slide_gets_a_lazy_mean_pyramid():
    slide = open_slide(SVS)
    assert slide.pyramid == "computed"
    assert [s[:2] for s in slide.level_shapes] == [(2967, 2220), (1483, 1110), (741, 555)]
    assert max(slide.level_shapes[-1][:2]) <= SMALLEST_LEVEL_SIDE
    level0 = tifffile.imread(SVS)
    expected = downsample(level0, 2)
    got = slide.levels[1][:200, :300].compute()
    assert np.abs(got.astype(int) - expected[:200, :300].astype(int)).max() <= 1  # rounding


def test_five_level_ome_tiff_keeps_its_levels_and_physical_size(ome_subifd_5_levels):
    slide = open_slide(ome_subifd_5_levels)
    with tifffile.TiffFile(ome_subifd_5_levels) as tif:
        for i, level in enumerate(tif.series[0].levels):
            np.testing.assert_array_equal(slide.levels[i][:300, :300].compute(), level.asarray()[:300, :300])
    assert slide.pyramid == "file" and len(slide.levels) == 5
    assert slide.mpp == pytest.approx(0.6897) and slide.mpp_source == "OME PhysicalSizeX"


@pytest.mark.parametrize("fixture", ["series_levels_tiff", "page_levels_tiff"])
def test_pyramids_stored_as_series_or_reduced_pages(fixture, request):
    path = request.getfixturevalue(fixture)
    slide = open_slide(path)
    assert [s[:2] for s in slide.level_shapes] == [(4096, 4096), (2048, 2048), (1024, 1024)]
    assert slide.pyramid == "file"
    assert slide.mpp == pytest.approx(0.5) and slide.mpp_source == "TIFF resolution tags"
    with tifffile.TiffFile(path) as tif:
        np.testing.assert_array_equal(np.asarray(slide.levels[2]), tif.pages[2].asarray())


def test_jpeg2000_svs_without_mpp_opens_with_unknown_resolution(svs_jpeg2000_no_mpp):
    slide = open_slide(svs_jpeg2000_no_mpp)
    assert slide.mpp is None and slide.mpp_source == "unknown"
    assert [s[:2] for s in slide.level_shapes] == [
        (2048, 2048),
        (512, 512),
        (128, 128),
    ]  # no thumbnail
    with tifffile.TiffFile(svs_jpeg2000_no_mpp) as tif:
        np.testing.assert_array_equal(slide.levels[0][256:768, 0:512].compute(), tif.pages[0].asarray()[256:768, :512])
    assert open_slide(svs_jpeg2000_no_mpp, mpp=0.25).mpp == 0.25


def test_opening_reads_no_level0_tiles(monkeypatch, ome_subifd_5_levels):
    """Tiles are read through tifffile's FileCache only when napari asks for pixels."""
    reads: list[int] = []
    original = tifffile.FileCache.read

    def counting_read(self, fh, offset, bytecount):
        reads.append(offset)
        return original(self, fh, offset, bytecount)

    monkeypatch.setattr(tifffile.FileCache, "read", counting_read)
    slide = open_slide(ome_subifd_5_levels)
    assert reads == []
    with tifffile.TiffFile(ome_subifd_5_levels) as tif:
        level0_offsets = set(tif.series[0].levels[0].keyframe.dataoffsets)
    slide.levels[0][:256, :256].compute()  # one dask chunk: its own tiles, no others
    tiles_per_chunk = (CHUNK_SIDE // 256) ** 2
    assert len([o for o in reads if o in level0_offsets]) == tiles_per_chunk
    slide.levels[4].compute()  # the whole lowest level reads no level-0 tile
    assert len([o for o in reads if o in level0_offsets]) == tiles_per_chunk


@pytest.mark.parametrize(
    ("name", "shape", "dtype"),
    [
        ("tiatoolbox_target_image.png", (1000, 1000, 3), np.uint8),
        ("tiatoolbox_colon_nuclei.png", (920, 1131, 4), np.uint8),  # RGBA
        ("her2st_B4/B4_HE.jpg", (9923, 9272, 3), np.uint8),
    ],
)
def test_plain_images_open_lazily_with_unknown_resolution(name, shape, dtype):
    slide = open_slide(DATA / name)
    assert slide.level_shapes[0] == shape and slide.levels[0].dtype == dtype
    assert slide.backend == "pillow" and slide.mpp is None
    assert len(slide.levels) > 1 or max(shape[:2]) <= SMALLEST_LEVEL_SIDE
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(DATA / name) as img:
        np.testing.assert_array_equal(slide.levels[0][:64, :64].compute(), np.asarray(img)[:64, :64])


def test_greyscale_and_16_bit_tiffs(tmp_path):
    rgb = tifffile.imread(SVS)[:512, :512]
    grey16 = (rgb.mean(axis=2) * 257).astype(np.uint16)
    tifffile.imwrite(
        tmp_path / "grey16.tif",
        grey16,
        tile=(128, 128),
        resolution=(2e4, 2e4),
        resolutionunit="CENTIMETER",
    )
    slide = open_slide(tmp_path / "grey16.tif")
    assert slide.axes == "YX" and not slide.rgb and slide.levels[0].dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(slide.levels[0]), grey16)
    assert slide.mpp == pytest.approx(0.5)


def test_planar_rgb_ome_tiff_is_shown_as_rgb(tmp_path):
    rgb = tifffile.imread(SVS)[:512, :640]
    planar = np.moveaxis(rgb, -1, 0)
    tifffile.imwrite(
        tmp_path / "planar.ome.tif",
        planar,
        metadata={"axes": "CYX", "PhysicalSizeX": 250, "PhysicalSizeXUnit": "nm"},
    )
    slide = open_slide(tmp_path / "planar.ome.tif")
    assert slide.axes == "YXS" and slide.level_shapes[0] == (512, 640, 3)
    np.testing.assert_array_equal(np.asarray(slide.levels[0]), rgb)
    assert slide.mpp == pytest.approx(0.25)


def test_72_dpi_default_is_not_taken_as_a_resolution(tmp_path):
    tifffile.imwrite(
        tmp_path / "dpi.tif",
        tifffile.imread(SVS)[:256, :256],
        resolution=(72, 72),
        resolutionunit="INCH",
    )
    slide = open_slide(tmp_path / "dpi.tif")
    assert slide.mpp is None and slide.mpp_source == "unknown"


@pytest.mark.parametrize("mpp", [0.0, -1.0, 1e6, float("nan")])
def test_absurd_user_mpp_is_refused(mpp):
    with pytest.raises(PathsaeError, match="not plausible"):
        open_slide(SVS, mpp=mpp)


def test_bad_files_raise_one_clear_error(tmp_path):
    with pytest.raises(PathsaeError, match="no such file"):
        open_slide(tmp_path / "missing.svs")
    (tmp_path / "random.svs").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(PathsaeError, match="not a readable TIFF"):
        open_slide(tmp_path / "random.svs")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PathsaeError, match="not a slide or image"):
        open_slide(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(PathsaeError, match="not a readable image"):
        open_slide(tmp_path / "broken.png")


def test_plain_image_is_decoded_once_on_first_read_never_at_open(monkeypatch):
    from napari_pathsae.io.backends import pillow

    decodes = []
    original = pillow._decode_flat
    monkeypatch.setattr(pillow, "_decode_flat", lambda *a: decodes.append(a) or original(*a))
    slide = open_slide(DATA / "tiatoolbox_colon_nuclei.png")
    assert decodes == [] and len(slide.levels) == 2
    slide.levels[0][:10, :10].compute()
    np.asarray(slide.levels[-1])
    slide.levels[0][500:600].compute()
    assert len(decodes) == 1


def test_napari_yaml_reader_patterns_are_the_backends_suffixes():
    """A backend registered in io/backends/ is offered by napari's Open dialog, and nothing else is."""
    import yaml

    from napari_pathsae.io.backends import slide_suffixes

    manifest = yaml.safe_load((Path(__file__).parents[1] / "napari.yaml").read_text())
    patterns = manifest["contributions"]["readers"][0]["filename_patterns"]
    expected = {f"*{s}" for s in slide_suffixes()} | {"*.h5ad", "*"}  # .h5ad: Visium; "*": Visium folders
    assert set(patterns) == expected
    assert len(patterns) == len(expected), "a pattern is listed twice"


def test_the_numpy_backend_opens_exact_pixels_and_refuses_other_arrays(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (700, 900, 3), dtype=np.uint8)
    np.save(tmp_path / "tile.npy", pixels)
    slide = open_slide(tmp_path / "tile.npy", mpp=0.5)
    assert (slide.backend, slide.axes, slide.mpp, slide.mpp_source) == ("array", "YXS", 0.5, "user")
    assert slide.shape_yx == (700, 900) and slide.pyramid == "computed"
    np.testing.assert_array_equal(slide.read_region(0, 100, 200, 64, 64), pixels[100:164, 200:264])
    np.save(tmp_path / "cube.npy", np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(PathsaeError, match=r"cube.npy: expected a \(Y, X\) or \(Y, X, 3\|4\) image"):
        open_slide(tmp_path / "cube.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(PathsaeError, match=r"junk\.npy: not a readable \.npy array"):
        open_slide(tmp_path / "junk.npy")


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(PathsaeError, match="is a folder, not a slide file") as raised:
        open_slide(tmp_path)
    assert "the Open panel's Visium field, the CLI's --visium" in str(raised.value)  # not a Python function's name


def test_with_mpp_returns_a_copy_and_leaves_the_slide_as_read():
    slide = open_slide(DATA / "tiatoolbox_colon_nuclei.png")
    before = (slide.mpp, slide.mpp_source)
    other = slide.with_mpp(0.25)
    assert (other.mpp, other.mpp_source) == (0.25, "user") and (slide.mpp, slide.mpp_source) == before
