"""The names the package writes and reads back, in one place: features, embedding layers, napari layer kinds."""

from __future__ import annotations

from enum import StrEnum

from .errors import PathsaeError

#: The store's embeddings of the encoder's output (its pooled token); "layer_L" are intermediate blocks.
POOLED = "pooled"
PATCH_TOKENS = "patch_tokens"


def feature_name(index: int) -> str:
    """How tables, layers and files name SAE feature ``index``: "f12"."""
    return f"f{int(index)}"


def feature_names(count: int) -> list[str]:
    return [feature_name(i) for i in range(count)]


def feature_index(name: str) -> int:
    """The index in a feature name ("f12" → 12)."""
    digits = str(name).strip().removeprefix("f")
    if not digits.isdigit():
        raise PathsaeError(f"{name!r} is not a feature name (f0, f1, …)")
    return int(digits)


def layer_embedding(block: int) -> str:
    """The store's name for the CLS token of encoder block ``block`` (1-based): "layer_6"."""
    return f"layer_{int(block)}"


def layer_block(name: str) -> int | None:
    """The block of a "layer_L" embedding name; None for "pooled" and patch tokens."""
    prefix, _, block = str(name).partition("_")
    return int(block) if prefix == "layer" and block.isdigit() else None


def embedding_name(given: str) -> str:
    """A user's ``--layer``: "pooled", "layer_6" or just "6"."""
    return given if given == POOLED or given.startswith("layer_") else f"layer_{given}"


class LayerKind(StrEnum):
    """What a napari layer is to the plugin (kept in ``layer.metadata["pathsae"]["kind"]`` and saved explorations)."""

    SLIDE = "slide"
    SPOTS = "spots"
    HEATMAP = "heatmap"
    PATCH_HEATMAP = "patch_heatmap"
    HEATMAPS = "heatmaps"  # the one layer that draws every selected feature
    CONCEPTS = "concepts"
    ARGMAX = "argmax"
    REGION = "region"
    TARGET = "target"


def layer_kind(layer) -> str | None:
    """What a napari layer is to the plugin ("slide", "spots", "heatmap", …), from its metadata; None if not ours."""
    return layer.metadata.get("pathsae", {}).get("kind")
