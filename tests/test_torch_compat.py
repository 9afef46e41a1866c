"""timm imports and runs next to the CPU torch of this environment (compat applied only if needed)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, torch
try:
    importlib.import_module("torchvision")
    needed = False
except RuntimeError as exc:
    needed = "operator torchvision::" in str(exc)
from napari_pathsae.models.torch_compat import import_timm
timm = import_timm()
model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
with torch.no_grad():
    out = model(torch.zeros(2, 3, 224, 224))
print(needed, tuple(out.shape))
"""


def test_timm_vit_runs_after_import_timm():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    needed, shape = result.stdout.split(maxsplit=1)
    assert shape.strip() == "(2, 192)"
    assert needed in (
        "True",
        "False",
    )  # True on this project's CPU machines, False with a matching build


def test_forgetting_modules_while_another_thread_imports():
    """The warm-up thread forgets torchvision/timm while a panel's import adds modules on another thread."""
    import threading
    import types

    from napari_pathsae.models.torch_compat import _forget

    stop, errors = threading.Event(), []

    def importing() -> None:
        i = 0
        while not stop.is_set():
            sys.modules[f"pathsae_race_other_{i % 50}"] = types.ModuleType("other")
            sys.modules.pop(f"pathsae_race_other_{(i + 25) % 50}", None)
            i += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    thread = threading.Thread(target=importing)
    thread.start()
    try:
        for i in range(300):
            sys.modules[f"pathsae_race.m{i}"] = types.ModuleType("forgotten")
            try:
                _forget("pathsae_race")
            except RuntimeError as exc:  # "dictionary changed size during iteration"
                errors.append(str(exc))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
        for name in [n for n in list(sys.modules) if n.startswith("pathsae_race")]:
            sys.modules.pop(name, None)
    assert errors == [] and not [n for n in list(sys.modules) if n.startswith("pathsae_race.")]
