"""How long the UI thread is held while viewport inference runs and the user pans (run under Xvfb).

A 5 ms heartbeat timer on the UI thread records every gap between its ticks (any stall, whoever
causes it), and the plugin's own UI-thread slots (heatmap refresh, view request, feature selection)
are timed directly. The camera pans to a new part of the section every 0.4 s while the worker
computes tiles into a fresh store.

usage: python benchmarks/viewer_responsiveness.py WORK_DIR [ENCODER]
(WORK_DIR holds sae/ as the tests' her2st_model fixture makes it, trained on that encoder's embeddings)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import torch
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_pathsae.plugin.painter import HeatmapPainter
from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.viewport_worker import ViewportWorker, camera_of
from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_B4"
SLOTS: dict[str, list[float]] = {"painter.refresh_one_layer": [], "worker.request_view": [], "painter.paint": []}


def timed(owner, name: str, key: str) -> None:
    original = getattr(owner, name)

    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            SLOTS[key].append((time.perf_counter() - start) * 1000)

    setattr(owner, name, wrapper)


def pump(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.001)


def summary(values: list[float]) -> dict:
    v = np.asarray(values or [0.0])
    return {
        "calls": len(values),
        "mean": round(float(v.mean()), 2),
        "max": round(float(v.max()), 2),
        "last": round(float(v[-1]), 2),
    }


def pan(viewer, follow, moves: int = 40) -> dict:
    """Pan to ``moves`` random places 0.4 s apart, with a 5 ms UI-thread heartbeat; its gaps in ms."""
    gaps: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    heartbeat = QTimer()
    heartbeat.timeout.connect(beat)
    heartbeat.start(5)
    rng = np.random.default_rng(0 if follow is None else 1)
    camera = camera_of(viewer)
    before = 0 if follow is None else int(follow.session.computer.activated().sum())
    start = time.perf_counter()
    for _ in range(moves):
        camera.center = (0, float(rng.uniform(2500, 6000)), float(rng.uniform(1500, 5500)))
        pump(0.4)
    seconds = time.perf_counter() - start
    heartbeat.stop()
    beats = np.asarray(gaps[1:])
    result = {
        "seconds": round(seconds, 1),
        "gap_p50_ms": round(float(np.percentile(beats, 50)), 1),
        "gap_p99_ms": round(float(np.percentile(beats, 99)), 1),
        "gap_max_ms": round(float(beats.max()), 1),
        "gaps_over_50ms": int((beats > 50).sum()),
        "ticks": len(beats),
    }
    if follow is not None:
        computed = int(follow.session.computer.activated().sum()) - before
        result.update(tiles_computed=computed, tiles_per_s=round(computed / seconds, 1))
    return result


def main(work: Path, encoder: str = "vit_tiny_patch16_224") -> dict:
    timed(HeatmapPainter, "_refresh_next", "painter.refresh_one_layer")
    timed(HeatmapPainter, "paint", "painter.paint")
    timed(ViewportWorker, "request_view", "worker.request_view")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    opener = OpenSampleWidget(viewer)
    opener.slide.value, opener.visium.value, opener.mpp.value = DATA / "B4_HE.jpg", DATA / "spaceranger_outs", 0.69
    opener.open()
    _, model = viewer.window.add_plugin_dock_widget("napari-pathsae", "Model and inference")
    model.reset_choices()
    store = Path(tempfile.mkdtemp()) / "fresh.zarr"
    model.encoder.value, model.sae_dir.value, model.store.value = encoder, work / "sae", store
    model.follow_view.value = False
    state = state_for(viewer)
    model.load_button.clicked()
    while state.session is None:
        pump(0.05)
    worker = state.worker
    state.select([0, 1, 2])  # three heatmaps refilled on every batch
    camera_of(viewer).zoom = 1.5
    baseline = pan(viewer, follow=None)
    worker.follow_view(True)
    computing = pan(viewer, follow=state)
    worker.follow_view(False)
    state.select([3, 4, 5])  # a new selection reuses the three heatmap layers
    result = {
        "encoder": encoder,
        "torch_threads": torch.get_num_threads(),
        "panning_only": baseline,
        "panning_while_computing": computing,
        "plugin_slots_ms": {key: summary(v) for key, v in SLOTS.items()},
    }
    state.close()
    viewer.close()
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), *sys.argv[2:]), indent=1))
