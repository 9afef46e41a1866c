"""JumpReLU SAE (Rajamanoharan et al. 2024): per-latent thresholds trained with straight-through estimators."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import SAE, SAEConfig
from .registry import Architecture, register


@dataclass
class JumpReLUConfig(SAEConfig):
    k: int = 32  # target L0: the thresholds start where about k latents fire per input
    l0_coefficient: float = 3e-3  # weight of the L0 penalty
    bandwidth: float = 0.05  # of the straight-through estimators' rectangle kernel
    init_threshold: float = 0.05  # before init_thresholds (and for a JumpReLUSAE built without training)

    def narrow(self, d_sae: int) -> None:
        super().narrow(d_sae)
        self.k = min(self.k, d_sae)


def _rectangle(x: torch.Tensor) -> torch.Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_pre = grad * (pre > threshold)
        grad_threshold = -(threshold / bw) * _rectangle((pre - threshold) / bw) * grad
        return grad_pre, grad_threshold.sum(dim=0), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_threshold = -(1.0 / bw) * _rectangle((pre - threshold) / bw) * grad
        return torch.zeros_like(pre), grad_threshold.sum(dim=0), None


class JumpReLUSAE(SAE):
    """f = pre · H(pre − θ); loss = MSE + l0 · Σ H(pre − θ)."""

    cfg: JumpReLUConfig

    def __init__(self, cfg: JumpReLUConfig):
        super().__init__(cfg)
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), float(torch.tensor(cfg.init_threshold).log())))

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return _JumpReLU.apply(torch.relu(pre), self.threshold, self.cfg.bandwidth)

    def sparsity_loss(self, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        l0 = _Step.apply(torch.relu(pre), self.threshold, self.cfg.bandwidth).sum(dim=1).mean()
        return self.cfg.l0_coefficient * l0

    def threshold_tensor(self) -> torch.Tensor:
        return self.threshold.detach()

    def _latent_parameters(self) -> tuple[str, ...]:
        return ("log_threshold",)

    @torch.no_grad()
    def init_thresholds(self, x_norm: torch.Tensor) -> None:
        """θ per latent at the (1 − k/d_sae) quantile of its pre-activations: L0 starts near k.

        The straight-through estimators move θ only slowly; starting near the target sparsity
        lets short runs on one slide reach it.
        """
        pre = torch.relu(self.pre_activations(x_norm))
        quantile = 1.0 - min(self.cfg.k / self.cfg.d_sae, 1.0)
        threshold = torch.quantile(pre, quantile, dim=0).clamp_min(1e-3)
        self.log_threshold.copy_(threshold.log())


def load_threshold(sae: JumpReLUSAE, weights: dict[str, torch.Tensor]) -> None:
    """SAELens keeps θ itself; we train log θ (θ stays positive)."""
    threshold = weights.get("threshold", torch.zeros(sae.cfg.d_sae)).float().clamp_min(1e-12)
    sae.log_threshold.copy_(threshold.log())


register(
    Architecture(
        name="jumprelu", sae=JumpReLUSAE, config=JumpReLUConfig,
        description="per-latent learned thresholds, an L0 penalty (--l0)",
        saelens="jumprelu", load_weights=load_threshold, initialise=JumpReLUSAE.init_thresholds,
    )
)  # fmt: skip
