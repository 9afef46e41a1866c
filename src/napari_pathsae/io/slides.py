"""Open whole-slide images and plain images as lazy multiscale dask levels.

TIFF-family files (Aperio SVS, pyramidal/OME-TIFF, NDPI) are read through tifffile's zarr store,
so opening reads only metadata and napari decodes just the tiles in view. Plain JPEG/PNG are
decoded once, on first access. A file stored with a single level gets a lazily computed pyramid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile
import zarr
from PIL import Image

from ..errors import PathsaeError, UnsupportedFileError, reported_as
from .frames import WorldFrame, is_plausible_mpp
from .pyramid import Memoised, computed_pyramid, in_memory_pyramid, level_chunks
from .resolution import dpi_mpp, first_plausible, tiff_mpp

TIFF_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".btf", ".tf8", ".scn", ".bif")
FLAT_SUFFIXES = (".jpg", ".jpeg", ".png")
SLIDE_SUFFIXES = TIFF_SUFFIXES + FLAT_SUFFIXES
#: Series that ship beside the pyramid in SVS/NDPI files and are never levels.
ASSOCIATED_IMAGES = {"thumbnail", "label", "macro", "overview", "map"}
#: Embedded colour profiles are reported, not applied: the encoders saw pixels as scanners store them.
ICC_NOTE = "embedded ICC colour profile not applied (pixels are used as stored)"
#: A single-level TIFF with a side above this many pixels is slow to overview (every tile decoded).
LARGE_WITHOUT_PYRAMID = 20_000
#: Plain images larger than this many pixels are refused (PIL's bomb check is lifted below it).
MAX_FLAT_PIXELS = 1 << 31


@dataclass
class Slide:
    """A slide as lazy levels, finest first, with its resolution and provenance."""

    path: Path | None
    levels: list[da.Array]
    axes: str  # "YX", "YXS" (RGB(A) last) or "CYX"
    mpp: float | None  # µm/px of level 0; None when unknown
    mpp_source: str  # "Aperio MPP", "OME PhysicalSizeX", "TIFF resolution tags", "dpi", "user", "unknown"
    backend: str  # "tifffile", "pillow" or "array"
    pyramid: str  # "file" (levels stored in the file) or "computed"
    notes: list[str] = field(default_factory=list)
    _handle: object | None = field(default=None, repr=False)
    #: Stored levels as array-likes sliced directly (zarr / in-memory): what tiling reads from.
    sources: list = field(default_factory=list, repr=False)

    @property
    def stored_levels(self) -> int:
        """How many levels the file itself holds (1 when the pyramid was computed)."""
        return len(self.sources) if self.sources else 1

    def downsample(self, level: int) -> float:
        """Level-0 pixels per pixel of ``level`` (along x)."""
        x = self.yx_axes[1]
        return self.levels[0].shape[x] / self.levels[level].shape[x]

    def read_region(self, level: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """(height, width[, S]) pixels of a stored level; outside the image is white (or 0)."""
        source = self.sources[level] if self.sources else self.levels[level]
        h, w = self.levels[level].shape[self.yx_axes[0]], self.levels[level].shape[self.yx_axes[1]]
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + height, h), min(left + width, w)
        dtype = self.levels[0].dtype
        out = np.full((height, width, *self.levels[0].shape[2:]), white_level(dtype), dtype)
        if y1 > y0 and x1 > x0:
            with self._decoding(f"level {level} pixels at x {x0}, y {y0}"):
                out[y0 - top : y1 - top, x0 - left : x1 - left] = np.asarray(source[y0:y1, x0:x1])
        return out

    def read_level(self, level: int) -> np.ndarray:
        """A whole (coarse) level's pixels."""
        with self._decoding(f"level {level}"):
            return np.asarray(self.levels[level])

    def _decoding(self, where: str) -> AbstractContextManager[None]:
        """A damaged tile (codec error) becomes one PathsaeError line naming the slide and place."""
        name = self.path.name if self.path else "the image"
        return reported_as(f"{name}: {where} cannot be decoded, a damaged tile?")

    @property
    def rgb(self) -> bool:
        return self.axes == "YXS" and self.levels[0].shape[-1] in (3, 4)

    @property
    def yx_axes(self) -> tuple[int, int]:
        return (self.axes.index("Y"), self.axes.index("X"))

    @property
    def shape_yx(self) -> tuple[int, int]:
        y, x = self.yx_axes
        return (self.levels[0].shape[y], self.levels[0].shape[x])

    @property
    def frame(self) -> WorldFrame:
        return WorldFrame(self.mpp)

    @property
    def level_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(n) for n in level.shape) for level in self.levels]

    def with_mpp(self, mpp: float | None, source: str = "user") -> Slide:
        """This slide with a user-given µm/px (None keeps the metadata's)."""
        if mpp is None:
            return self
        if not is_plausible_mpp(mpp):
            raise PathsaeError(f"µm/px {mpp} is not plausible for a slide (expected 0.02 to 50)")
        self.mpp, self.mpp_source = float(mpp), source
        return self

    def metadata(self) -> dict:
        """What napari layer metadata records about this slide."""
        return {
            "path": str(self.path) if self.path else None,
            "mpp": self.mpp,
            "mpp_source": self.mpp_source,
            "units": self.frame.units,
            "level_shapes": self.level_shapes,
            "axes": self.axes,
            "backend": self.backend,
            "pyramid": self.pyramid,
            "notes": list(self.notes),
        }

    def close(self) -> None:
        if isinstance(self._handle, tifffile.TiffFile):
            self._handle.close()

    @classmethod
    def from_array(cls, array: np.ndarray, mpp: float | None = None, path: Path | None = None) -> Slide:
        """A slide from an in-memory (Y, X[, S]) array, e.g. an image stored inside an .h5ad."""
        array = np.asarray(array)
        if array.ndim not in (2, 3):
            raise PathsaeError(f"expected a 2-D or RGB image, got an array of shape {array.shape}")
        axes = "YX" if array.ndim == 2 else "YXS"
        level0 = Memoised(array.shape, array.dtype, lambda: array)
        mpp, source = first_plausible([(mpp, "user")])
        return cls(path, in_memory_pyramid(level0), axes, mpp, source, "array", "computed", sources=[level0])


def white_level(dtype: np.dtype) -> float:
    """The brightest value of a pixel type (glass): the integer maximum, or 1.0 for floats."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def open_slide(path: str | Path, mpp: float | None = None) -> Slide:
    """Open a slide or image lazily; ``mpp`` overrides the resolution found in its metadata."""
    path = Path(path)
    if not path.is_file():
        raise PathsaeError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in FLAT_SUFFIXES:
        slide = _open_flat(path)
    elif suffix in TIFF_SUFFIXES or _looks_like_tiff(path):
        slide = _open_tiff(path)
    else:
        raise UnsupportedFileError(
            f"{path.name}: not a slide or image napari-pathsae can open (expected one of {', '.join(SLIDE_SUFFIXES)})"
        )
    return slide.with_mpp(mpp)


def _looks_like_tiff(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _open_tiff(path: Path) -> Slide:
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
    return Slide(path, levels, axes, mpp, source, "tifffile", pyramid, notes, tif, sources)


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


_AS_RGB = {
    "P": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "PA": "RGBA",
    "1": "L",
}


@contextmanager
def _large_images_allowed() -> Iterator[None]:
    """Lift PIL's decompression-bomb check up to MAX_FLAT_PIXELS (slides are legitimately large)."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_FLAT_PIXELS
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _flat_header(path: Path) -> tuple[tuple[int, ...], str, tuple | None, bool]:
    try:
        with _large_images_allowed(), Image.open(path) as img:
            mode = _AS_RGB.get(img.mode, img.mode)
            width, height = img.size
            dpi = img.info.get("dpi")
            icc = bool(img.info.get("icc_profile"))
    except Exception as exc:
        raise PathsaeError(f"{path.name}: not a readable image ({exc})") from None
    if width * height > MAX_FLAT_PIXELS:
        raise PathsaeError(f"{path.name}: {width}x{height} px is too large for a plain image")
    bands = {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode)
    if mode == "LA":
        mode, bands = "L", None
    shape = (height, width) if bands is None else (height, width, bands)
    return shape, mode, dpi, icc


def _decode_flat(path: Path, mode: str) -> np.ndarray:
    try:
        with _large_images_allowed(), Image.open(path) as img:
            return np.asarray(img if img.mode == mode else img.convert(mode))
    except Exception as exc:
        raise PathsaeError(f"{path.name}: the image data cannot be decoded ({exc})") from None


def _open_flat(path: Path) -> Slide:
    shape, mode, dpi, icc = _flat_header(path)
    dtype = np.uint16 if mode.startswith("I;16") else np.uint8
    level0 = Memoised(shape, dtype, lambda: _decode_flat(path, mode))
    axes = "YX" if len(shape) == 2 else "YXS"
    mpp, source = first_plausible([(dpi_mpp(dpi), "dpi")])
    notes = [ICC_NOTE] if icc else []
    return Slide(path, in_memory_pyramid(level0), axes, mpp, source, "pillow", "computed", notes, sources=[level0])
