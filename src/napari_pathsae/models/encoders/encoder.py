"""The loaded encoder: preprocessing, inference (pooled, per-layer CLS, patch tokens) and provenance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import PathsaeError
from ...names import layer_embedding
from .poolings import get_pooling


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
        return get_pooling(self.pooling).width(self.model)

    @property
    def depth(self) -> int:
        return len(getattr(self.model, "blocks", []))

    def provenance(self) -> dict:
        # Stores record this dict and compare parts of it (data/identity.py): keys and values stay as they are.
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
        if layers and not hasattr(self.model, "forward_intermediates"):  # a non-timm family may not expose them
            raise PathsaeError(f"encoder {self.spec}: has no intermediate layers to return (--layers)")
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
                    out[layer_embedding(layer)] = prefix[:, 0].float().cpu().numpy()
            else:
                final = self.model.forward_features(x)
            out["pooled"] = self._pool(final).float().cpu().numpy()
            if patch_tokens:
                prefix = getattr(self.model, "num_prefix_tokens", 1)
                out["patch_tokens"] = final[:, prefix:].float().cpu().numpy()
        return out

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return get_pooling(self.pooling).pool(self.model, tokens)
