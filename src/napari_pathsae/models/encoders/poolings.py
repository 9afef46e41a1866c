"""Poolings: name → (model, tokens) → pooled vector, with the width rule that goes with it.

A preset names its pooling; the name is recorded in provenance and is part of an encoder's identity
(data/identity.py), so a registered name keeps its meaning for good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...errors import PathsaeError

PoolFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
WidthFn = Callable[[torch.nn.Module], int]


def _num_features(model: torch.nn.Module) -> int:
    return int(model.num_features)


@dataclass(frozen=True)
class Pooling:
    """A registered pooling: ``pool(model, tokens)`` → (N, width), ``width(model)`` → its width."""

    name: str
    pool: PoolFn
    width: WidthFn


POOLINGS: dict[str, Pooling] = {}


def register_pooling(name: str, width: WidthFn = _num_features) -> Callable[[PoolFn], PoolFn]:
    """Decorator registering a pooling function under ``name``; ``width`` defaults to the model's num_features."""

    def decorate(pool: PoolFn) -> PoolFn:
        if name in POOLINGS:
            raise ValueError(f"pooling {name!r} is already registered")
        POOLINGS[name] = Pooling(name, pool, width)
        return pool

    return decorate


def get_pooling(name: str) -> Pooling:
    """The pooling registered as ``name``; an unknown name is a user error naming the known ones."""
    try:
        return POOLINGS[name]
    except KeyError:
        raise PathsaeError(f"unknown pooling {name!r} ({', '.join(POOLINGS)})") from None


@register_pooling("model")
def model_head(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The model's own head pooling (timm: its global_pool setting, CLS token for most ViTs)."""
    return model.forward_head(tokens, pre_logits=True)


@register_pooling("cls+mean", width=lambda model: 2 * _num_features(model))
def cls_and_patch_mean(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """CLS token next to the mean of the patch tokens (Virchow's model card); register tokens are skipped."""
    prefix = getattr(model, "num_prefix_tokens", 1)
    return torch.cat([tokens[:, 0], tokens[:, prefix:].mean(dim=1)], dim=-1)
