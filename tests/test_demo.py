"""The README's first command: `pathsae demo --screenshot` runs the main job and shows painted features."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from napari_pathsae.plugin.demo import DEMO_CACHE


def yellowish(rgb: np.ndarray) -> np.ndarray:
    """Pixels the first heatmap's yellow makes over the tissue (H&E is pink, purple and white: blue is
    never far below red and green there)."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (g > 100) & (b < 0.6 * g) & (b < 0.6 * r)


def test_demo_trains_on_the_sample_and_paints_its_features(tmp_path):
    shot = tmp_path / "demo.png"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # a first run: nothing cached
    done = subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", "demo", "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"screenshot: {shot}"
    assert "Traceback" not in done.stderr and "QOpenGLContext" not in done.stderr
    cache = tmp_path / "cache" / "napari-pathsae" / DEMO_CACHE
    assert (cache / "sae" / "cfg.json").is_file() and (cache / "skin.zarr.exploration" / "sae").is_dir()
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1080, 1920)  # every panel docked, on a full-HD screen
    assert yellowish(pixels).sum() > 10_000  # the first feature is painted over the tissue … (79,000 seen)
    pink = (pixels[..., 0] > 150) & (pixels[..., 1] < 120) & (pixels[..., 2] > 120)  # eosin
    assert pink.mean() > 0.01  # … and leaves the tissue to be seen (1.3%; three broad features hid it: 0.7%)
    from napari_pathsae import open_slide
    from napari_pathsae.plugin.sample_data import SKIN_SLIDE

    assert yellowish(np.asarray(open_slide(SKIN_SLIDE).levels[0])).sum() < 100  # … never yellow itself (3 of 6.6 M)
