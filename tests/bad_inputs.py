"""Damaged, odd and hostile inputs built from the real files in ../shared/data.

Each builder writes into ``folder`` and returns the path to hand to the CLI. The reliability
matrix (test_reliability.py, scripts/reliability_table.py) runs them through `pathsae`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import pandas as pd
import tifffile
from PIL import Image, ImageCms

from conftest import HER2ST_HE, HER2ST_OUTS, SQUIDPY_H5AD, SVS

#: µm/px given to images that carry none, so their failures are about the pixels.
MPP = "0.5"


def her2st_crop(side: int = 1024) -> np.ndarray:
    """A tissue-rich (side, side, 3) uint8 crop of the real HER2+ H&E."""
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(HER2ST_HE) as img:
        return np.asarray(img.crop((3000, 4000, 3000 + side, 4000 + side)).convert("RGB"))


# --- slides and images ------------------------------------------------------------------------
def truncated_svs(folder: Path) -> Path:
    """The real SVS cut after 60% of its bytes (an interrupted copy)."""
    path = folder / "truncated.svs"
    path.write_bytes(SVS.read_bytes()[: int(SVS.stat().st_size * 0.6)])
    return path


def random_bytes_svs(folder: Path) -> Path:
    path = folder / "random.svs"
    path.write_bytes(np.random.default_rng(0).bytes(1 << 16))
    return path


def empty_svs(folder: Path) -> Path:
    path = folder / "empty.svs"
    path.write_bytes(b"")
    return path


def flat_tiff_50k(folder: Path) -> Path:
    """A 50,000 x 50,000 px single-level (no pyramid) JPEG-tiled TIFF: glass with one tissue tile."""
    side, tile = 50_000, 1024
    glass = imagecodecs.jpeg_encode(np.full((tile, tile, 3), 245, np.uint8), level=85)
    tissue = imagecodecs.jpeg_encode(her2st_crop(tile), level=85)
    n = -(-side // tile)
    centre = (n // 2) * n + n // 2
    path = folder / "flat_50k.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(
            (tissue if i == centre else glass for i in range(n * n)),
            shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb", compression="jpeg",
            resolution=(2e4, 2e4), resolutionunit="CENTIMETER",
        )  # fmt: skip
    return path


def corrupt_jpeg_tiles(folder: Path) -> Path:
    """A JPEG-tiled TIFF of real tissue whose level-0 tiles 3 and 7 hold garbage bytes."""
    path = folder / "corrupt_tiles.tif"
    tifffile.imwrite(
        path, her2st_crop(), tile=(256, 256), photometric="rgb", compression="jpeg",
        resolution=(2e4, 2e4), resolutionunit="CENTIMETER",
    )  # fmt: skip
    with tifffile.TiffFile(path) as tif:
        offsets, counts = tif.pages[0].dataoffsets, tif.pages[0].databytecounts
    with path.open("r+b") as f:
        for index in (3, 7):
            f.seek(offsets[index] + 200)
            f.write(np.random.default_rng(index).bytes(counts[index] - 400))
    return path


def png_without_mpp(folder: Path) -> Path:
    path = folder / "no_mpp.png"
    Image.fromarray(her2st_crop(512)).save(path)
    return path


def tiff_with_absurd_mpp(folder: Path) -> Path:
    """Resolution tags saying 1e-5 µm/px (1e9 px per cm)."""
    path = folder / "absurd_mpp.tif"
    tifffile.imwrite(path, her2st_crop(512), photometric="rgb", resolution=(1e9, 1e9), resolutionunit="CENTIMETER")
    return path


def rgba_png(folder: Path) -> Path:
    rgb = her2st_crop(512)
    path = folder / "rgba.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(path, dpi=(50800, 50800))
    return path


def rgb16_tiff(folder: Path) -> Path:
    path = folder / "rgb16.tif"
    pixels = her2st_crop(512).astype(np.uint16) * 257
    tifffile.imwrite(path, pixels, photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    return path


def greyscale_tiff(folder: Path) -> Path:
    path = folder / "grey.tif"
    grey = np.asarray(Image.fromarray(her2st_crop(512)).convert("L"))
    tifffile.imwrite(path, grey, photometric="minisblack", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    return path


def cmyk_tiff(folder: Path) -> Path:
    path = folder / "cmyk.tif"
    cmyk = np.asarray(Image.fromarray(her2st_crop(512)).convert("CMYK"))
    tifffile.imwrite(path, cmyk, photometric="separated", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    return path


def cmyk_jpeg(folder: Path) -> Path:
    path = folder / "cmyk.jpg"
    Image.fromarray(her2st_crop(512)).convert("CMYK").save(path, dpi=(50800, 50800))
    return path


def jpeg_with_icc_profile(folder: Path) -> Path:
    path = folder / "icc.jpg"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(her2st_crop(512)).save(path, icc_profile=profile, dpi=(50800, 50800))
    return path


# --- Visium samples ---------------------------------------------------------------------------
def _outs_copy(folder: Path, name: str) -> Path:
    outs = folder / name
    shutil.copytree(HER2ST_OUTS, outs)
    return outs


def visium_without_scalefactors(folder: Path) -> Path:
    outs = _outs_copy(folder, "no_scalefactors")
    (outs / "spatial" / "scalefactors_json.json").unlink()
    return outs


def _with_positions(folder: Path, name: str, change=None, kind: str = "v2") -> Path:
    """A copy of the her2st outs/ whose positions file is rewritten (changed, and as ``kind``)."""
    outs = _outs_copy(folder, name)
    spatial = outs / "spatial"
    from napari_pathsae.io.visium import read_positions

    table = read_positions(spatial).reset_index()
    if change is not None:
        change(table)
    for old in spatial.glob("tissue_positions*"):
        old.unlink()
    if kind == "v1":
        table.to_csv(spatial / "tissue_positions_list.csv", header=False, index=False)
    elif kind == "parquet":
        table.to_parquet(spatial / "tissue_positions.parquet", index=False)
    else:
        table.to_csv(spatial / "tissue_positions.csv", index=False)
    return outs


def visium_positions_v1(folder: Path) -> Path:
    """Positions as Space Ranger 1.x writes them: tissue_positions_list.csv, no header."""
    return _with_positions(folder, "positions_v1", kind="v1")


def visium_positions_v2(folder: Path) -> Path:
    return _with_positions(folder, "positions_v2", kind="v2")


def visium_positions_parquet(folder: Path) -> Path:
    return _with_positions(folder, "positions_parquet", kind="parquet")


def visium_foreign_barcodes(folder: Path) -> Path:
    """Positions whose barcodes match none of the matrix's (another sample's positions file)."""

    def foreign(table: pd.DataFrame) -> None:
        table["barcode"] = [f"AAAC{i:012d}-1" for i in range(len(table))]

    return _with_positions(folder, "foreign_barcodes", foreign)


def visium_all_spots_outside_image(folder: Path) -> Path:
    """Every spot moved 10x further from the origin: all land outside the image."""

    def scaled(table: pd.DataFrame) -> None:
        table[["pxl_row_in_fullres", "pxl_col_in_fullres"]] *= 10

    return _with_positions(folder, "all_spots_outside", scaled)


def visium_some_spots_outside_image(folder: Path) -> Path:
    """Every spot moved 5,000 px right: those in the right half land outside the 9,272 px wide image."""

    def shifted(table: pd.DataFrame) -> None:
        table["pxl_col_in_fullres"] += 5000

    return _with_positions(folder, "some_spots_outside", shifted)


def h5ad_without_spatial(folder: Path) -> Path:
    import anndata as ad

    adata = ad.read_h5ad(SQUIDPY_H5AD)
    del adata.uns["spatial"]
    path = folder / "no_spatial.h5ad"
    adata.write_h5ad(path)
    return path


def visium_hd_bins(folder: Path) -> Path:
    """A Visium HD-style outs/ (binned_outputs/square_008um and _016um, parquet positions, µm/px)."""
    outs = folder / "hd_outs"
    for size in (8, 16):
        root = outs / "binned_outputs" / f"square_{size:03d}um"
        shutil.copytree(HER2ST_OUTS, root)
        spatial = root / "spatial"
        from napari_pathsae.io.visium import read_positions

        table = read_positions(spatial).reset_index()
        for old in spatial.glob("tissue_positions*"):
            old.unlink()
        table.to_parquet(spatial / "tissue_positions.parquet", index=False)
        factors = json.loads((spatial / "scalefactors_json.json").read_text())
        factors.update(bin_size_um=float(size), microns_per_pixel=0.69)
        (spatial / "scalefactors_json.json").write_text(json.dumps(factors))
    return outs


def empty_folder(folder: Path) -> Path:
    path = folder / "empty_outs"
    path.mkdir()
    return path


# --- the matrix -------------------------------------------------------------------------------
TINY = ["--encoder", "vit_tiny_patch16_224"]


def info(path: Path, out: Path) -> list[str]:
    return ["info", str(path)]


def info_on_her2st(path: Path, out: Path) -> list[str]:
    return ["info", str(path), "--fullres", str(HER2ST_HE)]


def embed(path: Path, out: Path) -> list[str]:
    return ["embed", str(path), "-o", str(out / "store.zarr"), *TINY, "--slide-mpp", MPP]


def embed_own_mpp(path: Path, out: Path) -> list[str]:
    return ["embed", str(path), "-o", str(out / "store.zarr"), *TINY]


@dataclass(frozen=True)
class Case:
    """One bad input: how to build it, the command run on it, and the outcome expected."""

    group: str
    build: Callable[[Path], Path]
    command: Callable[[Path, Path], list[str]]
    expect: str  # "ok" or "error"
    says: str  # text the output (stdout when ok, the stderr line when an error) must contain

    @property
    def id(self) -> str:
        return f"{self.build.__name__}-{self.command.__name__}"


CASES = [
    Case("file", truncated_svs, info, "error", "truncated or damaged"),
    Case("file", truncated_svs, embed, "error", "truncated or damaged"),
    Case("file", random_bytes_svs, info, "error", "not a readable TIFF"),
    Case("file", empty_svs, embed, "error", "not a readable TIFF"),
    Case("file", corrupt_jpeg_tiles, info, "ok", "level 0: (1024, 1024, 3)"),
    Case("file", corrupt_jpeg_tiles, embed, "error", "cannot be decoded, a damaged tile?"),
    Case("file", png_without_mpp, embed_own_mpp, "error", "resolution unknown; pass the slide's µm/px"),
    Case("file", tiff_with_absurd_mpp, info, "ok", "unknown µm/px"),
    Case("file", tiff_with_absurd_mpp, embed_own_mpp, "error", "resolution unknown"),
    Case("file", rgba_png, embed_own_mpp, "ok", "9 tiles (9 computed)"),
    Case("file", rgb16_tiff, embed, "ok", "9 tiles (9 computed)"),
    Case("file", greyscale_tiff, embed, "ok", "9 tiles (9 computed)"),
    Case("file", cmyk_tiff, info, "ok", "CMYK converted to RGB"),
    Case("file", cmyk_tiff, embed, "ok", "9 tiles (9 computed)"),
    Case("file", cmyk_jpeg, embed_own_mpp, "ok", "9 tiles (9 computed)"),
    Case("file", jpeg_with_icc_profile, info, "ok", "ICC colour profile not applied"),
    Case("visium", visium_without_scalefactors, info, "error", "no scalefactors_json.json"),
    Case("visium", visium_positions_v1, info_on_her2st, "ok", "283 spots x 15289 genes"),
    Case("visium", visium_positions_v2, info_on_her2st, "ok", "283 spots x 15289 genes"),
    Case("visium", visium_positions_parquet, info_on_her2st, "ok", "283 spots x 15289 genes"),
    Case("visium", visium_foreign_barcodes, info, "error", "no barcode of the count matrix"),
    Case("visium", visium_all_spots_outside_image, info_on_her2st, "error", "every spot lies outside"),
    Case("visium", visium_some_spots_outside_image, info_on_her2st, "ok", "116 of 283 spots lie outside"),
    Case("visium", h5ad_without_spatial, info, "error", "uns['spatial'] (library id, scalefactors"),
    Case("visium", visium_hd_bins, info_on_her2st, "ok", "0.6900 µm/px (Visium HD microns_per_pixel)"),
    Case("visium", empty_folder, info, "error", "no spatial/ folder"),
]
