"""TopK (Gao et al. 2024) and BatchTopK (Bussmann et al. 2024) SAEs, with the AuxK loss for dead latents."""

from __future__ import annotations

import torch

from .base import SAE


class TopKSAE(SAE):
    """f keeps the k largest ReLU pre-activations of each input."""

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, indices = torch.relu(pre).topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, indices, values)

    def auxiliary_loss(self, pre: torch.Tensor, f: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """AuxK: the top dead latents must reconstruct what the live ones missed."""
        dead = self.dead_mask
        n_dead = int(dead.sum())
        if n_dead == 0 or not self.training:
            return torch.zeros((), device=pre.device)
        k_aux = min(self.cfg.d_in // 2, n_dead)
        masked = torch.where(dead, torch.relu(pre), torch.zeros_like(pre))
        values, indices = masked.topk(k_aux, dim=-1)
        aux_f = torch.zeros_like(pre).scatter_(-1, indices, values)
        reconstruction = aux_f @ self.W_dec
        scale = residual.pow(2).mean().clamp_min(1e-8)
        return self.cfg.aux_coefficient * (reconstruction - residual.detach()).pow(2).mean() / scale


class BatchTopKSAE(TopKSAE):
    """Training keeps the k·B largest activations across the batch; inference uses a learned global threshold."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.register_buffer("threshold", torch.tensor(-1.0))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.inference_activate(pre)
        relu = torch.relu(pre)
        flat = relu.flatten()
        keep = min(self.cfg.k * pre.shape[0], flat.numel())
        values, indices = flat.topk(keep)
        f = torch.zeros_like(flat).scatter_(0, indices, values).view_as(pre)
        with torch.no_grad():  # running estimate of the smallest kept activation
            smallest = values[values > 0].min() if (values > 0).any() else values.new_tensor(0.0)
            self.threshold.copy_(smallest if self.threshold < 0 else 0.99 * self.threshold + 0.01 * smallest)
        return f

    def inference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold.clamp_min(0))

    def threshold_tensor(self) -> torch.Tensor:
        return self.threshold.clamp_min(0).expand(self.cfg.d_sae).clone()
