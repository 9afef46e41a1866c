"""The OpenSlide and DICOM (wsidicom) backends beside tifffile, on the real CMU slide: the same level-0 pixels
and µm/px through each, a real DICOM WSI made from it with wsidicomizer (lossless, with its pyramid), the
same embeddings whichever backend read the tiles, and a slide nobody reads refused naming what is read."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SVS, TINY_ENCODER
from napari_pathsae.cli import main
from napari_pathsae.data.store import TileStore
from napari_pathsae.errors import PathsaeError
from napari_pathsae.io.slides import open_slide


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory):
    """The CMU SVS converted to a DICOM WSI by wsidicomizer: lossless JPEG 2000 frames (OpenSlide reads those,
    not lossless JPEG; wsidicomizer's RLE and uncompressed levels past 0 were unreadable), levels to 1/8."""
    from wsidicom.codec.settings import Channels, Jpeg2kSettings
    from wsidicomizer import WsiDicomizer
    from wsidicomizer.sources import TiffSlideSource

    folder = tmp_path_factory.mktemp("dicom") / "cmu_dicom"
    lossless = Jpeg2kSettings(levels=[0], channels=Channels.RGB)
    WsiDicomizer.convert(
        SVS, folder, preferred_source=TiffSlideSource, encoding=lossless, force_transcoding=True,
        add_missing_levels=True, include_label=False, include_overview=False, include_thumbnail=False,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def reference():
    slide = open_slide(SVS)
    yield slide, np.asarray(slide.levels[0])
    slide.close()


def test_openslide_reads_the_same_pixels_and_resolution_as_tifffile(reference):
    tiff, pixels = reference
    slide = open_slide(SVS, backend="openslide")
    try:
        assert (slide.backend, tiff.backend) == ("openslide", "tifffile")
        assert slide.mpp == tiff.mpp == 0.499 and slide.level_shapes[0] == tiff.level_shapes[0]
        np.testing.assert_array_equal(np.asarray(slide.levels[0]), pixels)
        np.testing.assert_array_equal(
            slide.read_region(0, 2900, 2100, 200, 300), tiff.read_region(0, 2900, 2100, 200, 300)
        )
    finally:
        slide.close()


def test_dicom_wsi_through_wsidicom_and_openslide_is_the_svs(dicom_folder, reference):
    _, pixels = reference
    file = next(dicom_folder.glob("*.dcm"))
    for path in (dicom_folder, file):  # the slide's folder, or any of its files
        slide = open_slide(path)
        try:
            assert slide.backend == "wsidicom" and slide.mpp == pytest.approx(0.499) and slide.pyramid == "file"
            np.testing.assert_array_equal(np.asarray(slide.levels[0]), pixels)
            assert [level.shape for level in slide.levels] == [(2967, 2220, 3), (1484, 1110, 3), (742, 555, 3),
                                                               (371, 278, 3)]  # fmt: skip
            half = np.asarray(slide.levels[1])  # the pyramid wsidicomizer wrote: about a 2x2 mean of the SVS
            assert np.abs(half.astype(int) - pixels[: half.shape[0] * 2 : 2, : half.shape[1] * 2 : 2]).mean() < 8
        finally:
            slide.close()
    slide = open_slide(file, backend="openslide")  # OpenSlide 4 reads DICOM too (level 0: its edge frames of
    try:  # wsidicomizer's smaller levels are cut short, which OpenSlide refuses)
        assert slide.mpp == pytest.approx(0.499)
        np.testing.assert_array_equal(np.asarray(slide.levels[0]), pixels)
    finally:
        slide.close()


def test_embeddings_are_the_same_whichever_backend_read_the_tiles(dicom_folder, tmp_path, capsys):
    common = ["--encoder", TINY_ENCODER, "--dtype", "fp32", "--tile-um", "112"]
    assert main(["embed", str(SVS), "-o", str(tmp_path / "tiff.zarr"), *common]) == 0
    assert main(["embed", str(dicom_folder), "-o", str(tmp_path / "dicom.zarr"), *common]) == 0
    assert main(["embed", str(SVS), "--backend", "openslide", "-o", str(tmp_path / "os.zarr"), *common]) == 0
    stores = [TileStore.open(tmp_path / f"{name}.zarr") for name in ("tiff", "dicom", "os")]
    assert [s.provenance["slide_backend"] for s in stores] == ["tifffile", "wsidicom", "openslide"]
    for other in stores[1:]:
        np.testing.assert_array_equal(other.coords, stores[0].coords)
        np.testing.assert_array_equal(other.embeddings()[:], stores[0].embeddings()[:])
    assert main(["info", str(dicom_folder)]) == 0
    assert "wsidicom" in capsys.readouterr().out


def test_a_slide_no_backend_reads_is_refused_naming_what_is_read(tmp_path, capsys):
    odd = tmp_path / "scan.xyz"
    odd.write_bytes(b"\x00" * 4096)
    with pytest.raises(PathsaeError, match=r"expected one of .*\.mrxs.*\.dcm.*or a DICOM folder"):
        open_slide(odd)
    with pytest.raises(PathsaeError, match="OpenSlide cannot read it"):
        open_slide(odd, backend="openslide")
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty"), "--backend", "wsidicom"]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a readable DICOM whole-slide image" in err and len(err.splitlines()) == 1


def test_napari_opens_a_dicom_folder_dropped_on_it(dicom_folder):
    from napari_pathsae.plugin.reader import get_reader

    reader = get_reader(str(dicom_folder))
    assert reader is not None
    [(levels, meta, kind)] = reader(str(dicom_folder))
    assert kind == "image" and meta["metadata"]["pathsae"]["backend"] == "wsidicom" and len(levels) == 4
    assert meta["scale"] == pytest.approx((0.499, 0.499))
