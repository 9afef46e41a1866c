"""Where and in which precision an encoder runs, and whether the model hub can be reached at all."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import torch

from ...errors import PathsaeError


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """False when offline (HF_HUB_OFFLINE, or no DNS/TCP route), so nothing waits on retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


#: What ``--device`` and ``--dtype`` accept ("cuda:N" also picks a GPU through the API).
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def choose_device(requested: str = "auto") -> torch.device:
    """cuda → mps → cpu for "auto"; "cuda:N" picks a GPU; an unavailable explicit device is a user error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = requested.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise PathsaeError(f"--device {requested}: no CUDA GPU is available")
    if kind == "cuda" and index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise PathsaeError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PathsaeError("--device mps: Apple MPS is not available")
    if kind not in ("cpu", "cuda", "mps") or (index and kind != "cuda"):
        raise PathsaeError(f"unknown device {requested!r} ({', '.join(DEVICES[:-1])} or {DEVICES[-1]})")
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (elsewhere bf16 autocast is emulated and slower)."""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def choose_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """bf16 on CUDA GPUs that support it and on CPUs with native bf16; fp32 otherwise."""
    if requested != "auto":
        try:
            return getattr(torch, DTYPES[requested])
        except KeyError:
            raise PathsaeError(f"unknown dtype {requested!r} (auto, {', '.join(DTYPES)})") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32
