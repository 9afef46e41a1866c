"""Embed and SAE-encode chosen tiles on demand, caching both in the slide's store (viewport inference).

The store is the one `pathsae embed` makes for the same slide, encoder and geometry, so tiles
computed in the viewer are never computed again by the CLI and the reverse. A tile is computed
when its embeddings are written; an SAE's activations are filled in as tiles are encoded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from ..data.identity import check_sae_fits_store
from ..data.store import TileStore, slide_sha256, writer_lock
from ..data.tiles import read_tiles
from ..errors import PathsaeError
from ..io.slides import Slide, open_slide
from ..models.encoders import Encoder
from ..models.sae.base import SAE
from .embed import EmbedOptions, embed_batches, open_tiles, prepare_store
from .worker_process import TileWorkerProcess


class TileComputer:
    """One slide, encoder and (optional) SAE: ``compute(indices)`` fills the store and returns activations."""

    def __init__(
        self,
        slide_path: str | Path,
        store_path: str | Path,
        encoder: Encoder | None,
        options: EmbedOptions | None = None,
        remote: TileWorkerProcess | None = None,
    ):
        self.options = options = options or EmbedOptions()
        self.remote = remote
        if remote is None and encoder is None:  # features imported from another tool: nothing to embed here
            self.encoder = None
            self.store = TileStore.open(store_path, mode="r+")
            self.slide = _store_slide(self.store, slide_path)
            self.grid = self.store.tile_grid()
        elif remote is None:
            self.encoder = encoder
            self.store, self.slide, self.grid = prepare_store(slide_path, store_path, encoder, options)
        else:  # the worker has created or resumed the store (and checked its identity)
            self.encoder = remote.encoder
            self.slide, self.grid = open_tiles(slide_path, options)
            self.store = TileStore.open(store_path, mode="r+")
        self.embedded = self.store.embedded_tiles()
        if remote is None:
            self._mark_complete_when_embedded()
        self.sae: SAE | None = None
        self.sae_name: str | None = None
        self.activations: np.ndarray | None = None  # (N, F) float32, NaN rows not computed
        self._sae_array = None
        self._lock = threading.Lock()  # one batch at a time touches the store

    @property
    def n_tiles(self) -> int:
        return self.store.n_tiles

    def set_sae(self, sae: SAE, name: str, provenance: dict) -> None:
        """Use this SAE from now on (refused on a store of another encoder or layer); its activations
        already in the store are loaded."""
        layer = check_sae_fits_store(provenance, self.store, sae.cfg.d_in)
        if self.remote is not None:
            self.remote.set_sae(provenance["path"])  # the worker first: it creates the activation array
        self._sae_path = provenance["path"]
        with self._lock:
            self.sae, self.sae_name, self._layer = sae.eval(), name, layer
            self._sae_array = self.store.activation_array(name, sae.cfg.d_sae, provenance)
            self.activations = np.asarray(self._sae_array[:], dtype=np.float32)

    def activated(self) -> np.ndarray:
        """(N,) bool: tiles with activations of the current SAE."""
        if self.activations is None:
            return np.zeros(self.n_tiles, bool)
        return ~np.isnan(self.activations[:, 0])

    def missing(self, indices: np.ndarray) -> np.ndarray:
        """The ``indices`` (order kept) still without embeddings, or without activations when an SAE is set."""
        indices = np.asarray(indices, dtype=np.int64)
        done = self.embedded[indices]
        if self.sae is not None:
            done &= self.activated()[indices]
        return indices[~done]

    def compute(self, indices: np.ndarray) -> np.ndarray:
        """Embed the tiles not yet embedded, encode them all with the SAE; returns (n, F) activations."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if self.remote is not None:
            return self._compute_remotely(indices)
        with self._lock:
            new = indices[~self.embedded[indices]]
            if len(new) and self.encoder is None:
                raise PathsaeError(
                    f"{len(new)} tiles of {self.store.path.name} have no features (an import stopped midway?): "
                    "run `pathsae import` again to finish it"
                )
            if len(new):
                with writer_lock(self.store.path):  # a CLI run on this store may have embedded them meanwhile
                    written = self.store.embedded_tiles(new)
                    self.embedded[new[written]] = True
                    new = new[~written]
                    if len(new):
                        outputs = embed_batches(self.encoder, read_tiles(self.slide, self.grid, new), self.options)
                        self.store.write_tiles(new, outputs)
                        self.embedded[new] = True
                    self._mark_complete_when_embedded()
            if self.sae is None:
                return np.empty((len(indices), 0), np.float32)
            x = np.asarray(self.store.embeddings(self._layer).oindex[indices], dtype=np.float32)
            with torch.no_grad():
                values = self.sae.encode(torch.nan_to_num(torch.from_numpy(x))).numpy()
            self._sae_array.oindex[indices] = values
            self.activations[indices] = values
        return values

    def _compute_remotely(self, indices: np.ndarray) -> np.ndarray:
        """The worker writes the tiles to the store and answers with their activations (nothing is read back)."""
        with self._lock:
            values = self.remote.compute(indices)
            self.embedded[indices] = True  # the worker raises rather than answer for tiles it did not write
            if self.sae is None:
                return np.empty((len(indices), 0), np.float32)
            self.activations[indices] = values
        return values

    def restart_remote(self) -> None:
        """A new worker process in place of a stopped one, on the same store and SAE."""
        with self._lock:
            self.remote.stop()
            self.remote = TileWorkerProcess(self.remote.spec)
            if self.sae is not None:
                self.remote.set_sae(self._sae_path)

    def _mark_complete_when_embedded(self) -> None:
        """A store whose every tile is embedded is complete, however it got there (viewer, CLI, with or
        without an SAE): training and `pathsae encode` accept it."""
        if self.embedded.all() and not self.store.complete:
            self.store.mark_complete({"computed_by": "viewer", "tiles": self.n_tiles})

    def patch_activations(self, indices: np.ndarray, feature: int) -> np.ndarray:
        """(n, g, g) activation of one feature on each tile's patch tokens (tiles must be embedded)."""
        if "patch_tokens" not in self.store.embedding_names():
            raise PathsaeError("this store has no patch tokens: reload the model with 'store patch tokens' on")
        if self.sae is None:
            raise PathsaeError("load an SAE first")
        indices = np.asarray(indices, dtype=np.int64)
        tokens = self.store.embeddings("patch_tokens")
        n, p, d = len(indices), tokens.shape[1], tokens.shape[2]
        side = round(p**0.5)
        if side * side != p:
            raise PathsaeError(f"{p} patch tokens do not form a square grid")
        x = np.asarray(tokens.oindex[indices], dtype=np.float32).reshape(n * p, d) if n else np.empty((0, d))
        with torch.no_grad():
            values = self.sae.encode(torch.nan_to_num(torch.from_numpy(x)))[:, feature].numpy()
        return values.reshape(n, side, side)

    def close(self) -> None:
        if self.remote is not None:
            self.remote.stop()
        self.slide.close()


def is_imported_store(store_path: str | Path) -> bool:
    """Whether ``store_path`` is a store of features imported from another tool (`pathsae import`)."""
    path = Path(store_path)
    if not (path / "zarr.json").is_file():
        return False
    return bool(TileStore.open(path).provenance.get("imported_from"))


def _store_slide(store: TileStore, slide_path: str | Path) -> Slide:
    """The slide of an imported store, opened at the store's µm/px; another file is refused."""
    if slide_sha256(Path(slide_path)) != store.identity.get("slide_sha256"):
        raise PathsaeError(
            f"{store.path.name} holds features of another slide than {Path(slide_path).name} "
            f"({Path(store.provenance['slide_path']).name})"
        )
    return open_slide(slide_path, mpp=store.slide_mpp, backend=store.provenance.get("slide_backend"))
