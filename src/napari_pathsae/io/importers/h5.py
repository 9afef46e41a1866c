"""Reading the HDF5 files of embedding tools: opening with one-line errors, features, and the tile stride."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import PathsaeError, reported_as

H5_SUFFIXES = (".h5", ".hdf5")


@contextmanager
def open_h5(path: Path) -> Iterator:
    """An HDF5 file opened for reading; anything else is refused in one line."""
    import h5py

    with reported_as(f"{path.name}: not a readable HDF5 file"):
        handle = h5py.File(path, "r")
    try:
        yield handle
    finally:
        handle.close()


def h5_keys(path: Path) -> tuple[set[str], dict]:
    """(dataset names at the top, attributes of ``coords``) of an HDF5 file; empty when it is not one."""
    if path.suffix.lower() not in H5_SUFFIXES or not path.is_file():
        return set(), {}
    try:
        with open_h5(path) as f:
            return set(f.keys()), dict(f["coords"].attrs) if "coords" in f else {}
    except PathsaeError:
        return set(), {}


def read_matrix(path: Path, name: str) -> np.ndarray:
    """(N, D) float32 of dataset ``name`` (a leading axis of 1 is dropped, as some tools write bags)."""
    with open_h5(path) as f:
        if name not in f:
            raise PathsaeError(f"{path.name}: no {name!r} dataset (has {', '.join(sorted(f.keys()))})")
        with reported_as(f"{path.name}: cannot read {name!r}"):
            values = np.asarray(f[name][()])
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise PathsaeError(f"{path.name}: {name!r} has shape {values.shape}, expected (tiles, width)")
    return values.astype(np.float32, copy=False)


def read_coords(path: Path, name: str = "coords") -> tuple[np.ndarray, dict]:
    """(N, 2) float64 (x, y) coordinates and the dataset's attributes (bytes decoded)."""
    with open_h5(path) as f:
        if name not in f:
            raise PathsaeError(f"{path.name}: no {name!r} dataset (has {', '.join(sorted(f.keys()))})")
        with reported_as(f"{path.name}: cannot read {name!r}"):
            coords = np.asarray(f[name][()], dtype=np.float64)
            attrs = {k: _plain(v) for k, v in f[name].attrs.items()}
    if coords.ndim == 3 and coords.shape[0] == 1:
        coords = coords[0]
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise PathsaeError(f"{path.name}: {name!r} has shape {coords.shape}, expected (tiles, 2)")
    if not np.isfinite(coords).all():
        raise PathsaeError(f"{path.name}: {name!r} holds NaN or infinite coordinates")
    return coords, attrs


def file_attrs(path: Path) -> dict:
    """The file's top-level attributes (bytes decoded, arrays as lists)."""
    with open_h5(path) as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def _plain(value):
    """An HDF5 attribute as a JSON-ready value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def inferred_step(coords: np.ndarray) -> float | None:
    """The most common gap between horizontally neighbouring tiles (same y), None when no two tiles share a row."""
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    x, y = coords[order, 0], coords[order, 1]
    gaps = np.diff(x)[np.diff(y) == 0]
    gaps = np.round(gaps[gaps > 0], 3)
    if not len(gaps):
        return None
    values, counts = np.unique(gaps, return_counts=True)
    return float(values[np.argmax(counts)])
