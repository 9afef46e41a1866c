"""TopK (Gao et al. 2024) and BatchTopK (Bussmann et al. 2024) SAEs (AuxK for dead latents: base.py)."""

from __future__ import annotations

import torch

from .base import SAE


class TopKSAE(SAE):
    """f keeps the k largest ReLU pre-activations of each input."""

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, indices = torch.relu(pre).topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, indices, values)


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
