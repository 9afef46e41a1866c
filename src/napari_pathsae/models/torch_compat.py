"""Import timm next to a CPU-only torch whose torchvision wheel was built for CUDA.

PyPI's torchvision wheel registers fake kernels for its C++ ops at import time. When its
compiled extension cannot load next to a CPU build of torch, that registration fails with
``RuntimeError: operator torchvision::nms does not exist`` and so does ``import timm``.
Defining the schemas of the ops it registers first (``nms`` and ``qnms``) lets the pure-Python
parts of torchvision, and with them timm, import. This is applied only when that exact failure
happens; a working torchvision is never touched.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from types import ModuleType

_FAILURE = "operator torchvision::"
#: The ops torchvision's _meta_registrations calls register_fake on without checking they exist.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # keeps the torch.library.Library alive for the life of the process


def _define_missing_ops() -> None:
    global _library
    import torch

    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        with contextlib.suppress(RuntimeError):  # defined by an earlier call
            _library.define(schema)


def _forget(prefix: str) -> None:
    # list() copies sys.modules in one C call: iterating it directly raced with imports on other threads
    # ("dictionary changed size during iteration", seen when the warm-up ran beside a panel's import)
    for name in [n for n in list(sys.modules) if n == prefix or n.startswith(prefix + ".")]:
        sys.modules.pop(name, None)


def import_timm() -> ModuleType:
    """``import timm``, working around the CUDA-torchvision / CPU-torch failure when it occurs."""
    try:
        return importlib.import_module("timm")
    except RuntimeError as exc:
        if _FAILURE not in str(exc):
            raise
    _forget("torchvision")
    _forget("timm")
    _define_missing_ops()
    return importlib.import_module("timm")
