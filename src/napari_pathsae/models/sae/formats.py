"""SAE files in SAELens's layout: cfg.json + sae_weights.safetensors (W_enc, W_dec, b_enc, b_dec[, threshold])."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ...data.outputs import atomic_folder
from ...data.store import SAE_WEIGHTS_FILE, content_sha256
from ...errors import PathsaeError
from . import SAE, build_sae, registry

CFG = "cfg.json"
WEIGHTS = SAE_WEIGHTS_FILE
SPARSITY = "sparsity.safetensors"


def save_sae(
    sae: SAE,
    directory: str | Path,
    layer: str,
    extra: dict,
    overwrite: bool = False,
    density: torch.Tensor | None = None,
) -> Path:
    """Write the SAE (normalisation folded in) atomically: a temp folder renamed into place; an existing
    folder is replaced only with ``overwrite``. ``density`` (each latent's firing rate on the training
    data) goes to SAELens's sparsity.safetensors (``write_sparsity``)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    entry = registry.get(sae.cfg.arch)  # its SAELens name and extra keys (BatchTopK: JumpReLU's inference form)
    cfg = {
        "architecture": entry.saelens,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"model_name": extra.get("encoder", {}).get("spec"), "hook_name": layer},
        "pathsae": {"config": sae.cfg.to_dict(), "layer": layer, **extra},
        **entry.saelens_cfg(sae.cfg),
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(directory, overwrite) as staging:
        save_file(sae.folded_weights(), str(staging / WEIGHTS))
        (staging / CFG).write_text(json.dumps(cfg, indent=2))
        if density is not None:
            write_sparsity(staging / SPARSITY, density)
    return directory


def write_sparsity(path: str | Path, density: torch.Tensor) -> None:
    """SAELens's sparsity.safetensors: log10(firing rate + 1e-10) of each latent under the key ``sparsity``."""
    from safetensors.torch import save_file

    save_file({"sparsity": torch.log10(density.float().cpu() + 1e-10)}, str(path))


def sae_layer(cfg: dict) -> str:
    """The embeddings an SAE reads ("pooled" or "layer_L"), from its cfg.json (SAELens hook_name)."""
    return cfg.get("metadata", {}).get("hook_name") or "pooled"


def read_cfg(directory: str | Path) -> dict:
    """An SAE folder's cfg.json, without loading its weights."""
    path = Path(directory) / CFG
    if not path.is_file():
        raise PathsaeError(f"{directory}: not an SAE folder (needs {CFG} and {WEIGHTS})")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PathsaeError(f"{directory}: not an SAE folder ({CFG}: {exc})") from None


def sae_weights_sha256(directory: str | Path) -> str:
    """Fingerprint of an SAE folder's weights: activations cached in a store are tied to it."""
    return content_sha256(Path(directory) / WEIGHTS)


def sae_provenance(directory: str | Path, cfg: dict) -> dict:
    """What a store records beside an SAE's activations: its folder, weights' sha256, input layer and
    the encoder it was trained on (from cfg.json; absent for an SAE trained elsewhere)."""
    return {
        "path": str(Path(directory).resolve()),
        "layer": sae_layer(cfg),
        "weights_sha256": sae_weights_sha256(directory),
        **cfg.get("pathsae", {}),
    }


def load_sae(directory: str | Path) -> tuple[SAE, dict]:
    """An SAE acting on raw embeddings from our files or SAELens's (the names registry.for_saelens reads)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / CFG).is_file() or not (directory / WEIGHTS).is_file():
        raise PathsaeError(f"{directory}: not an SAE folder (needs {CFG} and {WEIGHTS})")
    try:
        cfg = json.loads((directory / CFG).read_text())
        weights = load_file(str(directory / WEIGHTS))
    except (json.JSONDecodeError, SafetensorError, OSError, ValueError) as exc:
        raise PathsaeError(f"{directory}: damaged SAE files ({exc})") from None
    try:
        entry = registry.for_saelens(cfg.get("architecture"))
    except PathsaeError as exc:
        raise PathsaeError(f"{directory}: {exc}") from None
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    for name, shape in expected.items():
        if name not in weights or tuple(weights[name].shape) != shape:
            raise PathsaeError(f"{directory}: {name} missing or not {shape}")
    sae = build_sae(entry.make_config({"d_in": d_in, "d_sae": d_sae, **entry.from_saelens(cfg)}))
    with torch.no_grad():
        for name in expected:
            getattr(sae, name).copy_(weights[name].float())
        if entry.load_weights is not None:
            entry.load_weights(sae, weights)
    if any(not math.isfinite(float(v.abs().sum())) for v in weights.values()):
        raise PathsaeError(f"{directory}: the SAE weights contain NaN or inf")
    return sae.eval(), cfg
