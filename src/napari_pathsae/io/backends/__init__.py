"""Slide backends: one file per backend, each registering what it opens (suffixes, sniffing) and how.

In the style of napari-wsi's backends. ``open_slide`` (io/slides.py) asks this registry; napari.yaml's
reader patterns are checked against it by tests/test_slides.py. A backend's ``open`` returns a Slide whose
``_close`` releases what it holds open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..slide import Slide


@dataclass(frozen=True)
class SlideBackend:
    name: str
    suffixes: tuple[str, ...]  # lower-case, with the dot
    open: Callable[[Path], Slide]
    #: Recognises a file by its bytes when its suffix is unknown (None: by suffix only).
    sniff: Callable[[Path], bool] | None = None


_BACKENDS: dict[str, SlideBackend] = {}


def register_backend(backend: SlideBackend) -> SlideBackend:
    """Add a backend; a later one never takes a suffix an earlier one claimed."""
    taken = {s for b in _BACKENDS.values() for s in b.suffixes} & set(backend.suffixes)
    if backend.name in _BACKENDS or taken:
        raise ValueError(f"slide backend {backend.name!r} clashes with a registered one ({sorted(taken)})")
    _BACKENDS[backend.name] = backend
    return backend


def backends() -> list[SlideBackend]:
    return list(_BACKENDS.values())


def slide_suffixes() -> tuple[str, ...]:
    """Every suffix some backend opens, in registration order."""
    return tuple(s for b in _BACKENDS.values() for s in b.suffixes)


def backend_for(path: Path) -> SlideBackend | None:
    """The backend claiming the file's suffix, else the first whose sniffing recognises its bytes (a folder:
    only sniffing, as a DICOM slide is a folder of files)."""
    suffix = path.suffix.lower()
    if not path.is_dir():
        for backend in _BACKENDS.values():
            if suffix in backend.suffixes:
                return backend
    return next((b for b in _BACKENDS.values() if b.sniff is not None and _sniffs(b, path)), None)


def backend_named(name: str) -> SlideBackend:
    """The backend called ``name`` (``--backend``); refused in one line naming those there are."""
    from ...errors import PathsaeError

    if name not in _BACKENDS:
        raise PathsaeError(f"no slide backend {name!r} (choose one of {', '.join(_BACKENDS)})")
    return _BACKENDS[name]


def _sniffs(backend: SlideBackend, path: Path) -> bool:
    try:
        return bool(backend.sniff(path))
    except OSError:  # a folder, or an unreadable file: not this backend's
        return False


# the registration block: importing a backend's module registers it (order: who claims a suffix first)
from . import numpy_array, pillow, tifffile  # noqa: E402, F401, I001

# after tifffile: it stays the reader of the TIFF family, OpenSlide sniffs only what no one else claims
from . import openslide, wsidicom  # noqa: E402, F401
