"""ReLU SAE with an L1 penalty (the PLUTO study's kind), unit-norm decoder, dead-latent resampling."""

from __future__ import annotations

import torch

from .base import SAE


class ReluL1SAE(SAE):
    """f = ReLU(pre); loss = MSE + l1 · Σ f·‖W_dec‖."""

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def sparsity_loss(self, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.cfg.l1_coefficient * (f * self.W_dec.norm(dim=1)).sum(dim=1).mean()

    @torch.no_grad()
    def resample_dead(self, x_norm: torch.Tensor) -> int:
        """Point dead latents at the worst-reconstructed inputs (Anthropic's resampling, simplified)."""
        dead = torch.nonzero(self.dead_mask).flatten()
        if len(dead) == 0:
            return 0
        residual = x_norm - self.decode_normalised(self.activate(self.pre_activations(x_norm)))
        losses = residual.pow(2).sum(dim=1)
        picks = torch.multinomial(losses / losses.sum(), len(dead), replacement=len(dead) > len(losses))
        directions = residual[picks] / residual[picks].norm(dim=1, keepdim=True).clamp_min(1e-8)
        alive = ~self.dead_mask
        enc_norm = self.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        self.W_dec[dead] = directions
        self.W_enc[:, dead] = directions.t() * enc_norm * 0.2
        self.b_enc[dead] = 0.0
        self.inputs_since_fired[dead] = 0
        return len(dead)
