"""How long the UI thread is held: by each click, and while viewport inference runs as the user pans (Xvfb).

A 5 ms heartbeat timer on the UI thread records every gap between its ticks (any stall, whoever
causes it) while the camera pans to a new part of the section every 0.4 s: napari alone, five
heatmaps while the worker process computes tiles into a fresh store, the same heatmaps cached, and
the three again beside one extra CPU-bound process (a busy machine; tiles computed into a second
fresh store, so it has as much to compute). Each click (Open, add a panel,
load, select 1 and 5 features, argmax, concepts, new region layer, export) is timed from its handler
to the event loop's next turn; the work it started in the background is timed apart. The Model panel
picked first in the Plugins menu of a fresh napari is timed too (first_panel.py, fresh interpreters), and
so are five features going down to one and back (a layer removed or added per turn), with the libraries
frozen out of napari's garbage collections (gc_freeze.py) and not.

With --diagnose, two more phases say what computing costs beyond napari alone (see ``diagnosis``).

The three phases (napari alone, computing, cached) are run in --rounds rounds on the idle and on the busy
machine (the first round is the run's own phases; each later one computes into a fresh store): p99 ratios vary
10-20% from one 16 s phase to the next, so the verdict is their median.

usage: python benchmarks/viewer_responsiveness.py WORK_DIR [--encoder E] [--moves N] [--diagnose] [--rounds R]
       [--out DIR]
       [--slide S --visium OUTS_OR_'' --mpp UM --tile-um UM --zoom Z]   (a held-out section; default her2st B4)
(WORK_DIR holds sae/ as the tests' her2st_model fixture makes it, trained on that encoder's embeddings)
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import first_panel
import napari
import numpy as np
import torch
from measure import save
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

import napari_pathsae.plugin.painter as painter_module
from napari_pathsae.plugin.painter import HeatmapPainter
from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.viewport_worker import ViewportWorker, camera_of
from napari_pathsae.plugin.widgets.feature_browser import FeatureBrowser
from napari_pathsae.plugin.widgets.model_panel import ModelPanel
from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

PLUGIN, MODEL = "napari-pathsae", "Model and inference"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_B4"
#: Where the pans go, as fractions of the slide's extent (rows, columns): on her2st B4, 2500-6000 µm by 1500-5500 µm.
PAN_AREA = ((0.365, 0.876), (0.234, 0.86))


@dataclass(frozen=True)
class Section:
    """What the journey opens and at which scale it looks (the default: her2st B4 and its spots)."""

    slide: Path = DATA / "B4_HE.jpg"
    visium: Path | None = DATA / "spaceranger_outs"
    mpp: float = 0.69  # 0: the slide's metadata
    tile_um: float = 112.0
    zoom: float = 1.5  # screen px per µm of the pans


SLOTS: dict[str, list[float]] = {
    "painter.refresh": [], "painter.paint": [], "painter.settle": [], "worker.request_view": [],
    "browser.show": [], "model_panel.tiles_computed": [],
}  # fmt: skip


def timed(owner, name: str, key: str) -> None:
    original = getattr(owner, name)

    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            SLOTS[key].append((time.perf_counter() - start) * 1000)

    setattr(owner, name, wrapper)


#: (end, ms) of every canvas draw (vispy's paintGL: napari's whole scene, under software GL the bulk of a frame).
FRAMES: list[tuple[float, float]] = []


def time_frames() -> None:
    from vispy.app.backends._qt import CanvasBackendDesktop

    original = CanvasBackendDesktop.paintGL

    def paint(self):
        start = time.perf_counter()
        try:
            return original(self)
        finally:
            FRAMES.append((time.perf_counter(), (time.perf_counter() - start) * 1000))

    CanvasBackendDesktop.paintGL = paint


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


class Heartbeat:
    """A 5 ms timer on the UI thread while in the ``with`` block: ``gaps`` holds every gap between its ticks (ms)."""

    def __init__(self):
        self.gaps: list[float] = []
        self._timer = QTimer()
        self._timer.timeout.connect(self._beat)

    def __enter__(self) -> Heartbeat:
        self._last = time.perf_counter()
        self._timer.start(5)
        return self

    def _beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000)
        self._last = now

    def __exit__(self, *_exc) -> None:
        self._timer.stop()
        self._beat()  # the time since the last tick is a gap too (a stall over a whole short phase leaves no tick)


def pan(viewer, state, seed: int, moves: int, computing: bool = False) -> dict:
    """Pan to ``moves`` random places 0.4 s apart, with a 5 ms UI-thread heartbeat; its gaps in ms.
    ``computing``: then on until the first tile arrives (a few pans can end before it; 40 never do)."""
    rng = np.random.default_rng(seed)
    camera = camera_of(viewer)
    low, high = np.asarray(viewer.layers.extent.world)[:, -2:]
    (row_from, row_to), (col_from, col_to) = (low[i] + np.asarray(PAN_AREA[i]) * (high[i] - low[i]) for i in (0, 1))
    before = int(state.session.activated().sum())
    start = time.perf_counter()
    with Heartbeat() as heartbeat:
        for _ in range(moves):
            camera.center = (0, float(rng.uniform(row_from, row_to)), float(rng.uniform(col_from, col_to)))
            pump(0.4)
        while computing and state.session.activated().sum() == before and time.perf_counter() - start < 120:
            pump(0.1)
    seconds = time.perf_counter() - start
    beats = np.asarray(heartbeat.gaps)
    frames = np.asarray([ms for end, ms in FRAMES if end >= start] or [0.0])
    computed = int(state.session.activated().sum()) - before
    return {
        "seconds": round(seconds, 1),
        "gap_p50_ms": round(float(np.percentile(beats, 50)), 1),
        "gap_p99_ms": round(float(np.percentile(beats, 99)), 1),
        "gap_max_ms": round(float(beats.max()), 1),
        "gaps_over_50ms": int((beats > 50).sum()),
        "ticks": len(beats),
        "frames": len(frames),
        "frame_p50_ms": round(float(np.percentile(frames, 50)), 1),
        "frame_p95_ms": round(float(np.percentile(frames, 95)), 1),
        "tiles_computed": computed,
        "tiles_per_s": round(computed / seconds, 1),
    }


def click_ms(action) -> float:
    """Time from a click's handler starting to the event loop's next turn (what the user feels)."""
    turned = []
    start = time.perf_counter()
    action()
    QTimer.singleShot(0, lambda: turned.append(time.perf_counter()))
    while not turned:
        QApplication.processEvents()
    return round((turned[0] - start) * 1000, 1)


def wait_for(condition, timeout: float = 300.0) -> float:
    """Pump events until ``condition()``; seconds waited (the background part of a click)."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the viewer did not finish in time")
        pump(0.02)
    return round(time.perf_counter() - start, 2)


def settling(state, features: list[int]) -> dict:
    """Select ``features`` and wait until their layers are in (one added or removed per turn): the seconds
    that took and the longest UI stall meanwhile (a 5 ms heartbeat)."""
    start = time.perf_counter()
    with Heartbeat() as heartbeat:
        state.select(features)
        wait_for(lambda: state.painter.settled)
    return {"seconds": round(time.perf_counter() - start, 2), "longest_stall_ms": round(max(heartbeat.gaps))}


def layer_turns(state) -> dict:
    """Five features down to one (four layers removed) and back (four added), with the libraries frozen out of
    napari's garbage collections (gc_freeze.py: as the plugin runs once its Model panel is built) and not."""
    state.select([0, 1, 2, 3, 4])
    wait_for(lambda: state.painter.settled)
    result = {}
    for frozen in (True, False):
        gc.freeze() if frozen else gc.unfreeze()
        key = "frozen" if frozen else "not_frozen"
        result[key] = {"5_to_1": settling(state, [0]), "1_to_5": settling(state, [0, 1, 2, 3, 4])}
    return result


def busy_process() -> subprocess.Popen:
    """One extra CPU-bound process: the 'busy machine' of the goals."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def pan_computing(viewer, model, store: Path, moves: int) -> dict:
    """Five heatmaps panned over the second set of places while their tiles compute into ``store`` (fresh)."""
    state = state_for(viewer)
    model.store.value = store  # tiles left to compute, as many as in the first computing phase
    session = state.session
    model.load_button.clicked()
    wait_for(lambda: state.session is not session)
    state.select([0, 1, 2, 3, 4])
    wait_for(lambda: state.painter.settled)
    state.worker.follow_view(True)
    try:
        return pan(viewer, state, 2, moves, computing=True)
    finally:
        state.worker.follow_view(False)
        state.worker.wait_idle()


def diagnosis(viewer, model, store: Path, moves: int) -> dict:
    """What the computing phase's extra cost is made of: the cores shared with a torch process (cached
    heatmaps beside a niced one-thread matmul loop), and the painter's repaints while the camera moves
    (computing with the moving throttle off)."""
    state, phases = state_for(viewer), {}
    loop = (
        "import os, torch; os.nice(10); torch.set_num_threads(1); a, w = torch.randn(4096, 192), torch.randn(192, 768)"
        "\nwhile True: (a @ w).relu_() @ w.T"
    )
    torch_process = subprocess.Popen([sys.executable, "-c", loop])
    try:
        time.sleep(3)  # torch imported, the loop running
        phases["cached_beside_niced_torch"] = pan(viewer, state, 1, moves)
    finally:
        torch_process.kill()
    throttle = painter_module.REFRESH_MOVING_MS
    painter_module.REFRESH_MOVING_MS = painter_module.REFRESH_MS
    try:
        phases["computing_unthrottled"] = pan_computing(viewer, model, store.with_name("unthrottled.zarr"), moves)
    finally:
        painter_module.REFRESH_MOVING_MS = throttle
    return phases


def another_round(viewer, model, store: Path, moves: int) -> dict:
    """napari alone, five heatmaps while their tiles compute into ``store`` (fresh), the same cached: p99 each."""
    state = state_for(viewer)
    state.select([])
    wait_for(lambda: state.painter.settled)
    phases = {"napari_alone": pan(viewer, state, 0, moves)}
    phases["heatmaps_while_computing"] = pan_computing(viewer, model, store, moves)
    phases["cached_heatmaps"] = pan(viewer, state, 2, moves)  # the places pan_computing went, now computed
    return {name: phase["gap_p99_ms"] for name, phase in phases.items()}


def ratios(rounds: list[dict]) -> dict:
    """The computing phase's p99 over napari alone and over the cached heatmaps: each round's, and their median."""
    each = {
        "over napari alone": [r["heatmaps_while_computing"] / r["napari_alone"] for r in rounds],
        "over cached heatmaps": [r["heatmaps_while_computing"] / r["cached_heatmaps"] for r in rounds],
    }
    return {key: {"rounds": [round(v, 2) for v in values], "median": round(float(np.median(values)), 2)}
            for key, values in each.items()}  # fmt: skip


def main(
    work: Path,
    encoder: str = "vit_tiny_patch16_224",
    moves: int = 40,
    diagnose: bool = False,
    section=Section(),
    rounds: int = 3,
) -> dict:
    timed(HeatmapPainter, "refresh_now", "painter.refresh")
    timed(HeatmapPainter, "paint", "painter.paint")
    timed(HeatmapPainter, "settle", "painter.settle")
    timed(FeatureBrowser, "_show", "browser.show")  # the UI-thread part of a refresh
    timed(ModelPanel, "_tiles_computed", "model_panel.tiles_computed")
    timed(ViewportWorker, "request_view", "worker.request_view")
    time_frames()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    clicks, background = {}, {}
    opener = OpenSampleWidget(viewer)
    opener.slide.value, opener.visium.value, opener.mpp.value = section.slide, section.visium, section.mpp
    clicks["open"] = click_ms(opener.open)
    background["open_s"] = wait_for(lambda: opener.open_button.enabled)
    shells = []  # (the panel's module is imported above: its dock builds it on the next turn)
    clicks["add_model_panel"] = click_ms(lambda: shells.append(viewer.window.add_plugin_dock_widget(PLUGIN, MODEL)[1]))
    background["add_model_panel_s"] = wait_for(lambda: shells[0].panel is not None)
    model = shells[0].panel
    browser, concepts, export = (
        viewer.window.add_plugin_dock_widget(PLUGIN, name)[1].panel_now()
        for name in ("Feature browser", "Concepts", "Region export")
    )
    model.reset_choices()
    store = Path(tempfile.mkdtemp()) / "fresh.zarr"
    model.encoder.value, model.sae_dir.value, model.store.value = encoder, work / "sae", store
    model.tile_um.value = section.tile_um
    model.follow_view.value = False
    state = state_for(viewer)
    clicks["load_model"] = click_ms(model.load_button.clicked)
    background["load_model_s"] = wait_for(lambda: state.session is not None)
    camera_of(viewer).zoom = section.zoom
    heartbeat = {"napari_alone": pan(viewer, state, 0, moves)}
    clicks["select_1_feature"] = click_ms(lambda: state.select([0]))
    background["select_1_feature_s"] = wait_for(lambda: state.painter.settled)  # its layers, one per turn
    clicks["select_5_features"] = click_ms(lambda: state.select([0, 1, 2, 3, 4]))
    background["select_5_features_s"] = wait_for(lambda: state.painter.settled)
    state.worker.follow_view(True)
    heartbeat["heatmaps_while_computing"] = pan(viewer, state, 1, moves, computing=True)
    state.worker.follow_view(False)
    state.worker.wait_idle()
    heartbeat["cached_heatmaps"] = pan(viewer, state, 1, moves)  # the same places, now computed
    first = ("napari_alone", "heatmaps_while_computing", "cached_heatmaps")
    p99 = {"idle": [{name: heartbeat[name]["gap_p99_ms"] for name in first}]}
    p99["idle"] += [another_round(viewer, model, store.with_name(f"idle{n}.zarr"), moves) for n in range(1, rounds)]
    hog = busy_process()
    try:
        state.select([])
        wait_for(lambda: state.painter.settled)
        heartbeat["busy_napari_alone"] = pan(viewer, state, 0, moves)
        heartbeat["busy_heatmaps_while_computing"] = pan_computing(viewer, model, store.with_name("busy.zarr"), moves)
        heartbeat["busy_cached_heatmaps"] = pan(viewer, state, 2, moves)  # the same places, now computed
        p99["busy"] = [{name: heartbeat[f"busy_{name}"]["gap_p99_ms"] for name in first}]
        p99["busy"] += [another_round(viewer, model, store.with_name(f"busy{n}.zarr"), moves) for n in range(1, rounds)]
    finally:
        hog.kill()
    if diagnose:
        heartbeat.update(diagnosis(viewer, model, store, moves))
    clicks["argmax"] = click_ms(browser.add_argmax_layer)
    background["argmax_s"] = wait_for(lambda: "pathsae argmax feature" in viewer.layers)
    clicks["concepts"] = click_ms(concepts.run)
    background["concepts_s"] = wait_for(lambda: concepts.run_button.enabled)
    clicks["new_region_layer"] = click_ms(export.add_region_layer)
    centre = np.asarray(camera_of(viewer).center[-2:])
    viewer.layers[export.shapes.value].add_rectangles(np.array([centre - 300, centre + 300]))
    export.output.value = store.parent / "region.csv"
    clicks["export"] = click_ms(export.export)
    background["export_s"] = wait_for(lambda: export.export_button.enabled)
    turns = layer_turns(state)
    ratio = {
        calm: round(heartbeat[computing]["gap_p99_ms"] / heartbeat[alone]["gap_p99_ms"], 2)
        for calm, computing, alone in (
            ("idle", "heatmaps_while_computing", "napari_alone"),
            ("idle, over cached heatmaps", "heatmaps_while_computing", "cached_heatmaps"),
            ("busy", "busy_heatmaps_while_computing", "busy_napari_alone"),
            ("busy, over cached heatmaps", "busy_heatmaps_while_computing", "busy_cached_heatmaps"),
        )
    }
    result = {
        "encoder": encoder,
        "section": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(section).items()},
        "worker_process": state.session.computer.remote is not None,
        "ui_torch_threads": torch.get_num_threads(),
        "heartbeat": heartbeat,
        "computing_p99_over_napari_alone": ratio,
        "p99_rounds_ms": p99,
        "computing_p99_ratio_over_rounds": {load: ratios(p99[load]) for load in p99},
        "click_to_next_turn_ms": clicks,
        "background_s": background,
        "layer_turns": turns,
        "model_panel_picked_first": first_panel.main((MODEL,))[MODEL],
        "plugin_slots_ms": {key: summary(v) for key, v in SLOTS.items()},
    }
    state.close()
    viewer.close()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a folder holding sae/ (the tests' her2st_model fixture)")
    parser.add_argument("--encoder", default="vit_tiny_patch16_224")
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--diagnose", action="store_true", help="also: beside a torch process; repaints unthrottled")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the heartbeat's three phases, idle and busy")
    default = Section()
    parser.add_argument("--slide", type=Path, default=default.slide, help="another section (held out)")
    parser.add_argument("--visium", type=Path, default=default.visium, help="its Visium outs/ ('' for none)")
    parser.add_argument("--mpp", type=float, default=default.mpp, help="its µm/px (0: the file's metadata)")
    parser.add_argument("--tile-um", type=float, default=default.tile_um)
    parser.add_argument("--zoom", type=float, default=default.zoom, help="screen px per µm during the pans")
    args = parser.parse_args()
    visium = args.visium if args.visium and str(args.visium) != "." else None  # ("" parses as Path("."))
    section = Section(args.slide, visium, args.mpp, args.tile_um, args.zoom)
    result = main(args.work, args.encoder, args.moves, args.diagnose, section, max(args.rounds, 1))
    save("viewer_responsiveness", result, args.out)
