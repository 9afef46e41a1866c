"""What runs on finished stores: an SAE trained on their embeddings, its activations written into a store,
and a store's activations correlated with a Visium sample's genes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..analysis.spots import correlate_activations
from ..data.identity import check_sae_fits_store, encoder_differences
from ..data.outputs import writable_target
from ..data.store import TileStore, writer_lock
from ..errors import PathsaeError
from ..models.sae.formats import load_sae, sae_provenance, save_sae
from ..models.sae.train import train_sae

log = logging.getLogger(__name__)


def _finished(store: TileStore) -> TileStore:
    if not store.complete:
        raise PathsaeError(
            f"{store.path} is unfinished (embedding was interrupted); rerun `pathsae embed` to finish it"
        )
    return store


def encode_store(store_path: str | Path, sae_dir: str | Path, name: str | None = None, batch_rows: int = 4096) -> str:
    """SAE activations of a store's embeddings, written to ``activations/<name>`` (the SAE folder's name)."""
    sae, cfg = load_sae(sae_dir)
    with writer_lock(store_path):
        store = _finished(TileStore.open(store_path, mode="r+"))
        provenance = sae_provenance(sae_dir, cfg)
        layer = check_sae_fits_store(provenance, store, sae.cfg.d_in)
        embeddings = store.embeddings(layer)
        name = name or Path(sae_dir).name
        array = store.activation_array(name, sae.cfg.d_sae, provenance)
        array.attrs["complete"] = False
        rows = max(1, batch_rows // store.chunk_tiles) * store.chunk_tiles  # whole zarr chunks per write
        invalid = 0
        with torch.no_grad():  # batch by batch into the store: memory stays flat however many tiles
            for begin in range(0, embeddings.shape[0], rows):
                x = torch.from_numpy(np.asarray(embeddings[begin : begin + rows], dtype=np.float32))
                finite = torch.isfinite(x).all(dim=1)
                codes = sae.encode(torch.where(finite[:, None], x, 0.0))
                codes[~finite] = float("nan")  # no activations for a tile without a valid embedding
                invalid += int((~finite).sum())
                array[begin : begin + rows] = codes.numpy()
        array.attrs["complete"] = True
    if invalid:
        log.warning("%d tiles have NaN/inf embeddings; their activations are NaN", invalid)
    return name


def encoded_by(store_path: str | Path, sae_dir: str | Path, name: str | None = None) -> bool:
    """Whether the store already holds complete activations of this SAE's weights (so encoding can be skipped)."""
    from ..models.sae.formats import sae_weights_sha256

    store = TileStore.open(store_path)
    group = store.root["activations"]
    name = name or Path(sae_dir).name
    if name not in group:
        return False
    attrs = group[name].attrs
    return bool(attrs.get("complete")) and attrs.get("sae", {}).get("weights_sha256") == sae_weights_sha256(sae_dir)


def train_to_folder(
    stores: list[str | Path], output: str | Path, options, progress=None, overwrite: bool = False
) -> dict:
    """Train an SAE on the stores' embeddings and save it with its provenance; returns the metrics.

    An existing ``output`` is refused unless ``overwrite`` (checked, with the folder's writability, before
    training); activations cached from the replaced SAE are refused afterwards until re-encoded."""
    writable_target(output, overwrite)
    opened = [_finished(TileStore.open(s)) for s in stores]
    first = opened[0].provenance["encoder"]
    for other in opened[1:]:
        if encoder_differences(first, other.provenance["encoder"]):
            raise PathsaeError("the stores were embedded with different encoders; train on one encoder's stores")
    sae, metrics = train_sae(opened, options, progress)
    density = torch.tensor(metrics.pop("feature_density"))
    metrics["d_sae"] = sae.cfg.d_sae
    extra = {
        "encoder": first,
        "stores": [str(s.path.resolve()) for s in opened],
        # the batch used (a small store trains on smaller batches than asked: train_sae), and the one asked for
        "training": {**vars(options), "batch_size": metrics["batch_size"], "batch_size_asked": options.batch_size},
        "metrics": metrics,
        "package_version": __version__,
    }
    save_sae(sae, output, options.layer, extra, overwrite, density)
    return metrics


def correlate_store(
    store_path,
    sample,
    genes=None,
    top_genes: int | None = None,
    sae: str | None = None,
    everything=False,
    null: str | None = None,
    block_um: float | None = None,
    seed: int | None = None,
):
    """Feature x gene correlation table of a store's activations aggregated to the Visium ``sample``'s spots;
    with ``null`` (analysis/spatial_null.py), the same analysis with the spots moved off their own tissue."""
    store = TileStore.open(store_path)
    activations = np.asarray(store.activations(sae)[:], dtype=np.float32)
    return correlate_activations(store, sample, activations, genes, top_genes, everything, null, block_um, seed)
