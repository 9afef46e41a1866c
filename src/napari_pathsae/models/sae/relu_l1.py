"""ReLU SAE with an L1 penalty (the PLUTO study's kind), unit-norm decoder (AuxK for dead latents: base.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import SAE, SAEConfig
from .registry import Architecture, register


@dataclass
class ReluL1Config(SAEConfig):
    l1_coefficient: float = 1e-2  # weight of the L1 penalty


class ReluL1SAE(SAE):
    """f = ReLU(pre); loss = MSE + l1 · Σ f·‖W_dec‖."""

    cfg: ReluL1Config

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def sparsity_loss(self, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.cfg.l1_coefficient * (f * self.W_dec.norm(dim=1)).sum(dim=1).mean()


register(
    Architecture(
        name="relu", sae=ReluL1SAE, config=ReluL1Config, description="ReLU latents, an L1 penalty (--l1)",
        saelens="standard",
    )
)  # fmt: skip
