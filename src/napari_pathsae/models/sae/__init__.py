"""Sparse autoencoders: one file per architecture, joined by this registry."""

from __future__ import annotations

from ...errors import PathsaeError
from .base import SAE, SAEConfig
from .jumprelu import JumpReLUSAE
from .relu_l1 import ReluL1SAE
from .topk import BatchTopKSAE, TopKSAE

ARCHITECTURES: dict[str, type[SAE]] = {
    "relu": ReluL1SAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
}


def build_sae(cfg: SAEConfig) -> SAE:
    try:
        return ARCHITECTURES[cfg.arch](cfg)
    except KeyError:
        raise PathsaeError(f"unknown SAE architecture {cfg.arch!r} ({', '.join(ARCHITECTURES)})") from None


__all__ = ["ARCHITECTURES", "SAE", "BatchTopKSAE", "JumpReLUSAE", "ReluL1SAE", "SAEConfig", "TopKSAE", "build_sae"]
