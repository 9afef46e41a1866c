"""Offline sample data shipped inside the package."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from .reader import read_path

DATA = Path(str(files("napari_pathsae") / "data"))
SKIN_SLIDE = DATA / "cmu_small_region.svs"
VISIUM_HEART = DATA / "visium_mouse_heart"


def skin_slide():
    """CMU-1 small region: Aperio SVS, human skin H&E, 0.499 µm/px (CC0, OpenSlide test data)."""
    return read_path(SKIN_SLIDE)


def visium_mouse_heart():
    """Space Ranger 1.0 fixture: 100 spots x 100 genes over a mouse heart H&E (BSD-3, scanpy)."""
    return read_path(VISIUM_HEART)
