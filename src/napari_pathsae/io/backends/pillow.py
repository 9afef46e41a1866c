"""Plain images (JPEG, PNG) through Pillow: decoded once, on first access, with a computed pyramid."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import PathsaeError
from ..pyramid import Memoised, in_memory_pyramid
from ..resolution import dpi_mpp, first_plausible
from ..slide import ICC_NOTE, Slide
from . import SlideBackend, register_backend

NAME = "pillow"
SUFFIXES = (".jpg", ".jpeg", ".png")
#: Plain images larger than this many pixels are refused (PIL's bomb check is lifted below it).
MAX_FLAT_PIXELS = 1 << 31


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


def open_flat(path: Path) -> Slide:
    shape, mode, dpi, icc = _flat_header(path)
    dtype = np.uint16 if mode.startswith("I;16") else np.uint8
    level0 = Memoised(shape, dtype, lambda: _decode_flat(path, mode))
    axes = "YX" if len(shape) == 2 else "YXS"
    mpp, source = first_plausible([(dpi_mpp(dpi), "dpi")])
    notes = [ICC_NOTE] if icc else []
    return Slide(path, in_memory_pyramid(level0), axes, mpp, source, NAME, "computed", notes, sources=[level0])


register_backend(SlideBackend(NAME, SUFFIXES, open_flat))
