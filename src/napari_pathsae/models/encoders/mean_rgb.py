"""``mean-rgb``: a toy, weight-free encoder (mean colour of the tile and of a grid of cells).

It exists for fast tests and smoke runs: it builds instantly, needs no network or timm, and its
output is predictable (a uniform tile embeds as its own colour). It is also the smallest example of
a model family that is not timm: a module, a builder and a preset, all in this one file.
"""

from __future__ import annotations

import torch

from .builders import ModelBuilder, register_builder
from .presets import EncoderPreset, register_preset


class MeanRGB(torch.nn.Module):
    """Tokens (N, 1 + grid², 3): the tile's mean colour (the CLS-like prefix token), then each cell's."""

    num_features = 3
    num_prefix_tokens = 1

    def __init__(self, grid: int = 4) -> None:
        super().__init__()
        self.grid = grid
        self.blocks = torch.nn.ModuleList()  # no transformer blocks: depth 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        cells = torch.nn.functional.adaptive_avg_pool2d(x, self.grid).flatten(2).transpose(1, 2)
        return torch.cat([x.mean(dim=(2, 3)).unsqueeze(1), cells], dim=1)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return tokens[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_builder("mean-rgb")
class MeanRGBBuilder(ModelBuilder):
    """Builds ``MeanRGB``; it has no weights, so "pretrained" is the model itself (never a random init)."""

    def knows(self, source: str) -> bool:
        return source == "mean-rgb"

    def create(self, architecture: str, kwargs: dict) -> torch.nn.Module:
        return MeanRGB(**kwargs)

    def pretrained(self, source: str, kwargs: dict) -> torch.nn.Module | None:
        return MeanRGB(**kwargs)


# Mean 0 and std 1 keep colours in [0, 1], so embeddings read as RGB fractions.
register_preset(
    "mean-rgb",
    EncoderPreset("mean-rgb", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), builder="mean-rgb"),
)
