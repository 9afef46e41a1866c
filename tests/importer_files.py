"""Embedding files as TRIDENT, CLAM and STAMP write them, built from those projects' own source (none of the
three installs here: TRIDENT is not on PyPI, CLAM is a script repository, STAMP pins other torch versions).

- TRIDENT: trident/IO.py ``save_h5`` (chunks (1, ...), maxshape (None, ...), dict attributes as JSON, None as
  'None') with ``coords_to_h5``'s attributes, and WSIPatcher's grid (step = round(p·d) - round(o·d) from 0).
- CLAM: utils/file_utils.py ``save_hdf5`` (chunks of 32 rows); the patching h5's ``coords`` attributes from
  WholeSlideImage.process_contour; feature h5s carry no attributes; .pt files are ``torch.save(tensor)``.
- STAMP: preprocessing/__init__.py (``coords`` in µm, ``feats``, file attributes ``unit``, ``tile_size_um``,
  ``tile_size_px``, ``extractor``…) with tiling.py's supertile arithmetic for where tiles start.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np


def save_h5(path: Path, assets: dict, attributes: dict | None = None, mode: str = "w", chunk_rows: int = 1) -> None:
    """TRIDENT's ``save_h5`` (chunks of 1 row) and CLAM's ``save_hdf5`` (``chunk_rows=32``): the same code."""
    with h5py.File(path, mode) as file:
        for key, val in assets.items():
            dset = file.create_dataset(
                key, shape=val.shape, maxshape=(None, *val.shape[1:]), chunks=(chunk_rows, *val.shape[1:]),
                dtype=val.dtype,
            )  # fmt: skip
            dset[:] = val
            for attr_key, attr_val in (attributes or {}).get(key, {}).items():
                if isinstance(attr_val, dict):  # TRIDENT only; CLAM's attributes are never dicts or None
                    attr_val = json.dumps(attr_val)
                elif attr_val is None:
                    attr_val = "None"
                dset.attrs[attr_key] = attr_val


def trident_grid(width: int, height: int, patch_size: int, src_mag: int, dst_mag: int, overlap: int) -> np.ndarray:
    """Every (x, y) of WSIPatcher's grid over a width x height level 0 (before its tissue filter)."""
    downsample = (10 / dst_mag) / (10 / src_mag)
    step = round(patch_size * downsample) - round(overlap * downsample)
    cols, rows = np.meshgrid(np.arange(width // step + 1), np.arange(height // step + 1))
    coords = np.stack([cols.ravel() * step, rows.ravel() * step], axis=1).astype(np.int64)
    return coords[(coords[:, 0] < width) & (coords[:, 1] < height)]


def write_trident(path: Path, coords, features, patch_size, src_mag, dst_mag, overlap, width, height, encoder):
    attributes = {
        "features": {"name": path.stem, "savetodir": str(path.parent), "encoder": encoder},
        "coords": {
            "patch_size": patch_size, "patch_size_level0": patch_size * src_mag // dst_mag,
            "level0_magnification": src_mag, "target_magnification": dst_mag, "overlap": overlap,
            "name": path.stem, "savetodir": str(path.parent), "level0_width": width, "level0_height": height,
        },
    }  # fmt: skip
    save_h5(path, {"features": np.asarray(features, np.float32), "coords": coords}, attributes)
    return path


def clam_contour_coords(start_xy, size_xy, step: int) -> np.ndarray:
    """process_contour's candidates: np.arange from the contour's bounding box corner, ``step`` apart."""
    x = np.arange(start_xy[0], start_xy[0] + size_xy[0], step)
    y = np.arange(start_xy[1], start_xy[1] + size_xy[1], step)
    xs, ys = np.meshgrid(x, y, indexing="ij")
    return np.array([xs.flatten(), ys.flatten()]).transpose().astype(np.int64)


def write_clam(folder: Path, name: str, coords: np.ndarray, features, patch_size: int, level_dim) -> tuple[Path, Path]:
    """(h5_files/NAME.h5, patches/NAME.h5) as CLAM's create_patches_fp.py and extract_features_fp.py leave them."""
    (folder / "patches").mkdir(parents=True, exist_ok=True)
    (folder / "h5_files").mkdir(exist_ok=True)
    attr = {"patch_size": patch_size, "patch_level": 0, "downsample": np.array([1.0, 1.0]),
            "downsampled_level_dim": np.array(level_dim), "level_dim": np.array(level_dim), "name": name,
            "save_path": str(folder / "patches")}  # fmt: skip
    patches = folder / "patches" / f"{name}.h5"
    save_h5(patches, {"coords": coords}, {"coords": attr}, mode="w", chunk_rows=32)
    features_h5 = folder / "h5_files" / f"{name}.h5"
    save_h5(features_h5, {"features": np.asarray(features, np.float32), "coords": coords}, chunk_rows=32)
    return features_h5, patches


def stamp_coords_um(width: int, height: int, mpp: float, tile_size_um: float, max_supertile_px: int = 2**10):
    """(N, 2) µm corners of STAMP's tiles over a whole slide (tiling.py; every tile starting on the slide kept)."""
    max_supertile_um = max_supertile_px * mpp
    per_supertile = max(int(max_supertile_um // tile_size_um), 1)
    tile_slide_px = int(np.ceil(tile_size_um / mpp))
    supertile_px = tile_slide_px * per_supertile
    corners = []
    for y_px in range(0, height, supertile_px):
        for x_px in range(0, width, supertile_px):
            for y in range(per_supertile):
                for x in range(per_supertile):
                    corners.append((x_px * mpp + x * tile_size_um, y_px * mpp + y * tile_size_um))
    corners = np.array(corners, dtype=np.float64)
    on_slide = (corners[:, 0] / mpp < width) & (corners[:, 1] / mpp < height)  # beyond it: blank, filtered out
    return corners[on_slide], tile_slide_px


def write_stamp(path: Path, coords_um, features, tile_size_um: float, tile_size_px: int, extractor: str) -> Path:
    with h5py.File(path, "w") as h5_fp:
        h5_fp["coords"] = np.asarray(coords_um)
        h5_fp["feats"] = np.asarray(features, np.float16)
        h5_fp.attrs["stamp_version"] = "2.4.0"
        h5_fp.attrs["extractor"] = extractor
        h5_fp.attrs["unit"] = "um"
        h5_fp.attrs["tile_size_um"] = tile_size_um
        h5_fp.attrs["tile_size_px"] = tile_size_px
        h5_fp.attrs["code_hash"] = "0123abcd"
        h5_fp.attrs["feat_type"] = "tile"
    return path
