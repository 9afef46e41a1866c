"""An exploration saved beside its store, per SAE: what the user selected, computed, drew and looked at.

``<store>.exploration/<sae>/`` holds ``exploration.json`` (selection, camera, layer settings, spot
colouring, regions, and the identity of the store and SAE it belongs to), the correlation table as
Parquet and the concepts as .npz. It is written whole or not at all; reading it back for another
store or another SAE's weights is refused with one line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import PathsaeError
from .outputs import atomic_folder

log = logging.getLogger(__name__)

SCHEMA = 1
FILE = "exploration.json"
CORRELATIONS = "correlations.parquet"
CONCEPTS = "concepts.npz"


@dataclass
class Concepts:
    """Concepts found over the tiles: labels 1..k per tile (0: not computed), profiles (k, F), weights (N, k)."""

    method: str
    labels: np.ndarray
    profiles: np.ndarray
    weights: np.ndarray


@dataclass
class Exploration:
    view: dict = field(default_factory=dict)  # JSON: selected, current, camera, layers, spots, gene, regions
    correlations: pd.DataFrame | None = None
    concepts: Concepts | None = None


def exploration_folder(store_path: str | Path, sae_name: str) -> Path:
    store = Path(store_path)
    return store.parent / f"{store.name}.exploration" / sae_name


def _owner(session) -> dict:
    """What an exploration belongs to: the store's identity (slide, encoder, geometry) and the SAE's weights."""
    if session.sae_dir is None:
        raise PathsaeError("no SAE loaded: an exploration is saved per SAE")
    return {"store": session.store.identity, "sae": session.computer.sae_name, "sae_sha256": session.sae_sha256}


def save_exploration(session, exploration: Exploration) -> Path:
    """Write the exploration beside the session's store (replacing this SAE's previous save); returns its folder."""
    folder = exploration_folder(session.store.path, session.computer.sae_name)
    folder.parent.mkdir(exist_ok=True)
    record = {"schema": SCHEMA, "owner": _owner(session), "view": exploration.view}
    try:
        with atomic_folder(folder, overwrite=True) as staging:
            (staging / FILE).write_text(json.dumps(record, indent=1, default=_json_default))
            if exploration.correlations is not None:
                exploration.correlations.to_parquet(staging / CORRELATIONS, index=False)
            if exploration.concepts is not None:
                c = exploration.concepts
                np.savez(staging / CONCEPTS, method=c.method, labels=c.labels, profiles=c.profiles, weights=c.weights)
    except OSError as exc:
        raise PathsaeError(f"cannot save the exploration in {folder.parent} ({exc.strerror})") from None
    return folder


def load_exploration(session, folder: str | Path | None = None) -> Exploration | None:
    """The exploration saved for this session's store and SAE (None when there is none)."""
    folder = Path(folder) if folder else exploration_folder(session.store.path, session.computer.sae_name)
    if not (folder / FILE).is_file():
        return None
    try:
        record = json.loads((folder / FILE).read_text())
    except (OSError, json.JSONDecodeError):
        raise PathsaeError(f"{folder / FILE}: damaged exploration (delete the folder to start afresh)") from None
    owner, mine = record.get("owner", {}), _owner(session)
    if owner.get("store") != mine["store"]:
        raise PathsaeError(f"{folder} is an exploration of another slide or store; not restored")
    if owner.get("sae_sha256") != mine["sae_sha256"]:
        raise PathsaeError(f"{folder} was saved with another SAE ({owner.get('sae')}, other weights); not restored")
    exploration = Exploration(view=record.get("view", {}))
    if (folder / CORRELATIONS).is_file():
        exploration.correlations = pd.read_parquet(folder / CORRELATIONS)
        if "spearman_r_bound" not in exploration.correlations:  # saved before the spatial test: ranked otherwise
            log.warning("%s: correlations saved by an earlier version are not restored; press Correlate", folder)
            exploration.correlations = None
    if (folder / CONCEPTS).is_file():
        with np.load(folder / CONCEPTS) as saved:
            exploration.concepts = Concepts(str(saved["method"]), saved["labels"], saved["profiles"], saved["weights"])
    return exploration


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in an exploration")
