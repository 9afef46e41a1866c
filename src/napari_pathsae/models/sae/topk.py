"""TopK SAE (Gao et al. 2024): the k largest latents of each input (AuxK for dead latents: base.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import PathsaeError
from .base import SAE, SAEConfig
from .registry import Architecture, register


@dataclass
class TopKConfig(SAEConfig):
    k: int = 32  # active latents per input

    def narrow(self, d_sae: int) -> None:
        super().narrow(d_sae)
        self.k = min(self.k, d_sae)


def check_k(cfg: TopKConfig) -> None:
    """k active latents need at least k latents (TopK, BatchTopK and their kin)."""
    if not 0 < cfg.k <= cfg.d_sae:
        raise PathsaeError(f"k={cfg.k} must be between 1 and the SAE width {cfg.d_sae}")


def k_from_saelens(cfg: dict) -> dict:
    return {"k": int(cfg.get("k", 32))}


class TopKSAE(SAE):
    """f keeps the k largest ReLU pre-activations of each input."""

    cfg: TopKConfig

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, indices = torch.relu(pre).topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, indices, values)


register(
    Architecture(
        name="topk", sae=TopKSAE, config=TopKConfig, description="the k largest latents of each tile",
        saelens="topk", saelens_cfg=lambda cfg: {"k": cfg.k}, from_saelens=k_from_saelens, check=check_k,
    )
)  # fmt: skip
