"""Matryoshka BatchTopK SAE (Bussmann et al. 2025; Nabeshima 2024): nested prefixes of the dictionary each
reconstruct the input, so the first latents learn the general features and later ones refine them rather than
absorbing them. Inference is BatchTopK's (a global threshold); saved, as SAELens saves it, in JumpReLU form."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import PathsaeError
from .batchtopk import BatchTopKSAE
from .registry import Architecture, register
from .topk import TopKConfig, check_k


@dataclass
class MatryoshkaConfig(TopKConfig):
    #: The nested prefixes as fractions of d_sae (the whole dictionary is always the last one): fractions,
    #: not widths, because the width is often chosen from the data (train.auto_width).
    prefix_fractions: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2)

    def prefix_widths(self) -> list[int]:
        """Strictly increasing widths, the last one d_sae."""
        widths = {max(1, round(fraction * self.d_sae)) for fraction in self.prefix_fractions}
        return [*sorted(w for w in widths if w < self.d_sae), self.d_sae]


def check(cfg: MatryoshkaConfig) -> None:
    check_k(cfg)
    if not all(0 < fraction < 1 for fraction in cfg.prefix_fractions):
        raise PathsaeError(f"matryoshka prefix fractions {cfg.prefix_fractions} must lie between 0 and 1")


class MatryoshkaSAE(BatchTopKSAE):
    """loss = Σ over prefixes p of MSE(x, f[:, :p] @ W_dec[:p] + b_dec) (+ AuxK), f BatchTopK's activations."""

    cfg: MatryoshkaConfig

    def loss_terms(self, pre: torch.Tensor, f: torch.Tensor, x_norm: torch.Tensor) -> dict[str, torch.Tensor]:
        # the whole dictionary's MSE is the base loss; the inner prefixes add theirs, truncating the one BatchTopK
        # selection (Bussmann et al.'s recipe) rather than re-selecting per prefix
        inner = torch.zeros((), device=pre.device)
        for width in self.cfg.prefix_widths()[:-1]:
            x_hat = f[:, :width] @ self.W_dec[:width] + self.b_dec
            inner = inner + (x_hat - x_norm).pow(2).mean()
        return {**super().loss_terms(pre, f, x_norm), "inner_mse": inner}


register(
    Architecture(
        name="matryoshka", sae=MatryoshkaSAE, config=MatryoshkaConfig,
        description="BatchTopK whose first 1/8, 1/4, 1/2 of latents each reconstruct the tile too (nested features)",
        saelens="jumprelu", reads_saelens=False, check=check,
    )
)  # fmt: skip
