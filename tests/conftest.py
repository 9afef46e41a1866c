"""Shared fixtures: the real tissue files in ../shared/data, and slide containers built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SVS = DATA / "cmu_small_region.svs"
HER2ST = DATA / "her2st_B4"
HER2ST_OUTS = HER2ST / "spaceranger_outs"
HER2ST_HE = HER2ST / "B4_HE.jpg"
SCANPY_VISIUM = DATA / "scanpy_visium_1.0.0"
CYTASSIST = DATA / "visium_cytassist_mouse"
SQUIDPY_H5AD = DATA / "squidpy_visium_mouse_brain" / "test_data.h5ad"


def pytest_sessionstart(session):
    if not SVS.is_file():  # never skip into a pass: the tests are about these files
        raise pytest.UsageError(f"real test data missing: expected {DATA} beside the checkout")


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean, as a scanner's pyramid would store it."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3)).round().astype(image.dtype).reshape(h // factor, w // factor, -1)


@pytest.fixture(scope="session")
def her2st_pixels() -> np.ndarray:
    """A 4096 x 4096 crop of the real HER2+ breast cancer H&E (full resolution)."""
    Image.MAX_IMAGE_PIXELS = None  # a real 92 Mpx slide, not a decompression bomb
    with Image.open(HER2ST_HE) as img:
        return np.asarray(img.crop((2000, 2500, 6096, 6596)))


@pytest.fixture(scope="session")
def ome_subifd_5_levels(tmp_path_factory, her2st_pixels) -> Path:
    """A 5-level OME-TIFF (pyramid in SubIFDs), JPEG tiles, PhysicalSizeX 0.6897 µm."""
    path = tmp_path_factory.mktemp("ome") / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        options = {"tile": (256, 256), "photometric": "rgb", "compression": "jpeg"}
        tif.write(
            her2st_pixels,
            subifds=4,
            metadata={"axes": "YXS", "PhysicalSizeX": 0.6897, "PhysicalSizeY": 0.6897,
                      "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"},
            **options,
        )  # fmt: skip
        for level in range(1, 5):
            tif.write(downsample(her2st_pixels, 2**level), subfiletype=1, **options)
    return path


def _write_levels(path: Path, pixels: np.ndarray, metadata: dict | None) -> Path:
    """Three levels at 0.5, 1 and 2 µm/px (cm resolution tags), zlib tiles."""
    with tifffile.TiffWriter(path) as tif:
        for level in range(3):
            px_per_cm = 1e4 / (0.5 * 2**level)
            tif.write(
                downsample(pixels, 2**level) if level else pixels,
                tile=(256, 256), photometric="rgb", compression="zlib", metadata=metadata,
                resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER",
                subfiletype=1 if level and metadata is None else 0,
            )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def series_levels_tiff(tmp_path_factory, her2st_pixels) -> Path:
    """A TIFF storing each pyramid level as its own series (tifffile 'shaped' series)."""
    return _write_levels(tmp_path_factory.mktemp("series") / "levels.tif", her2st_pixels, {})


@pytest.fixture(scope="session")
def page_levels_tiff(tmp_path_factory, her2st_pixels) -> Path:
    """A generic pyramidal TIFF: reduced-resolution pages after the full-resolution one."""
    return _write_levels(tmp_path_factory.mktemp("pages") / "pyramid.tif", her2st_pixels, None)


@pytest.fixture(scope="session")
def svs_jpeg2000_no_mpp(tmp_path_factory) -> Path:
    """An Aperio-style SVS with JPEG 2000 tiles, a thumbnail and 3 levels, and no MPP field."""
    path = tmp_path_factory.mktemp("svs") / "j2k.svs"
    level0 = tifffile.imread(SVS)[:2048, :2048]
    description = "Aperio Image Library v12.0.15\r\n2048x2048 (256x256) J2K/KDU Q=70|AppMag = 20|Filename = j2k"
    with tifffile.TiffWriter(path) as tif:
        tile = {"tile": (256, 256), "photometric": "rgb", "compression": "jpeg2000"}
        tif.write(level0, description=description, metadata=None, **tile)
        tif.write(downsample(level0, 8), description="Aperio Image Library v12.0.15\r\nthumbnail", metadata=None,
                  photometric="rgb")  # fmt: skip
        tif.write(downsample(level0, 4), description=description, metadata=None, **tile)
        tif.write(downsample(level0, 16), description=description, metadata=None, **tile)
    return path


TINY_ENCODER = "vit_tiny_patch16_224"  # random init offline: a real ViT, small enough for CI


@pytest.fixture(scope="session")
def planted_outs(tmp_path_factory) -> Path:
    """her2st B4's Space Ranger outs plus PLANTED1: the mean colour saturation under each spot."""
    from planting import spot_saturation, write_planted_outs

    target = tmp_path_factory.mktemp("planted") / "outs"
    return write_planted_outs(HER2ST_OUTS, target, spot_saturation(HER2ST_HE, HER2ST_OUTS))


@pytest.fixture(scope="session")
def her2st_model(tmp_path_factory, planted_outs):
    """The her2st B4 section embedded (112 µm tiles), a TopK SAE trained and applied, and a planted gene.

    Returns the folder holding ``b4.zarr``, ``sae/`` and ``planted/`` (Space Ranger outs with PLANTED1).
    """
    from napari_pathsae.data.tiles import TileGeometry
    from napari_pathsae.engine.embed import EmbedOptions, embed_slide
    from napari_pathsae.engine.encode import encode_store, train_to_folder
    from napari_pathsae.models.encoders import load_encoder
    from napari_pathsae.models.sae.train import TrainOptions

    work = tmp_path_factory.mktemp("her2st_model")
    encoder = load_encoder(TINY_ENCODER, dtype="fp32", allow_random=True)  # bf16 would vary with batch make-up
    options = EmbedOptions(geometry=TileGeometry.from_options(tile_um=112), slide_mpp=0.69, batch_size=64)
    embed_slide(HER2ST_HE, work / "b4.zarr", encoder, options)
    train_to_folder([work / "b4.zarr"], work / "sae", TrainOptions(arch="topk", expansion=8, k=16))
    encode_store(work / "b4.zarr", work / "sae")
    (work / "planted").symlink_to(planted_outs)
    return work


@pytest.fixture(scope="session")
def encoded_cohort(tmp_path_factory):
    """Seven real-tissue slides with a planted slide-level target, embedded, an SAE trained, encoded and indexed."""
    from cohort_files import encoded_cohort_files

    return encoded_cohort_files(tmp_path_factory.mktemp("cohort"))
