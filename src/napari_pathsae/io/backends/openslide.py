"""Slides through OpenSlide (openslide-python with openslide-bin's library): the vendor formats tifffile does
not read (3DHistech MRXS, Hamamatsu VMS/VMU, Philips/Sakura SVSLIDE) by suffix, and any file OpenSlide reads
with ``--backend openslide`` (SVS, NDPI, SCN, BIF, DICOM…). Levels are read as regions, lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import reported_as
from ..resolution import first_plausible
from ..slide import ICC_NOTE, Slide
from . import SlideBackend, register_backend
from .regions import closed_on_failure, region_levels, rgba_on_white

NAME = "openslide"
SUFFIXES = (".mrxs", ".vms", ".vmu", ".svslide")


def open_openslide(path: Path) -> Slide:
    import openslide

    if path.is_dir():  # a DICOM slide's folder: OpenSlide opens any of its files and finds the others
        path = next(iter(sorted(path.glob("*.dcm"))), path)
    with reported_as(f"{path.name}: OpenSlide cannot read it"):
        handle = openslide.OpenSlide(str(path))
    with closed_on_failure(handle.close, f"{path.name}: cannot read the slide structure through OpenSlide"):
        downsamples = handle.level_downsamples

        def read(level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
            origin = (round(x * downsamples[level]), round(y * downsamples[level]))
            with reported_as(f"{path.name}: OpenSlide cannot read level {level} at x {x}, y {y}"):
                return rgba_on_white(np.asarray(handle.read_region(origin, level, (width, height))))

        properties = handle.properties
        tile = (int(properties.get("openslide.level[0].tile-width", 512)),
                int(properties.get("openslide.level[0].tile-height", 512)))  # fmt: skip
        levels, sources = region_levels(read, list(handle.level_dimensions), tile)
        mpp_x = properties.get(openslide.PROPERTY_NAME_MPP_X)
        mpp, source = first_plausible([(float(mpp_x) if mpp_x else None, "OpenSlide mpp-x")])
        notes = [ICC_NOTE] if handle.color_profile is not None else []
    return Slide(path, levels, "YXS", mpp, source, NAME, "file", notes, handle.close, sources)


def is_openslide_slide(path: Path) -> bool:
    """Whether OpenSlide recognises the file (a vendor format without a suffix we know)."""
    try:
        import openslide

        return path.is_file() and openslide.OpenSlide.detect_format(str(path)) is not None
    except Exception:
        return False


register_backend(SlideBackend(NAME, SUFFIXES, open_openslide, sniff=is_openslide_slide))
