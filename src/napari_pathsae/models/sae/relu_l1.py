"""ReLU SAE with an L1 penalty (the PLUTO study's kind), unit-norm decoder (AuxK for dead latents: base.py)."""

from __future__ import annotations

import torch

from .base import SAE


class ReluL1SAE(SAE):
    """f = ReLU(pre); loss = MSE + l1 · Σ f·‖W_dec‖."""

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def sparsity_loss(self, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.cfg.l1_coefficient * (f * self.W_dec.norm(dim=1)).sum(dim=1).mean()
