"""Model builders: one per model family (timm today), chosen by a preset's ``builder`` name.

A family that is not timm is one new file in this folder: a ``ModelBuilder`` subclass decorated with
``@register_builder(name)`` plus its presets (``register_preset``), imported once by ``__init__.py``.

What ``Encoder`` asks of the module a builder returns (timm's ViT interface, so timm models need nothing):
``forward_features(x)`` → tokens (N, T, D) with ``num_prefix_tokens`` leading ones, ``num_features`` (D),
and whatever the preset's pooling uses (``forward_head`` for "model"); ``forward_intermediates`` and
``blocks`` only for ``--layers``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...errors import PathsaeError


class ModelBuilder:
    """How one model family is built: by name, with fresh weights, or with its pretrained ones."""

    name: str = ""

    def knows(self, source: str) -> bool:
        """Whether ``source`` (an architecture or weights id) names a model of this family."""
        raise NotImplementedError

    def create(self, architecture: str, kwargs: dict) -> torch.nn.Module:
        """The model with fresh weights from torch's RNG (the caller seeds it); PathsaeError if it cannot be built."""
        raise NotImplementedError

    def pretrained(self, source: str, kwargs: dict) -> torch.nn.Module | None:
        """The model with its published weights (hub or local cache); None when they are unavailable."""
        raise NotImplementedError


BUILDERS: dict[str, ModelBuilder] = {}


def register_builder(name: str) -> Callable[[type[ModelBuilder]], type[ModelBuilder]]:
    """Class decorator: registers one instance of the builder under ``name``."""

    def decorate(cls: type[ModelBuilder]) -> type[ModelBuilder]:
        if name in BUILDERS:
            raise ValueError(f"encoder builder {name!r} is already registered")
        builder = cls()
        builder.name = name
        BUILDERS[name] = builder
        return cls

    return decorate


def get_builder(name: str) -> ModelBuilder:
    """The builder registered as ``name``; an unknown name is a user error naming the known ones."""
    try:
        return BUILDERS[name]
    except KeyError:
        raise PathsaeError(f"unknown encoder builder {name!r} ({', '.join(BUILDERS)})") from None
