"""Open whole-slide images and plain images as lazy multiscale dask levels, through the registered backends.

One dispatcher, as napari-wsi's ``open_store``: the backend claiming the suffix (io/backends/), else the one
recognising the file's bytes. The Slide itself lives in io/slide.py.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PathsaeError, UnsupportedFileError
from .backends import backend_for, backend_named, slide_suffixes
from .slide import Slide, white_level

#: Every suffix a backend opens (the reader's and napari.yaml's list, checked by tests/test_slides.py).
SLIDE_SUFFIXES = slide_suffixes()


def open_slide(path: str | Path, mpp: float | None = None, backend: str | None = None) -> Slide:
    """Open a slide or image lazily; ``mpp`` overrides the resolution found in its metadata, ``backend`` names
    the reader (io/backends/) instead of the one its suffix or bytes choose."""
    path = Path(path)
    if not path.exists():
        raise PathsaeError(f"no such file: {path}")
    chosen = backend_named(backend) if backend else backend_for(path)
    if chosen is None and path.is_dir():
        raise PathsaeError(
            f"{path} is a folder, not a slide file (a DICOM slide's folder holds .dcm files; "
            "a Visium outs/ folder opens as a sample: the Open panel's Visium field, the CLI's --visium)"
        )
    if chosen is None:
        raise UnsupportedFileError(
            f"{path.name}: not a slide or image napari-pathsae can open (expected one of {', '.join(SLIDE_SUFFIXES)}"
            ", or a DICOM folder)"
        )
    slide = chosen.open(path)
    try:
        return slide.with_mpp(mpp)
    except BaseException:
        slide.close()
        raise


def is_slide_folder(path: str | Path) -> bool:
    """A folder that a slide backend opens (a DICOM slide's .dcm files), not a Visium folder."""
    path = Path(path)
    return path.is_dir() and backend_for(path) is not None


__all__ = ["SLIDE_SUFFIXES", "Slide", "is_slide_folder", "open_slide", "white_level"]
