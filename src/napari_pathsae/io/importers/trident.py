"""TRIDENT (Mahmood lab) and CLAM patch features: h5 ``features`` (N, D) with ``coords`` (N, 2), level-0 px.

TRIDENT records its patching on ``coords``' attributes (``patch_size`` at the target magnification,
``patch_size_level0``, ``level0_magnification``, ``target_magnification``, ``overlap`` in target px,
``level0_width``/``level0_height``) and the encoder on ``features`` (``encoder``); its tiles sit on one grid
from the slide's corner with a step of ``round(patch_size·d) - round(overlap·d)`` level-0 px, d the
magnification ratio (TRIDENT's WSIPatcher). CLAM's feature h5 has no attributes: the patch size comes from
the patching h5 (``patches/NAME.h5``, ``coords`` attributes ``patch_size``, ``patch_level``, ``downsample``,
given with ``--coords``) or, failing that, from the coordinates' own stride. Either tool's ``.pt`` features
(a tensor (N, D)) take their coordinates from the patching h5 given with ``--coords``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import PathsaeError, reported_as
from . import EmbeddingImporter, ImportedTiles, register_importer
from .h5 import h5_keys, inferred_step, read_coords, read_matrix

#: A ``coords`` attribute napari-pathsae's TRIDENT-style export adds: the exact level-0 tile side.
EXACT_SIDE = "pathsae_patch_size_level0_exact"


def is_trident(path: Path) -> bool:
    keys, attrs = h5_keys(path)
    return {"features", "coords"} <= keys and "patch_size_level0" in attrs


def is_clam(path: Path) -> bool:
    if path.suffix.lower() == ".pt":
        return True
    keys, attrs = h5_keys(path)
    return {"features", "coords"} <= keys and "patch_size_level0" not in attrs


def read_trident(path: Path, coords_path: Path | None, mpp: float, encoder: str | None = None) -> ImportedTiles:
    return _read(path, coords_path, "trident")


def read_clam(path: Path, coords_path: Path | None, mpp: float, encoder: str | None = None) -> ImportedTiles:
    return _read(path, coords_path, "clam")


def _read(path: Path, coords_path: Path | None, name: str) -> ImportedTiles:
    features = _features(path)
    encoder = _encoder_name(path)
    notes: list[str] = []
    if coords_path is not None:
        coords, attrs = read_coords(coords_path)
        if path.suffix.lower() != ".pt" and "coords" in h5_keys(path)[0]:
            own, _ = read_coords(path)
            if own.shape != coords.shape or not np.array_equal(own, coords):
                raise PathsaeError(f"{path.name} and {coords_path.name} hold different tile coordinates")
    elif path.suffix.lower() == ".pt":
        raise PathsaeError(f"{path.name} holds features only: give the patching h5 with its coordinates (--coords)")
    else:
        coords, attrs = read_coords(path)
    if len(coords) != len(features):
        raise PathsaeError(f"{len(features)} feature rows but {len(coords)} tile coordinates: not the same tiles")
    side0, step0, tile_px, shape = _patching(attrs, coords, notes)
    return ImportedTiles(coords, side0, step0, features, encoder, tile_px, name, attrs, notes, shape)


def _features(path: Path) -> np.ndarray:
    if path.suffix.lower() != ".pt":
        return read_matrix(path, "features")
    import torch

    with reported_as(f"{path.name}: not a readable PyTorch tensor file"):
        values = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(values, torch.Tensor) or values.ndim != 2:
        raise PathsaeError(f"{path.name}: expected one (tiles, width) tensor")
    return values.float().numpy()


def _encoder_name(path: Path) -> str:
    if path.suffix.lower() == ".pt":
        return "unknown"
    from .h5 import open_h5

    with open_h5(path) as f:
        attrs = f["features"].attrs
        name, values, sae = attrs.get("encoder"), attrs.get("values"), attrs.get("sae")
    name = name.decode() if isinstance(name, bytes) else name
    name = str(name) if name and name != "None" else "unknown"
    if values == "activation" and sae:  # napari-pathsae's export of SAE activations, not encoder features
        return f"{name} + SAE {sae}"
    return name


def _patching(attrs: dict, coords: np.ndarray, notes: list[str]) -> tuple[float, float | None, int | None, tuple]:
    """(side0, step0, tile px, slide (width, height) or None) from TRIDENT's or CLAM's coords attributes."""
    if "patch_size_level0" in attrs:  # TRIDENT
        ratio = float(attrs["level0_magnification"]) / float(attrs["target_magnification"])
        patch = int(attrs["patch_size"])
        overlap = float(attrs.get("overlap", 0) or 0) * ratio
        if EXACT_SIDE in attrs:  # written by napari-pathsae: its tiles are a fractional number of pixels
            side0 = float(attrs[EXACT_SIDE])
            step0 = side0 - overlap
        else:  # TRIDENT reads whole pixels (WSIPatcher: round(patch_size·d) - round(overlap·d))
            side0 = float(round(patch * ratio))
            step0 = side0 - round(overlap)
        shape = (int(attrs["level0_width"]), int(attrs["level0_height"])) if "level0_width" in attrs else None
        return side0, float(step0), patch, shape
    if "patch_size" in attrs and "downsample" in attrs:  # CLAM's patching h5
        downsample = attrs["downsample"]
        factor = int(downsample[0] if isinstance(downsample, list | tuple) else downsample)
        side0 = float(int(attrs["patch_size"]) * factor)
        step = inferred_step(coords)
        if step is not None and step != side0:
            notes.append(f"tiles are {side0:g} px apart by the patching record but {step:g} px by their coordinates")
        level_dim = attrs.get("level_dim") if int(attrs.get("patch_level", 0)) == 0 else None
        return side0, step or side0, int(attrs["patch_size"]), tuple(level_dim) if level_dim else None
    step = inferred_step(coords)
    if step is None:
        raise PathsaeError("no tile size recorded and no two tiles share a row: give the patching h5 (--coords)")
    notes.append(f"tile side {step:g} level-0 px inferred from the coordinates' stride (give --coords for CLAM's own)")
    return step, step, None, None


register_importer(
    EmbeddingImporter("trident", "TRIDENT h5 (features + coords with patch attributes)", is_trident, read_trident)
)
register_importer(
    EmbeddingImporter("clam", "CLAM h5_files/*.h5 or pt_files/*.pt (with --coords patches/*.h5)", is_clam, read_clam)
)
