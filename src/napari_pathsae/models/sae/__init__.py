"""Sparse autoencoders: one file per architecture, each registering itself (registry.py)."""

from __future__ import annotations

from .base import SAE, SAEConfig
from .registry import ENTRIES, Architecture, architectures, descriptions, get, register

# isort: off
# Registration block: importing an architecture's file registers it, in this order (the CLI's and the panel's).
from .topk import TopKSAE
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReLUSAE
from .relu_l1 import ReluL1SAE
from . import matryoshka  # noqa: F401
# isort: on

#: name -> registry entry (read-only, live): iterating it gives the names.
ARCHITECTURES = ENTRIES


def build_sae(cfg: SAEConfig) -> SAE:
    """The SAE of ``cfg``'s architecture (a PathsaeError naming the known ones for an unknown name)."""
    entry = get(cfg.arch)
    if not isinstance(cfg, entry.config):  # a config built for another architecture: a programming error
        raise TypeError(f"{cfg.arch} needs a {entry.config.__name__}, not a {type(cfg).__name__}")
    return entry.sae(cfg)


__all__ = [
    "ARCHITECTURES",
    "SAE",
    "Architecture",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReluL1SAE",
    "SAEConfig",
    "TopKSAE",
    "architectures",
    "build_sae",
    "descriptions",
    "get",
    "register",
]
