"""Specs to encoders: checkpoint loading (weights only, never code), the timm builder, and ``load_encoder``.

A spec is one string: a preset name (``uni``, ``virchow2``…), ``hf-hub:org/name``, a timm model
name, or a local checkpoint path (.safetensors/.pth/.bin, with ``architecture=`` its timm name).
Without reachable or cached weights, a timm name runs with a deterministic, seeded random init
and says so (``Encoder.random_init``), which the store, CLI and UI repeat.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import torch

from ...errors import PathsaeError
from ..torch_compat import import_timm
from .builders import ModelBuilder, get_builder, register_builder
from .device import choose_device, choose_dtype, hub_reachable
from .encoder import Encoder
from .poolings import get_pooling
from .presets import IMAGENET, PRESETS, EncoderPreset

log = logging.getLogger(__name__)
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names and bytes), identifying the weights whatever their source."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _load_checkpoint(path: Path) -> dict:
    """A state dict from safetensors, or torch.load(weights_only=True): never arbitrary pickles."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # torch's weights-only unpickler met a class or function
            raise PathsaeError(
                f"{path.name}: holds pickled objects besides tensors; refused (only weights are loaded, never code)"
            ) from None
        raise PathsaeError(f"{path.name}: cannot load the checkpoint safely (not a torch checkpoint)") from None
    except Exception as exc:
        raise PathsaeError(f"{path.name}: cannot load the checkpoint safely ({exc})") from None
    for key in ("state_dict", "model", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise PathsaeError(f"{path.name}: not a state dict")
    return {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}


def _resolve_kwargs(kwargs: dict) -> dict:
    """Preset kwargs naming timm layers by string (SwiGLUPacked, SiLU) to the classes."""
    import_timm()
    from timm.layers import SwiGLUPacked

    names = {"SwiGLUPacked": SwiGLUPacked, "SiLU": torch.nn.SiLU}
    return {k: names.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}


def _create(timm, name: str, pretrained: bool, kwargs: dict) -> torch.nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **_resolve_kwargs(kwargs))
    except PathsaeError:
        raise
    except Exception as exc:
        if pretrained:
            raise
        raise PathsaeError(f"cannot build encoder {name!r} ({exc})") from None


def _pretrained_or_none(timm, name: str, kwargs: dict) -> torch.nn.Module | None:
    """Pretrained weights from the hub or the local cache; None when neither has them."""
    import huggingface_hub.constants as hub

    online = hub_reachable()
    # Offline, timm would retry the hub for minutes before falling back to the cache: say offline up front.
    previous, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE or not online
    try:
        return _create(timm, name, True, kwargs)
    except Exception as exc:  # offline, gated repo without token, missing file
        log.info("no pretrained weights for %s: %s", name, exc)
        return None
    finally:
        hub.HF_HUB_OFFLINE = previous


@register_builder("timm")
class TimmBuilder(ModelBuilder):
    """timm models by name or ``hf-hub:`` id, with ``num_classes=0`` so the head returns features."""

    def knows(self, source: str) -> bool:
        return source.startswith("hf-hub:") or import_timm().is_model(source.split(".")[0])

    def create(self, architecture: str, kwargs: dict) -> torch.nn.Module:
        return _create(import_timm(), architecture, False, kwargs)

    def pretrained(self, source: str, kwargs: dict) -> torch.nn.Module | None:
        return _pretrained_or_none(import_timm(), source, kwargs)


def _from_checkpoint(path: Path, architecture: str | None) -> tuple[torch.nn.Module, EncoderPreset]:
    """The architecture (a timm name or preset) built, then the checkpoint's weights loaded strictly."""
    if not path.is_file():
        raise PathsaeError(f"checkpoint not found: {path}")
    preset = PRESETS.get((architecture or "").lower()) or EncoderPreset(architecture or "")
    if not preset.architecture:
        raise PathsaeError(f"{path.name}: give the timm architecture of this checkpoint (--arch NAME)")
    get_pooling(preset.pooling)  # an unknown pooling fails before the model is built
    model = get_builder(preset.builder).create(preset.architecture, preset.kwargs)
    try:
        missing, unexpected = model.load_state_dict(_load_checkpoint(path), strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise PathsaeError(f"{path.name} does not fit {preset.architecture}: {first.strip()}") from None
    if missing or unexpected:
        raise PathsaeError(
            f"{path.name} does not fit {preset.architecture}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected keys (e.g. {(missing or unexpected)[0]})"
        )
    return model, preset


def load_encoder(
    spec: str = "vit_small_patch16_224",
    architecture: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    allow_random: bool | None = None,
) -> Encoder:
    """Build the encoder a spec names; see the module docstring for what a spec may be.

    Without weights (offline, gated), ``allow_random`` None runs a timm architecture with random
    weights but refuses a preset (a foundation model is asked for its weights); True allows both.
    """
    preset = PRESETS.get(spec.lower())
    path = Path(spec)
    random_init = False
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        model, preset = _from_checkpoint(path, architecture)
        name = preset.architecture
    else:
        builder = get_builder(preset.builder if preset else "timm")  # bare names and hf-hub ids are timm's
        get_pooling(preset.pooling if preset else "model")  # an unknown pooling fails before any download
        source = preset.source if preset else spec
        base = preset.architecture if preset else spec.removeprefix("hf-hub:")
        kwargs = preset.kwargs if preset else {}
        if not builder.knows(source):
            raise PathsaeError(
                f"unknown encoder {spec!r}: not a preset ({', '.join(PRESETS)}), timm model or checkpoint"
            )
        model = builder.pretrained(source, kwargs)
        if model is None:
            if source.startswith("hf-hub:") and preset is None:
                raise PathsaeError(
                    f"{source}: weights unavailable (offline or no access) and the architecture is unknown"
                )
            if allow_random is False or (allow_random is None and preset is not None):
                hint = "; --random-init runs its architecture with random weights" if preset else ""
                raise PathsaeError(f"{spec}: weights unavailable (offline or no access to the model hub){hint}")
            torch.manual_seed(seed)
            model = builder.create(base, kwargs)
            random_init = True
            log.warning("encoder %s: weights unavailable, using a RANDOM init (seed %d)", spec, seed)
        name = base
    torch_device = choose_device(device)
    if torch_device.type == "cpu":
        # denormal floats (random-init ViTs on real tiles make them) slow CPU math ~10%; flush them to zero
        torch.set_flush_denormal(True)
    model = model.eval().to(torch_device)
    config = getattr(model, "pretrained_cfg", {}) or {}
    return Encoder(
        spec=spec,
        model=model,
        architecture=name,
        input_size=preset.input_size if preset else int(config.get("input_size", (3, 224, 224))[-1]),
        mean=tuple(preset.mean if preset else config.get("mean", IMAGENET[0])),
        std=tuple(preset.std if preset else config.get("std", IMAGENET[1])),
        pooling=preset.pooling if preset else "model",
        random_init=random_init,
        seed=seed if random_init else None,
        weights_sha256=weights_hash(model),
        device=torch_device,
        dtype=choose_dtype(torch_device, dtype),
    )
