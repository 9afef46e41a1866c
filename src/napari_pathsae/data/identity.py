"""What a file or model must be to be used again: checked against the identity recorded when first used.

- A store's slide is opened again (figures) only when its sha256 is the one recorded at embedding.
- An SAE is used only on stores of its encoder and input layer: encoder identity is the weights' sha256
  together with the architecture, preprocessing (input size, mean/std) and pooling, since two
  random-init encoders of one architecture can share weights but not preprocessing
  (``vit_tiny_patch16_224`` and ``deit_tiny_patch16_224`` do).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..errors import PathsaeError
from ..names import layer_block
from .store import TileStore, slide_sha256

log = logging.getLogger(__name__)

#: The parts of an encoder's provenance that decide what its embeddings mean.
ENCODER_IDENTITY = ("weights_sha256", "architecture", "input_size", "mean", "std", "pooling")


def encoder_identity(provenance: dict) -> dict:
    """The identity-bearing parts of an encoder's provenance (keys it lacks are left out)."""
    return {key: provenance[key] for key in ENCODER_IDENTITY if key in provenance}


def encoder_differences(a: dict, b: dict) -> list[str]:
    """Identity keys on which two encoder provenances disagree (keys one of them lacks are not compared)."""
    a, b = encoder_identity(a), encoder_identity(b)
    return [key for key in ENCODER_IDENTITY if key in a and key in b and a[key] != b[key]]


def check_sae_fits_store(sae: dict, store: TileStore, d_in: int) -> str:
    """The embeddings name an SAE reads on ``store``; refused when the store lacks that layer, holds
    another width, or was embedded by another encoder than the one the SAE was trained on."""
    layer = sae.get("layer", "pooled")
    names = store.embedding_names()
    if layer not in names:
        raise PathsaeError(
            f"the SAE reads {layer!r} embeddings but {store.path.name} holds {', '.join(names)} "
            f"(embed with --layers {layer_block(layer)})"
        )
    width = store.embeddings(layer).shape[1]
    if width != d_in:
        raise PathsaeError(
            f"the SAE expects {d_in}-d inputs but {store.path.name} holds {width}-d {layer} embeddings "
            "(another encoder?)"
        )
    trained_on = sae.get("encoder")
    if not trained_on:
        log.warning("the SAE does not record its encoder (trained elsewhere?); only its width is checked")
        return layer
    differ = encoder_differences(trained_on, store.provenance["encoder"])
    if differ:
        raise PathsaeError(
            f"the SAE was trained on {trained_on.get('spec', 'another encoder')}'s embeddings, but "
            f"{store.path.name} was embedded with {store.provenance['encoder'].get('spec')} "
            f"(different {', '.join(differ)})"
        )
    return layer


def verified_slide_path(store: TileStore) -> Path | None:
    """The store's slide when it is still the file that was embedded (sha256), None when it is gone;
    a file at that path with other content is refused in one line."""
    path = Path(store.provenance["slide_path"])
    if not path.exists():
        return None
    if slide_sha256(path) != store.identity.get("slide_sha256"):
        raise PathsaeError(
            f"{path} is no longer the slide {store.path.name} was embedded from (its sha256 changed); "
            "put the original back or embed the new file into a new store"
        )
    return path


def visium_fingerprint(sample) -> str:
    """sha256 of a Visium sample's registration: barcodes, spot centres (full-resolution px, to 0.1 px)
    and spot diameter. The counts are not part of it: the same spots with another matrix are the same
    section."""
    order = np.argsort(np.asarray(sample.adata.obs_names, dtype=str))
    xy = np.round(np.asarray(sample.adata.obsm["spatial"], dtype=float)[order] * 10).astype(np.int64)
    digest = hashlib.sha256("\n".join(np.asarray(sample.adata.obs_names, dtype=str)[order]).encode())
    digest.update(xy.tobytes())
    digest.update(f"{sample.spot_diameter_fullres:.1f}".encode())
    return digest.hexdigest()


def check_visium_matches(store: TileStore, sample) -> None:
    """A store embedded with a Visium sample (``embed --visium``) accepts only that sample's registration."""
    recorded = store.provenance.get("visium_fingerprint")
    if recorded and recorded != visium_fingerprint(sample):
        raise PathsaeError(
            f"{sample.path} is not the Visium sample {store.path.name} was embedded with "
            f"({store.provenance.get('visium')}): its spots or spot diameter differ"
        )
