"""Open whole-slide images and plain images as lazy multiscale dask levels, through the registered backends.

One dispatcher, as napari-wsi's ``open_store``: the backend claiming the suffix (io/backends/), else the one
recognising the file's bytes. The Slide itself lives in io/slide.py.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PathsaeError, UnsupportedFileError
from .backends import backend_for, slide_suffixes
from .slide import Slide, white_level

#: Every suffix a backend opens (the reader's and napari.yaml's list, checked by tests/test_slides.py).
SLIDE_SUFFIXES = slide_suffixes()


def open_slide(path: str | Path, mpp: float | None = None) -> Slide:
    """Open a slide or image lazily; ``mpp`` overrides the resolution found in its metadata."""
    path = Path(path)
    if path.is_dir():
        raise PathsaeError(f"{path} is a folder, not a slide file (a Visium folder opens with open_visium)")
    if not path.is_file():
        raise PathsaeError(f"no such file: {path}")
    backend = backend_for(path)
    if backend is None:
        raise UnsupportedFileError(
            f"{path.name}: not a slide or image napari-pathsae can open (expected one of {', '.join(SLIDE_SUFFIXES)})"
        )
    slide = backend.open(path)
    try:
        return slide.with_mpp(mpp)
    except BaseException:
        slide.close()
        raise


__all__ = ["SLIDE_SUFFIXES", "Slide", "open_slide", "white_level"]
