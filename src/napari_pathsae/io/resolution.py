"""µm/px from slide metadata: Aperio MPP, OME PhysicalSize, TIFF resolution tags, PNG/JPEG dpi."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import tifffile

from .frames import is_plausible_mpp

_SVS_MPP = re.compile(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)")
_UM_PER_UNIT = {
    "pm": 1e-6,
    "nm": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "μm": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}
_UM_PER_RESUNIT = {
    tifffile.RESUNIT.INCH: 25400.0,
    tifffile.RESUNIT.CENTIMETER: 1e4,
    tifffile.RESUNIT.MILLIMETER: 1e3,
    tifffile.RESUNIT.MICROMETER: 1.0,
}


def svs_mpp(description: str) -> float | None:
    """The ``MPP = x`` field of an Aperio ImageDescription."""
    match = _SVS_MPP.search(description or "")
    return float(match.group(1)) if match else None


def ome_mpp(ome_xml: str, series_index: int = 0) -> float | None:
    """``PhysicalSizeX`` of the series' Pixels element, converted to µm."""
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    pixels = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"]
    if len(pixels) <= series_index:
        return None
    attrs = pixels[series_index].attrib
    if "PhysicalSizeX" not in attrs:
        return None
    unit = attrs.get("PhysicalSizeXUnit", "µm")
    if unit not in _UM_PER_UNIT:
        return None
    return float(attrs["PhysicalSizeX"]) * _UM_PER_UNIT[unit]


def tag_mpp(page: tifffile.TiffPage) -> float | None:
    """XResolution with ResolutionUnit inch or cm (unit 'none' says nothing about size)."""
    um_per_unit = _UM_PER_RESUNIT.get(page.resolutionunit)
    px_per_unit = page.get_resolution()[0] if um_per_unit else 0
    return um_per_unit / px_per_unit if px_per_unit else None


def dpi_mpp(dpi: tuple[float, float] | None) -> float | None:
    """PNG pHYs / JPEG JFIF density in dots per inch to µm/px."""
    return 25400.0 / float(dpi[0]) if dpi and dpi[0] else None


def tiff_mpp(tif: tifffile.TiffFile) -> tuple[float | None, str]:
    """Level-0 µm/px of the first series and where it came from; (None, 'unknown') when absent."""
    page = tif.series[0].pages[0] if tif.series else tif.pages[0]
    candidates: list[tuple[float | None, str]] = []
    if tif.is_svs:
        candidates.append((svs_mpp(tif.pages[0].description), "Aperio MPP"))
    if tif.is_ome and tif.ome_metadata:
        candidates.append((ome_mpp(tif.ome_metadata), "OME PhysicalSizeX"))
    candidates.append((tag_mpp(page), "TIFF resolution tags"))
    return first_plausible(candidates)


def first_plausible(candidates: list[tuple[float | None, str]]) -> tuple[float | None, str]:
    """The first candidate whose µm/px is plausible; metadata such as 72 dpi is ignored."""
    for mpp, source in candidates:
        if is_plausible_mpp(mpp):
            return float(mpp), source
    return None, "unknown"
