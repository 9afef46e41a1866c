"""The zarr store of one slide and encoder: tiles, embeddings, SAE activations and provenance.

Layout (zarr v3 group)::

    attrs: format, identity (what must match to reuse the store), provenance, complete, summary
    coords            (N, 2) int64   level-0 (x, y) of each tile's top-left corner (TRIDENT's coords)
    tissue_fraction   (N,)   float32
    grid_index        (N, 2) int32   (row, col) in the tile grid
    embeddings/<name> (N, D) float32 "pooled", "layer_6"…; "patch_tokens" (N, P, D) float16
    activations/<sae> (N, F) float32
    done              (C,)   bool    one flag per chunk of ``chunk_tiles`` tiles, set after its data

A run writes a chunk's arrays before its flag, so a killed run redoes at most one chunk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from filelock import FileLock, Timeout

from .._version import __version__
from ..errors import PathsaeError
from ..io.slides import Slide
from .tiles import GRID_LAYOUT, TileGeometry, TileGrid
from .viewport import tile_lookup

FORMAT = "napari-pathsae/tiles-v1"
CHUNK_TILES = 512


_digests: dict[tuple, str] = {}


def content_sha256(path: Path) -> str:
    """sha256 of the whole file, streamed (about 1 s per GB); remembered for the process while the file's
    inode, size and modification time stay the same (an atlas checks one slide for each of its pages)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with Path(path).open("rb") as f:
            _digests[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _digests[key]


def slide_sha256(path: Path) -> str:
    """sha256 of a slide's content: its file's, or, for a slide that is a folder (DICOM) or keeps its tiles in
    one beside it (MRXS), of every file there (relative name and content)."""
    path = Path(path)
    folder = path if path.is_dir() else path.with_suffix("") if path.suffix.lower() == ".mrxs" else None
    if folder is None or not folder.is_dir():
        return content_sha256(path)
    digest = hashlib.sha256(content_sha256(path).encode() if path.is_file() else b"")
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder)}:{content_sha256(file)}\n".encode())
    return digest.hexdigest()


_locks: dict[Path, FileLock] = {}
_locks_guard = threading.Lock()


@contextmanager
def writer_lock(path: str | Path, wait_s: float = 5.0) -> Iterator[None]:
    """One writer per store across processes: a lock file beside the store (``.NAME.lock``), held while
    computing. Another run holding it longer than ``wait_s`` is refused in one line, never computed twice.
    Re-entrant within one process (the viewer's batches and a CLI run in one interpreter share it)."""
    path = Path(path).absolute()
    with _locks_guard:
        lock = _locks.setdefault(path, FileLock(str(path.with_name(f".{path.name}.lock")), thread_local=False))
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise PathsaeError(
            f"{path.name} is being written by another pathsae run (lock {lock.lock_file}); wait for it to finish"
        ) from None
    except OSError as exc:
        raise PathsaeError(f"cannot lock {path.name} for writing: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()


def _create(
    path: Path, coords, tissue_fraction, grid_index, widths: dict[str, tuple[int, ...]], rows: int, attrs: dict
) -> None:
    """A new store at ``path``: its arrays (embeddings NaN-filled), then its attributes."""
    root = zarr.open_group(str(path), mode="w-")
    n = len(coords)
    root.create_array("coords", data=np.asarray(coords, np.int64), chunks=(rows, 2))
    root.create_array("tissue_fraction", data=np.asarray(tissue_fraction, np.float32), chunks=(rows,))
    root.create_array("grid_index", data=np.asarray(grid_index, np.int32), chunks=(rows, 2))
    group = root.create_group("embeddings")
    for name, shape in widths.items():
        dtype = np.float16 if name == "patch_tokens" else np.float32
        group.create_array(name, shape=(n, *shape), chunks=(rows, *shape), dtype=dtype, fill_value=np.nan)
    root.create_group("activations")
    root.create_array("done", shape=(-(-n // rows),), chunks=(4096,), dtype=bool, fill_value=False)
    root.attrs.update(attrs)


#: The weights file of an SAE folder (SAELens's layout; see sae/formats.py).
SAE_WEIGHTS_FILE = "sae_weights.safetensors"


def _check_sae_unchanged(store: Path, name: str, sae: dict) -> None:
    """Cached activations are refused once the SAE folder they came from holds other weights."""
    folder = sae.get("path")
    weights = Path(folder) / SAE_WEIGHTS_FILE if folder else None
    if weights is None or not weights.is_file() or not sae.get("weights_sha256"):
        return  # the SAE folder is gone (the activations stand on their own) or was never recorded
    if content_sha256(weights) != sae["weights_sha256"]:
        raise PathsaeError(
            f"{store.name}: activations {name!r} were computed by an SAE since replaced at {folder}; "
            f"rerun `pathsae encode {store} --sae {folder}`"
        )


def refuse_a_file(path: str | Path) -> Path:
    """``path`` as a Path; PathsaeError when it is a file (a store is a folder), before anything is loaded."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PathsaeError(f"{path} is a file, not a store (a store is a folder)")
    return path


@dataclass
class TileStore:
    """Handle on a store; create with ``TileStore.create_or_resume`` or open with ``TileStore.open``."""

    path: Path
    root: zarr.Group

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> TileStore:
        path = refuse_a_file(path)
        if not path.is_dir():
            raise PathsaeError(f"no store at {path}")
        try:
            root = zarr.open_group(str(path), mode=mode)
        except Exception as exc:
            raise PathsaeError(f"{path}: not a readable store ({exc})") from None
        if root.attrs.get("format") != FORMAT:
            raise PathsaeError(f"{path}: not a napari-pathsae store")
        return cls(path, root)

    @classmethod
    def create(
        cls,
        path: str | Path,
        slide: Slide,
        grid: TileGrid,
        encoder: dict,
        widths: dict[str, tuple[int, ...]],
        chunk_tiles: int = CHUNK_TILES,
        provenance: dict | None = None,
        identity: dict | None = None,
    ) -> TileStore:
        """The store of ``slide``'s tile ``grid`` embedded by ``encoder`` (its provenance record): created, or
        resumed when slide, encoder and geometry match. Its identity and provenance are assembled here only, so
        every maker of stores (embedding, the viewer, an importer) writes the same schema; ``provenance`` adds
        keys (the Visium folder, library versions), ``identity`` what else must match to resume (an imported
        file's sha256)."""
        if slide.path is None:
            raise PathsaeError("a store is made from a slide file (its content hash is the store's identity)")
        geometry = grid.geometry.to_dict()
        identity = {
            "slide_sha256": slide_sha256(Path(slide.path)),
            "encoder_spec": encoder["spec"],
            "encoder_weights_sha256": encoder["weights_sha256"],
            "geometry": geometry,
            "grid": GRID_LAYOUT,
            "slide_mpp": slide.mpp,
            "outputs": sorted(widths),
            **(identity or {}),
        }
        record = {
            "slide_path": str(Path(slide.path).resolve()),
            "slide_mpp": slide.mpp,
            "slide_mpp_source": slide.mpp_source,
            "slide_backend": slide.backend,
            "slide_shape_yx": list(slide.shape_yx),
            "tile_side_level0_px": grid.side0,
            "grid_step_level0_px": grid.step0,
            "grid_origin_level0_px": list(grid.origin0),
            "read_level": grid.read_level,
            "encoder": encoder,
            "geometry": geometry,
            "grid": GRID_LAYOUT,
            **(provenance or {}),
            "package_version": __version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        return cls.create_or_resume(
            path, identity, record, grid.coords, grid.tissue_fraction, grid.grid_index, widths, chunk_tiles
        )

    @classmethod
    def create_or_resume(
        cls,
        path: str | Path,
        identity: dict,
        provenance: dict,
        coords: np.ndarray,
        tissue_fraction: np.ndarray,
        grid_index: np.ndarray,
        widths: dict[str, tuple[int, ...]],
        chunk_tiles: int = CHUNK_TILES,
    ) -> TileStore:
        """A new store from its arrays, or the existing one with the same identity (``create`` assembles both)."""
        path = Path(path)
        identity = json.loads(json.dumps(identity))  # as it will read back
        if path.exists():
            store = cls.open(path, mode="r+")
            store.refuse_other_identity(identity, "choose another output", every_key=True)
            return store
        # built beside its final path and renamed into place: a failed creation leaves nothing
        building = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.creating")
        try:
            rows = max(1, int(chunk_tiles))
            attrs = {"format": FORMAT, "identity": identity, "provenance": provenance, "complete": False,
                     "version": __version__, "chunk_tiles": rows}  # fmt: skip
            _create(building, coords, tissue_fraction, grid_index, widths, rows, attrs)
            building.rename(path)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return cls.open(path, mode="r+")

    # --- reading ------------------------------------------------------------------------------
    @property
    def identity(self) -> dict:
        return dict(self.root.attrs["identity"])

    def refuse_other_identity(self, identity: dict, remedy: str, every_key: bool = False) -> None:
        """Raise, naming what differs, unless this store records ``identity``'s keys (``every_key``: and no others)
        with the same values (compared as JSON reads them back)."""
        wanted, mine = json.loads(json.dumps(identity)), self.identity
        keys = set(wanted) | set(mine) if every_key else set(wanted)
        changed = sorted(k for k in keys if mine.get(k) != wanted.get(k))
        if changed:
            raise PathsaeError(f"{self.path} was made with a different {', '.join(changed)}; {remedy}")

    @property
    def provenance(self) -> dict:
        return dict(self.root.attrs["provenance"])

    @property
    def complete(self) -> bool:
        return bool(self.root.attrs.get("complete", False))

    @property
    def summary(self) -> dict:
        """The record of the run that completed the store (empty while unfinished)."""
        return dict(self.root.attrs.get("summary", {}))

    @property
    def n_tiles(self) -> int:
        return int(self.root["coords"].shape[0])

    @property
    def coords(self) -> np.ndarray:
        return self.root["coords"][:]

    @property
    def tile_centres(self) -> np.ndarray:
        """(N, 2) level-0 (x, y) of each tile's centre."""
        return self.coords + self.tile_side0 / 2

    @property
    def grid_index(self) -> np.ndarray:
        """(N, 2) (row, col) of each tile in the tile grid."""
        return np.asarray(self.root["grid_index"][:])

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Rows and columns of the grid up to the last tile kept (the grid's origin is the slide's corner)."""
        rows, cols = self.grid_index.max(axis=0) + 1
        return int(rows), int(cols)

    def tile_at(self, xy: np.ndarray) -> np.ndarray:
        """Index of the tile whose grid cell holds each level-0 point (``xy`` (..., 2)): the tile containing it,
        the one with the nearest centre where tiles overlap (or, off every cell, a tile containing it); -1 where
        no tile does."""
        index = self.grid_index
        lookup = tile_lookup(index, tuple(index.max(axis=0) + 1))
        xy = np.nan_to_num(np.asarray(xy, dtype=float), nan=-np.inf)
        found = self._cell_tile(lookup, xy)
        margin = (self.tile_side0 - self.grid_step0) / 2  # overlapping tiles reach this far past their cells
        if margin > 0:
            corners = self.coords.astype(float)
            for dx in (-margin, 0.0, margin):
                for dy in (-margin, 0.0, margin):
                    candidate = self._cell_tile(lookup, xy + np.array([dx, dy]))
                    corner = corners[np.maximum(candidate, 0)]
                    within = ((xy >= corner) & (xy < corner + self.tile_side0)).all(axis=-1)
                    found = np.where((found < 0) & (candidate >= 0) & within, candidate, found)
        return found

    def _cell_tile(self, lookup: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """The tile of each point's grid cell, -1 where the cell has none."""
        xy = xy - np.asarray(self.grid_origin0)
        cell = np.floor(np.clip(xy / self.grid_step0, -1, np.iinfo(np.int32).max)).astype(np.int64)
        row, col = cell[..., 1], cell[..., 0]
        inside = (row >= 0) & (col >= 0) & (row < lookup.shape[0]) & (col < lookup.shape[1])
        return np.where(inside, lookup[np.clip(row, 0, lookup.shape[0] - 1), np.clip(col, 0, lookup.shape[1] - 1)], -1)

    def tile_grid(self) -> TileGrid:
        """The store's tiles as a TileGrid (what reading their pixels needs), without detecting tissue again."""
        g, record = self.provenance["geometry"], self.provenance
        geometry = TileGeometry(int(g["tile_px"]), float(g["mpp"]), float(g["min_tissue"]))
        index = self.grid_index
        shape = (int(index[:, 0].max()) + 1, int(index[:, 1].max()) + 1)
        return TileGrid(
            self.coords, self.tile_side0, self.tissue_fraction, geometry, self.slide_mpp, int(record["read_level"]),
            shape, index, self.grid_step0, self.grid_origin0, imported=bool(record.get("imported_from")),
        )  # fmt: skip

    @property
    def tissue_fraction(self) -> np.ndarray:
        return self.root["tissue_fraction"][:]

    @property
    def tile_side0(self) -> float:
        return float(self.provenance["tile_side_level0_px"])

    @property
    def grid_step0(self) -> float:
        """Level-0 px between neighbouring tiles (the tile side unless tiles overlap)."""
        return float(self.provenance.get("grid_step_level0_px", self.tile_side0))

    @property
    def grid_origin0(self) -> tuple[float, float]:
        """Level-0 (x, y) of grid cell (0, 0)'s top-left corner."""
        x, y = self.provenance.get("grid_origin_level0_px", (0.0, 0.0))
        return float(x), float(y)

    @property
    def slide_mpp(self) -> float:
        return float(self.provenance["slide_mpp"])

    def embedding_names(self) -> list[str]:
        return sorted(self.root["embeddings"].array_keys())

    def embeddings(self, name: str = "pooled") -> zarr.Array:
        if name not in self.embedding_names():
            raise PathsaeError(f"{self.path}: no embeddings {name!r} (has {', '.join(self.embedding_names())})")
        return self.root["embeddings"][name]

    def activation_names(self) -> list[str]:
        return sorted(self.root["activations"].array_keys())

    def activations(self, name: str | None = None) -> zarr.Array:
        names = self.activation_names()
        if not names:
            raise PathsaeError(f"{self.path}: no SAE activations yet (run `pathsae encode STORE --sae DIR`)")
        if name is None:
            if len(names) > 1:
                raise PathsaeError(f"{self.path}: several SAEs ({', '.join(names)}); name one")
            name = names[0]
        if name not in names:
            raise PathsaeError(f"{self.path}: no activations {name!r} (has {', '.join(names)})")
        array = self.root["activations"][name]
        _check_sae_unchanged(self.path, name, dict(array.attrs.get("sae", {})))
        return array

    def values(self, sae: str | None = None) -> tuple[zarr.Array, str]:
        """(array over every tile, kind): the SAE's activations, else the pooled embeddings; NaN rows not computed."""
        if self.activation_names():
            return self.activations(sae), "activation"
        return self.embeddings("pooled"), "embedding"

    # --- writing ------------------------------------------------------------------------------
    @property
    def chunk_tiles(self) -> int:
        return int(self.root.attrs.get("chunk_tiles", CHUNK_TILES))

    def chunk_slices(self) -> list[slice]:
        n, rows = self.n_tiles, self.chunk_tiles
        return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]

    def pending_chunks(self) -> list[int]:
        done = self.root["done"][:]
        return [i for i in range(len(self.chunk_slices())) if not done[i]]

    def write_chunk(self, index: int, outputs: dict[str, np.ndarray]) -> None:
        """Write one chunk's embeddings, then flag it done."""
        rows = self.chunk_slices()[index]
        for name, values in outputs.items():
            self.root["embeddings"][name][rows] = values
        self.root["done"][index] = True

    def mark_complete(self, summary: dict) -> None:
        self.root.attrs.update(
            {"complete": True, "summary": summary, "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        )

    def embedded_tiles(self, indices: np.ndarray | None = None) -> np.ndarray:
        """(N,) bool, or one per index: tiles whose embeddings are written (NaN marks a tile not computed yet)."""
        pooled = self.root["embeddings"]["pooled"]
        return ~np.isnan(pooled[:, 0] if indices is None else pooled.oindex[indices, 0])

    def write_tiles(self, indices: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """Write the embeddings of scattered tiles (sorted ``indices``), then flag every chunk now complete."""
        for name, values in outputs.items():
            self.root["embeddings"][name].oindex[indices] = values
        embedded = self.embedded_tiles()
        for chunk in {int(i) // self.chunk_tiles for i in indices}:
            if embedded[self.chunk_slices()[chunk]].all():
                self.root["done"][chunk] = True

    def activation_array(self, name: str, width: int, sae_provenance: dict) -> zarr.Array:
        """The NaN-filled activations of one SAE, filled as tiles are computed (replaced if another SAE's)."""
        group = self.root["activations"]
        if name in group:
            array = group[name]
            same = array.attrs.get("sae", {}).get("weights_sha256") == sae_provenance.get("weights_sha256")
            if same and array.shape == (self.n_tiles, width):
                array.attrs.update({"sae": sae_provenance})  # the same weights, perhaps from another folder now
                return array
            del group[name]
        array = group.create_array(
            name, shape=(self.n_tiles, width), chunks=(self.chunk_tiles, width), dtype=np.float32, fill_value=np.nan
        )
        array.attrs.update({"sae": sae_provenance})
        return array
