"""Image encoders: presets as data, model builders and poolings as registries, one job per file.

- ``presets.py``: ``EncoderPreset`` and ``PRESETS``, what each known foundation model is.
- ``builders.py``: the builder registry (``@register_builder``); ``loading.py`` registers timm.
- ``poolings.py``: the pooling registry (``@register_pooling``), each with its width rule.
- ``device.py``: device and dtype choice; ``encoder.py``: the loaded ``Encoder``.
- ``loading.py``: checkpoints (weights only) and ``load_encoder(spec)``.
- one file per further model family (``mean_rgb.py``), imported below so it registers.
"""

from __future__ import annotations

from . import mean_rgb  # noqa: F401  (registers the mean-rgb builder and preset)
from .builders import BUILDERS, ModelBuilder, get_builder, register_builder
from .device import choose_device, choose_dtype, cpu_has_native_bf16, hub_reachable
from .encoder import Encoder
from .loading import CHECKPOINT_SUFFIXES, load_encoder, weights_hash
from .poolings import POOLINGS, Pooling, get_pooling, register_pooling
from .presets import IMAGENET, PRESETS, EncoderPreset, register_preset

__all__ = [
    "BUILDERS",
    "CHECKPOINT_SUFFIXES",
    "IMAGENET",
    "POOLINGS",
    "PRESETS",
    "Encoder",
    "EncoderPreset",
    "ModelBuilder",
    "Pooling",
    "choose_device",
    "choose_dtype",
    "cpu_has_native_bf16",
    "get_builder",
    "get_pooling",
    "hub_reachable",
    "load_encoder",
    "register_builder",
    "register_pooling",
    "register_preset",
    "weights_hash",
]
