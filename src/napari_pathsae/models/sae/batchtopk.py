"""BatchTopK SAE (Bussmann et al. 2024): k latents per input on average over the batch (AuxK: base.py)."""

from __future__ import annotations

import torch

from .registry import Architecture, register
from .topk import TopKConfig, TopKSAE, check_k


class BatchTopKSAE(TopKSAE):
    """Training keeps the k·B largest activations across the batch; inference uses a learned global threshold."""

    def __init__(self, cfg: TopKConfig):
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


# saved in its JumpReLU inference form (one global threshold per latent), as SAELens does; loads as jumprelu
register(
    Architecture(
        name="batchtopk", sae=BatchTopKSAE, config=TopKConfig,
        description="k latents per tile on average over the batch (a global threshold at inference)",
        saelens="jumprelu", reads_saelens=False, check=check_k,
    )
)  # fmt: skip
