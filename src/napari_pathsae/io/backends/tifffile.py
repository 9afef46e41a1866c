"""TIFF-family slides (Aperio SVS, pyramidal/OME-TIFF, NDPI…) read through tifffile's zarr store, so opening
reads only metadata and napari decodes just the tiles in view. A single-level file gets a computed pyramid."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import tifffile
import zarr

from ...errors import PathsaeError
from ..pyramid import computed_pyramid, level_chunks
from ..resolution import tiff_mpp
from ..slide import ICC_NOTE, Slide
from . import SlideBackend, register_backend

NAME = "tifffile"
SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".btf", ".tf8", ".scn", ".bif")
#: Series that ship beside the pyramid in SVS/NDPI files and are never levels.
ASSOCIATED_IMAGES = {"thumbnail", "label", "macro", "overview", "map"}
#: A single-level TIFF with a side above this many pixels is slow to overview (every tile decoded).
LARGE_WITHOUT_PYRAMID = 20_000


def looks_like_tiff(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def open_tiff(path: Path) -> Slide:
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # TiffFileError, struct.error, ValueError… on damaged headers
        raise PathsaeError(f"{path.name}: not a readable TIFF ({exc or type(exc).__name__})") from None
    try:
        if not tif.series:
            raise PathsaeError(f"{path.name}: the TIFF holds no readable image (truncated or damaged?)")
        owners = _level_owners(tif)
        notes: list[str] = []
        levels = [_level_array(owner, index, notes) for owner, index in owners]
        base = tif.series[0]
        axes = _display_axes(base.axes, base.shape, base.dtype)
        direct = base.axes in ("YX", "YXS")  # zarr arrays already in display order
        sources = [zarr.open_array(o.aszarr(level=i), mode="r") for o, i in owners] if direct else []
        mpp, source = tiff_mpp(tif)
        if _is_cmyk(tif.pages[0]):
            levels, sources = [level.map_blocks(cmyk_to_rgb, chunks=(*level.chunks[:2], 3)) for level in levels], []
            notes.append("CMYK converted to RGB")
        if 34675 in tif.pages[0].tags:
            notes.append(ICC_NOTE)
    except PathsaeError:
        tif.close()
        raise
    except Exception as exc:  # tifffile raises many kinds on damaged files
        tif.close()
        raise PathsaeError(f"{path.name}: cannot read the slide structure ({exc})") from None
    pyramid = "file"
    if len(levels) == 1:
        levels = computed_pyramid(levels[0], (axes.index("Y"), axes.index("X")))
        pyramid = "computed"
        if max(levels[0].shape) > LARGE_WITHOUT_PYRAMID:
            notes.append("no pyramid in the file: overviews and tissue detection decode all of level 0 once")
    return Slide(path, levels, axes, mpp, source, NAME, pyramid, notes, tif.close, sources)


def _is_cmyk(page: tifffile.TiffPage) -> bool:
    return page.photometric == tifffile.PHOTOMETRIC.SEPARATED and page.samplesperpixel == 4


def cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 CMYK as (..., 3) uint8 RGB, as Pillow converts it: R = (255 - K)(1 - C/255)."""
    ink = cmyk.astype(np.float32) / 255.0
    rgb = 255.0 * (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4])
    return np.round(rgb).astype(np.uint8)


def _level_owners(tif: tifffile.TiffFile) -> list[tuple[tifffile.TiffPageSeries, int]]:
    """(series, level index) for every pyramid level, finest first.

    Levels are either the SubIFD/SVS levels of the first series, or further series that are
    downsampled copies of the first (pyramids written as one series per level).
    """
    base = tif.series[0]
    if len(base.levels) > 1:
        return [(base, i) for i in range(len(base.levels))]
    owners = [(base, 0)]
    y, x = base.axes.index("Y"), base.axes.index("X")
    previous = base.shape
    for series in tif.series[1:]:
        if (series.name or "").strip().lower() in ASSOCIATED_IMAGES:
            continue
        shape = series.shape
        same_kind = series.axes == base.axes and series.dtype == base.dtype
        smaller = same_kind and shape[y] < previous[y] and shape[x] < previous[x]
        if smaller and _same_aspect(shape, base.shape, y, x):
            owners.append((series, 0))
            previous = shape
    return owners


def _same_aspect(a: tuple, b: tuple, y: int, x: int) -> bool:
    fy, fx = b[y] / a[y], b[x] / a[x]
    return abs(fy - fx) <= 0.02 * max(fy, fx) + 2 / min(a[y], a[x])


def _level_array(series: tifffile.TiffPageSeries, index: int, notes: list[str]) -> da.Array:
    """One level as (Y, X[, S]) or (C, Y, X) dask array over tifffile's zarr store."""
    store = series.aszarr(level=index)
    array = zarr.open_array(store, mode="r")
    y, x = series.axes.index("Y"), series.axes.index("X")
    level = da.from_zarr(array, chunks=level_chunks(array.shape, array.chunks, (y, x)))
    return _to_display_axes(level, series.axes, notes)


def _display_axes(axes: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    """Axes a level is shown with: RGB(A) samples last ("YXS"), channels first ("CYX") or "YX"."""
    if "S" in axes:
        return "YXS"
    if "C" in axes:
        rgb_planes = shape[axes.index("C")] in (3, 4) and np.dtype(dtype) == np.uint8
        return "YXS" if rgb_planes else "CYX"
    return "YX"


def _to_display_axes(level: da.Array, axes: str, notes: list[str]) -> da.Array:
    """Drop extra axes (first plane of T/Z/...), put RGB samples last and channels first."""
    target = _display_axes(axes, level.shape, level.dtype)
    index = []
    for axis, size in zip(axes, level.shape, strict=True):
        keep = axis in "YXS" or (axis == "C" and ("S" not in axes))
        index.append(slice(None) if keep else 0)
        if not keep and size > 1 and not notes:
            notes.append(f"axis {axis} has {size} planes; showing the first")
    level = level[tuple(index)]
    kept = "".join(a for a in axes if a in "YXS" or (a == "C" and "S" not in axes))
    kept = kept.replace("C", "S") if target == "YXS" else kept
    return level.transpose([kept.index(a) for a in target])


register_backend(SlideBackend(NAME, SUFFIXES, open_tiff, sniff=looks_like_tiff))
