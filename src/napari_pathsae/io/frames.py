"""One world frame per sample: every conversion between pixel grids goes through here.

World coordinates are (row, col) in µm when the full-resolution µm/px is known, and in
full-resolution pixels otherwise. A pixel grid is described by the size of one of its pixels
in full-resolution pixels (1 for the slide itself, 1/scalef for a Space Ranger hires PNG).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: µm/px outside this range is treated as missing metadata (72/96 dpi defaults and the like).
PLAUSIBLE_MPP = (0.02, 50.0)


def is_plausible_mpp(mpp: float | None) -> bool:
    """True when ``mpp`` is a finite µm/px a microscope or Visium image could have."""
    return mpp is not None and bool(np.isfinite(mpp)) and PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]


@dataclass(frozen=True)
class WorldFrame:
    """Maps full-resolution pixels of one sample to its world frame."""

    mpp: float | None  # µm per full-resolution pixel; None: world units are pixels

    @property
    def units(self) -> str:
        return "µm" if self.mpp else "px"

    @property
    def world_per_fullres_px(self) -> float:
        return self.mpp or 1.0

    def grid_scale(self, fullres_px_per_grid_px: float = 1.0) -> tuple[float, float]:
        """napari ``scale`` for a grid whose pixel spans ``fullres_px_per_grid_px`` full-res px."""
        s = self.world_per_fullres_px * fullres_px_per_grid_px
        return (s, s)

    def fullres_rowcol_to_world(self, rowcol: np.ndarray) -> np.ndarray:
        """(N, 2) full-resolution (row, col) pixels to world (row, col)."""
        return np.asarray(rowcol, dtype=float) * self.world_per_fullres_px

    def fullres_length_to_world(self, length_px: float) -> float:
        return float(length_px) * self.world_per_fullres_px


def xy_to_rowcol(xy: np.ndarray) -> np.ndarray:
    """AnnData's ``obsm['spatial']`` (x, y) = (col, row) to napari's (row, col)."""
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"expected an (N, 2) array of (x, y) coordinates, got shape {xy.shape}")
    return xy[:, ::-1].copy()
