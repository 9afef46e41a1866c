"""Plain NumPy arrays saved with ``np.save`` (.npy, (Y, X) or (Y, X, 3|4)): memory-mapped, never copied whole.

The smallest backend, kept as the example of adding one (docs/contributing.md) and used by tests to make
slides of exact pixels. No resolution is stored in the file: give ``--mpp`` for µm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import PathsaeError
from ..pyramid import Memoised, in_memory_pyramid
from ..slide import Slide
from . import SlideBackend, register_backend

NAME = "array"
SUFFIXES = (".npy",)


def open_npy(path: Path) -> Slide:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise PathsaeError(f"{path.name}: not a readable .npy array ({exc})") from None
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise PathsaeError(f"{path.name}: expected a (Y, X) or (Y, X, 3|4) image, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise PathsaeError(f"{path.name}: expected integer or float pixels, got {array.dtype}")
    level0 = Memoised(array.shape, array.dtype, lambda: array)
    axes = "YX" if array.ndim == 2 else "YXS"
    return Slide(path, in_memory_pyramid(level0), axes, None, "unknown", NAME, "computed", sources=[level0])


register_backend(SlideBackend(NAME, SUFFIXES, open_npy))
