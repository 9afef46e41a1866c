"""napari-pathsae: SAE features of pathology foundation models over slides and Visium spots."""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import PathsaeError

#: The rest of the public API, imported on first use: the viewer's panels then open without dask and anndata
#: (1.5 s on a fresh napari, spent on the UI thread by the menu click that imports this package).
_LAZY = {
    "WorldFrame": ".io.frames",
    "Slide": ".io.slides",
    "open_slide": ".io.slides",
    "VisiumSample": ".io.visium",
    "open_visium": ".io.visium",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["PathsaeError", "Slide", "VisiumSample", "WorldFrame", "__version__", "open_slide", "open_visium"]
