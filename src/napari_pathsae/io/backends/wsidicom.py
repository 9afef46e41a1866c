"""DICOM whole-slide images (DICOM WSI, supplement 145) through wsidicom: a folder of one slide's .dcm files,
or one of those files (its folder is opened). Levels are read as regions, lazily; µm/px from the pixel
spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import reported_as
from ..resolution import first_plausible
from ..slide import Slide
from . import SlideBackend, register_backend
from .regions import closed_on_failure, region_levels, rgba_on_white

NAME = "wsidicom"
SUFFIXES = (".dcm",)


def open_dicom(path: Path) -> Slide:
    from wsidicom import WsiDicom

    folder = path if path.is_dir() else path.parent
    with reported_as(f"{path.name}: not a readable DICOM whole-slide image"):
        handle = WsiDicom.open(folder)
    with closed_on_failure(handle.close, f"{path.name}: cannot read the DICOM slide structure"):
        scales = [level.level for level in handle.levels]  # wsidicom names a level by its power of two

        def read(level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
            with reported_as(f"{path.name}: DICOM level {level} at x {x}, y {y} cannot be decoded"):
                region = handle.read_region((x, y), scales[level], (width, height))
            pixels = np.asarray(region)
            return rgba_on_white(pixels) if pixels.shape[-1] == 4 else np.asarray(region.convert("RGB"))

        sizes = [(level.size.width, level.size.height) for level in handle.levels]
        tile = (handle.tile_size.width, handle.tile_size.height)
        levels, sources = region_levels(read, sizes, tile)
        mpp, source = first_plausible([(handle.mpp.width if handle.mpp else None, "DICOM pixel spacing")])  # µm/px
    return Slide(path, levels, "YXS", mpp, source, NAME, "file", [], handle.close, sources)


def is_dicom(path: Path) -> bool:
    """A DICOM file (``DICM`` at byte 128), or a folder holding .dcm files."""
    if path.is_dir():
        return any(path.glob("*.dcm"))
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


register_backend(SlideBackend(NAME, SUFFIXES, open_dicom, sniff=is_dicom))
