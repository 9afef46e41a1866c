"""Removing a layer that showed its legend does not crash napari (a real window, its own process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# napari 0.9.2 segfaulted at the first frame after such a removal when another layer remained
# (plugin/gl_context.py); the user's trash button and the painter both remove such layers.
SCRIPT = textwrap.dedent(
    """
    import time
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication
    from napari_pathsae.plugin.heatmap_layers import fade_colormap, show_legend
    from napari_pathsae.plugin.state import state_for

    def turn():
        for _ in range(3):
            QApplication.processEvents()
            time.sleep(0.02)

    viewer = napari.Viewer(show=True)
    state_for(viewer)  # what every panel does first
    viewer.add_image(np.zeros((2000, 2000, 3), np.uint8), rgb=True, name="slide")
    turn()
    for kind in ("image", "points", "labels", "image"):
        if kind == "image":
            layer = viewer.add_image(np.random.rand(50, 50).astype(np.float32), colormap=fade_colormap("cyan"))
        elif kind == "points":
            layer = viewer.add_points(np.random.rand(20, 2) * 1000, features={"v": np.arange(20.0)},
                                      face_color="v", face_colormap="viridis")
        else:
            layer = viewer.add_labels(np.arange(2500, dtype=np.int32).reshape(50, 50) % 7)
        turn()
        show_legend(layer, colorbar=kind != "labels")
        turn()
        viewer.layers.remove(layer)
        for step in range(5):  # pans: each a new frame
            viewer.camera.center = (0, 100.0 * step, 80.0 * step)
            turn()
    print("alive", len(viewer.layers))
    viewer.close()
    """
)


def test_removing_a_layer_with_its_legend_shown_keeps_napari_alive():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"napari died (exit {done.returncode}): {done.stderr[-2000:]}"
    assert done.stdout.strip().endswith("alive 1")
