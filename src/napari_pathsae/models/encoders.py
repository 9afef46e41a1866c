"""Encoder specs, presets for pathology foundation models, loading, device/dtype choice and inference.

A spec is one string: a preset name (``uni``, ``virchow2``…), ``hf-hub:org/name``, a timm model
name, or a local checkpoint path (.safetensors/.pth/.bin, with ``architecture=`` its timm name).
Without reachable or cached weights, a timm name runs with a deterministic, seeded random init
and says so (``Encoder.random_init``), which the store, CLI and UI repeat.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import PathsaeError
from .torch_compat import import_timm

log = logging.getLogger(__name__)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_SWIGLU = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}


@dataclass(frozen=True)
class EncoderPreset:
    """How a known model is built: timm architecture, weights source, input size, normalisation."""

    architecture: str
    hub_id: str | None = None
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET[0]
    std: tuple[float, float, float] = IMAGENET[1]
    kwargs: dict = field(default_factory=dict)
    pooling: str = "model"  # "model" (timm's own head pooling) or "cls+mean" (Virchow)


PRESETS: dict[str, EncoderPreset] = {
    "uni": EncoderPreset(
        "vit_large_patch16_224", "hf-hub:MahmoodLab/UNI", kwargs={"init_values": 1e-5, "dynamic_img_size": True}
    ),
    "uni2-h": EncoderPreset(
        "vit_giant_patch14_224",
        "hf-hub:MahmoodLab/UNI2-h",
        kwargs={
            "img_size": 224,
            "patch_size": 14,
            "depth": 24,
            "num_heads": 24,
            "init_values": 1e-5,
            "embed_dim": 1536,
            "mlp_ratio": 2.66667 * 2,
            "no_embed_class": True,
            "reg_tokens": 8,
            "dynamic_img_size": True,
            **_SWIGLU,
        },
    ),
    "virchow": EncoderPreset(
        "vit_huge_patch14_224", "hf-hub:paige-ai/Virchow", kwargs={"init_values": 1e-5, **_SWIGLU}, pooling="cls+mean"
    ),
    "virchow2": EncoderPreset(
        "vit_huge_patch14_224",
        "hf-hub:paige-ai/Virchow2",
        kwargs={"init_values": 1e-5, "reg_tokens": 4, **_SWIGLU},
        pooling="cls+mean",
    ),
    **{
        f"h-optimus-{version}": EncoderPreset(
            "vit_giant_patch14_reg4_dinov2",
            f"hf-hub:bioptimus/H-optimus-{version}",
            mean=(0.707223, 0.578729, 0.703617),
            std=(0.211883, 0.230117, 0.177517),
            kwargs={"init_values": 1e-5},
        )
        for version in (0, 1)
    },
    "gigapath": EncoderPreset("vit_giant_patch14_dinov2", "hf-hub:prov-gigapath/prov-gigapath"),
}
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """False when offline (HF_HUB_OFFLINE, or no DNS/TCP route), so nothing waits on retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def choose_device(requested: str = "auto") -> torch.device:
    """cuda → mps → cpu for "auto"; "cuda:N" picks a GPU; an unavailable explicit device is a user error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = requested.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise PathsaeError(f"--device {requested}: no CUDA GPU is available")
    if kind == "cuda" and index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise PathsaeError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PathsaeError("--device mps: Apple MPS is not available")
    if kind not in ("cpu", "cuda", "mps") or (index and kind != "cuda"):
        raise PathsaeError(f"unknown device {requested!r} (auto, cpu, cuda or mps)")
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (elsewhere bf16 autocast is emulated and slower)."""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def choose_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """bf16 on CUDA GPUs that support it and on CPUs with native bf16; fp32 otherwise."""
    if requested != "auto":
        try:
            return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]
        except KeyError:
            raise PathsaeError(f"unknown dtype {requested!r} (auto, fp32, bf16, fp16)") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names and bytes), identifying the weights whatever their source."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _resolve_kwargs(kwargs: dict) -> dict:
    """Preset kwargs naming timm layers by string (SwiGLUPacked, SiLU) to the classes."""
    import_timm()
    from timm.layers import SwiGLUPacked

    names = {"SwiGLUPacked": SwiGLUPacked, "SiLU": torch.nn.SiLU}
    return {k: names.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}


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


@dataclass
class Encoder:
    """A loaded image encoder with everything provenance and preprocessing need."""

    spec: str
    model: torch.nn.Module
    architecture: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pooling: str
    random_init: bool
    seed: int | None
    weights_sha256: str
    device: torch.device
    dtype: torch.dtype
    #: Largest batch that fitted in memory, once a batch ran out of it (see pipeline.embed_batches).
    batch_limit: int | None = None

    @property
    def width(self) -> int:
        return int(self.model.num_features) * (2 if self.pooling == "cls+mean" else 1)

    @property
    def depth(self) -> int:
        return len(getattr(self.model, "blocks", []))

    def provenance(self) -> dict:
        return {
            "spec": self.spec,
            "architecture": self.architecture,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "pooling": self.pooling,
            "random_init": self.random_init,
            "seed": self.seed,
            "weights_sha256": self.weights_sha256,
            "width": self.width,
        }

    def preprocess(self, tiles: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 → normalised (N, 3, S, S) on the device (uint8 travels, not floats)."""
        x = torch.from_numpy(np.ascontiguousarray(tiles[..., :3])).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = torch.nn.functional.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", antialias=True)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.inference_mode()
    def embed(
        self, tiles: np.ndarray, layers: tuple[int, ...] = (), patch_tokens: bool = False
    ) -> dict[str, np.ndarray]:
        """{"pooled": (N, D)} plus "layer_{i}" (N, D) CLS tokens of blocks i (1-based) and "patch_tokens" (N, P, D)."""
        x = self.preprocess(tiles)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        out: dict[str, np.ndarray] = {}
        with autocast:
            if layers:
                indices = [i - 1 for i in layers]
                final, inter = self.model.forward_intermediates(
                    x, indices=indices, return_prefix_tokens=True, norm=False
                )
                for layer, (_, prefix) in zip(layers, inter, strict=True):
                    out[f"layer_{layer}"] = prefix[:, 0].float().cpu().numpy()
            else:
                final = self.model.forward_features(x)
            out["pooled"] = self._pool(final).float().cpu().numpy()
            if patch_tokens:
                prefix = getattr(self.model, "num_prefix_tokens", 1)
                out["patch_tokens"] = final[:, prefix:].float().cpu().numpy()
        return out

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls+mean":
            prefix = getattr(self.model, "num_prefix_tokens", 1)
            return torch.cat([tokens[:, 0], tokens[:, prefix:].mean(dim=1)], dim=-1)
        return self.model.forward_head(tokens, pre_logits=True)


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
    timm = import_timm()
    preset = PRESETS.get(spec.lower())
    path = Path(spec)
    random_init = False
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise PathsaeError(f"checkpoint not found: {path}")
        preset = PRESETS.get((architecture or "").lower()) or EncoderPreset(architecture or "")
        if not preset.architecture:
            raise PathsaeError(f"{path.name}: give the timm architecture of this checkpoint (--arch NAME)")
        model = _create(timm, preset.architecture, False, preset.kwargs)
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
        name = preset.architecture
    else:
        name = preset.hub_id if preset else spec
        base = preset.architecture if preset else spec.removeprefix("hf-hub:")
        if not name.startswith("hf-hub:") and not timm.is_model(name.split(".")[0]):
            raise PathsaeError(
                f"unknown encoder {spec!r}: not a preset ({', '.join(PRESETS)}), timm model or checkpoint"
            )
        model = _pretrained_or_none(timm, name, preset)
        if model is None:
            if name.startswith("hf-hub:") and preset is None:
                raise PathsaeError(
                    f"{name}: weights unavailable (offline or no access) and the architecture is unknown"
                )
            if allow_random is False or (allow_random is None and preset is not None):
                hint = "; --random-init runs its architecture with random weights" if preset else ""
                raise PathsaeError(f"{spec}: weights unavailable (offline or no access to the model hub){hint}")
            torch.manual_seed(seed)
            model = _create(timm, base, False, preset.kwargs if preset else {})
            random_init = True
            log.warning("encoder %s: weights unavailable, using a RANDOM init (seed %d)", spec, seed)
        name = base
    torch_device = choose_device(device)
    if torch_device.type == "cpu":
        # denormal floats (random-init ViTs on real tiles make them) slow CPU math ~10%; flush them to zero
        torch.set_flush_denormal(True)
    model = model.eval().to(torch_device)
    config = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(preset.mean if preset else config.get("mean", IMAGENET[0]))
    std = tuple(preset.std if preset else config.get("std", IMAGENET[1]))
    size = preset.input_size if preset else int(config.get("input_size", (3, 224, 224))[-1])
    return Encoder(
        spec, model, name, size, mean, std, preset.pooling if preset else "model", random_init,
        seed if random_init else None, weights_hash(model), torch_device, choose_dtype(torch_device, dtype),
    )  # fmt: skip


def _create(timm, name: str, pretrained: bool, kwargs: dict) -> torch.nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **_resolve_kwargs(kwargs))
    except PathsaeError:
        raise
    except Exception as exc:
        if pretrained:
            raise
        raise PathsaeError(f"cannot build encoder {name!r} ({exc})") from None


def _pretrained_or_none(timm, name: str, preset: EncoderPreset | None) -> torch.nn.Module | None:
    """Pretrained weights from the hub or the local cache; None when neither has them."""
    import huggingface_hub.constants as hub

    online = hub_reachable()
    previous, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE or not online
    try:
        return _create(timm, name, True, preset.kwargs if preset else {})
    except Exception as exc:  # offline, gated repo without token, missing file
        log.info("no pretrained weights for %s: %s", name, exc)
        return None
    finally:
        hub.HF_HUB_OFFLINE = previous
