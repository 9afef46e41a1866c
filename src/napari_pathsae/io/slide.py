"""A slide as lazy multiscale dask levels with its resolution and provenance, whatever backend opened it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

import dask.array as da
import numpy as np

from ..errors import PathsaeError, reported_as
from .frames import WorldFrame, is_plausible_mpp
from .pyramid import Memoised, in_memory_pyramid
from .resolution import first_plausible

#: Embedded colour profiles are reported, not applied: the encoders saw pixels as scanners store them.
ICC_NOTE = "embedded ICC colour profile not applied (pixels are used as stored)"


@dataclass
class Slide:
    """A slide as lazy levels, finest first, with its resolution and provenance."""

    path: Path | None
    levels: list[da.Array]
    axes: str  # "YX", "YXS" (RGB(A) last) or "CYX"
    mpp: float | None  # µm/px of level 0; None when unknown
    mpp_source: str  # "Aperio MPP", "OME PhysicalSizeX", "TIFF resolution tags", "dpi", "user", "unknown"
    backend: str  # the name of the io/backends entry that opened it: "tifffile", "pillow", "array"…
    pyramid: str  # "file" (levels stored in the file) or "computed"
    notes: list[str] = field(default_factory=list)
    #: Releases what the backend holds open (a file handle); set by the backend's ``open``.
    _close: Callable[[], None] | None = field(default=None, repr=False)
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
        """A copy of this slide with a user-given µm/px (None keeps the metadata's); it shares the open file."""
        if mpp is None:
            return self
        if not is_plausible_mpp(mpp):
            raise PathsaeError(f"µm/px {mpp} is not plausible for a slide (expected 0.02 to 50)")
        return replace(self, mpp=float(mpp), mpp_source=source)

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
        if self._close is not None:
            self._close()

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
