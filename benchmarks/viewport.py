"""Viewport speed: a cold full-HD view at 20x computed, and pans/zooms over cached heatmaps in napari.

Cold: a fresh store, ViT-S (random init) and a TopK SAE; the tiles of a 1920 x 1080 px view at
0.5 µm/px (20x) are computed nearest-first in the viewer's batches, through the same
``ExplorerSession.compute`` the viewport worker calls. Three views, each on tiles not computed
before, twice in one run: in this process with every core but one (the viewer before issue 17),
and through the viewer's worker process (which also leaves napari a core), on a second fresh store.

Cached (under Xvfb): napari shows the slide and a heatmap of that region; for each pan (50–400
screen px) or zoom (x1.25 or /1.25) the time from the camera change to the end of the next canvas
draw (the frame showing the heatmap at its new place) is recorded.

    xvfb-run -a python benchmarks/viewport.py [--no-viewer]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from measure import save
from synthetic_slide import slide_of_side

from napari_pathsae.data.viewport import tiles_in_view
from napari_pathsae.engine.session import ExplorerSession
from napari_pathsae.models.sae import SAEConfig, build_sae
from napari_pathsae.models.sae.formats import save_sae

VIEW_PX = (1080, 1920)  # screen px, one level-0 px (0.5 µm) each at 20x
BATCH = 16  # the viewport worker's CPU batch


def random_sae(directory: Path, d_in: int, expansion: int = 8, k: int = 32) -> Path:
    torch.manual_seed(0)
    return save_sae(build_sae(SAEConfig("topk", d_in, d_in * expansion, k=k)), directory, "pooled", {})


def view_box(centre_um: np.ndarray, mpp: float) -> np.ndarray:
    half = np.asarray(VIEW_PX) * mpp / 2
    return np.stack([centre_um - half, centre_um + half])


def cold_views(session: ExplorerSession, centres_um: list[np.ndarray]) -> list[dict]:
    """Each view computed from nothing, nearest tiles first, in the worker's batches."""
    results = []
    for centre in centres_um:
        tiles = tiles_in_view(session.grid_index, session.placement, view_box(centre, session.store.slide_mpp))
        start = time.perf_counter()
        first = None
        for begin in range(0, len(tiles), BATCH):
            session.compute(tiles[begin : begin + BATCH])
            first = first or time.perf_counter() - start
        results.append(
            {"tiles": len(tiles), "first_batch_s": round(first, 2), "all_s": round(time.perf_counter() - start, 2)}
        )
    return results


def cached_frames(
    session: ExplorerSession,
    slide_path: Path,
    centre_um: np.ndarray,
    moves: int,
    heatmaps: int = 1,
    separate: bool = False,
    colorbars: int = 1,
) -> dict:
    """Camera change → end of the next draw, for pans and zooms over computed tiles with ``heatmaps``
    features shown as the painter shows them (their layers, their names on the canvas, the first
    ``colorbars`` of them with a colorbar, one composite), or with ``separate`` full-grid layers, one
    per feature, as before issue 17 (napari, Xvfb)."""
    import napari
    from napari.layers import Layer
    from qtpy.QtWidgets import QApplication

    from napari_pathsae.io.slides import open_slide
    from napari_pathsae.plugin.heatmap_layers import (
        NOT_COMPUTED_RGBA,
        composite_rgba,
        heatmap_grid,
        heatmap_layer,
        heatmaps_layer,
        hue_rgba,
        show_legend,
    )
    from napari_pathsae.plugin.layers import slide_layer
    from napari_pathsae.plugin.painter import legend_colour
    from napari_pathsae.plugin.viewport_worker import camera_of

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1200)
    viewer.add_layer(Layer.create(*slide_layer(open_slide(slide_path))))
    colours = []
    for feature in range(heatmaps):
        grid = heatmap_grid(session, feature)
        data, kwargs, kind = heatmap_layer(session, feature, feature, grid)
        if separate:  # before issue 17: each feature's layer drew its own full grid
            data, kwargs = grid, {**kwargs, "scale": session.placement.scale()}
        layer = viewer.add_layer(Layer.create(data, kwargs, kind))
        show_legend(layer, legend_colour(layer), colorbar=feature < colorbars)
        colours.append(hue_rgba(grid, feature))
    if heatmaps and not separate:  # as the painter shows them: one composite draws every feature
        composite = viewer.add_layer(Layer.create(*heatmaps_layer(session, composite_rgba(colours))))
        show_legend(composite, NOT_COMPUTED_RGBA, colorbar=False)
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    draws: list[float] = []
    canvas.events.draw.connect(lambda _: draws.append(time.perf_counter()))
    camera = camera_of(viewer)
    camera.center, camera.zoom = (0, *centre_um), 1 / session.store.slide_mpp
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)

    def frame_ms(change) -> float:
        seen = len(draws)
        start = time.perf_counter()
        change()
        while len(draws) == seen and time.perf_counter() - start < 5:
            QApplication.processEvents()
        QApplication.processEvents()  # the draw's own event handling ends here
        return (time.perf_counter() - start) * 1000

    rng = np.random.default_rng(0)
    pans, zooms = [], []
    for i in range(moves):
        step = rng.uniform(50, 400, 2) * rng.choice([-1, 1], 2) / camera.zoom  # screen px → µm
        target = np.clip(np.asarray(camera.center[1:]) + step, centre_um - 200, centre_um + 200)
        pans.append(frame_ms(lambda target=target: setattr(camera, "center", (0, *target))))
        factor = 1.25 if i % 2 == 0 else 0.8
        zooms.append(frame_ms(lambda factor=factor: setattr(camera, "zoom", camera.zoom * factor)))
        time.sleep(0.03)
    viewer.close()

    def stats(values: list[float]) -> dict:
        v = np.asarray(values)
        return {"n": len(v), "p50_ms": round(float(np.percentile(v, 50)), 1),
                "p95_ms": round(float(np.percentile(v, 95)), 1), "max_ms": round(float(v.max()), 1)}  # fmt: skip

    return {"pan": stats(pans), "zoom": stats(zooms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="vit_small_patch16_224")
    parser.add_argument("--side", type=int, default=12288)
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--no-viewer", action="store_true", help="cold engine views only")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae-benchmarks"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.encoder, args.side, args.moves = "vit_tiny_patch16_224", 4096, 3
    args.work_dir.mkdir(parents=True, exist_ok=True)
    slide = slide_of_side(args.work_dir, args.side)
    store = args.work_dir / "viewport.zarr"
    shutil.rmtree(store, ignore_errors=True)
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, cores - 1))  # as the viewer's worker, in either process
    session = ExplorerSession.load(slide, store, args.encoder)
    sae = random_sae(args.work_dir / "viewport_sae", session.computer.encoder.width)
    session.attach_sae(sae)
    middle = args.side * session.store.slide_mpp / 2
    offsets = [(0, 0), (0, 1100), (700, -1100)] if not args.smoke else [(0, 0)]
    centres = [np.array([middle + dy, middle + dx]) for dy, dx in offsets]
    result = {"encoder": args.encoder, "torch_threads": torch.get_num_threads(),
              "device": str(session.encoder.device), "cold": cold_views(session, centres)}  # fmt: skip
    store_remote = args.work_dir / "viewport_worker.zarr"
    shutil.rmtree(store_remote, ignore_errors=True)
    remote = ExplorerSession.load(slide, store_remote, args.encoder, sae, worker_process=True)
    result["cold_worker_process"] = cold_views(remote, centres)
    remote.close()
    seconds = {key: sum(view["all_s"] for view in result[key]) for key in ("cold", "cold_worker_process")}
    result["worker_process_over_in_process"] = round(seconds["cold_worker_process"] / seconds["cold"], 3)
    if not args.no_viewer:
        result["cached"] = cached_frames(session, slide, centres[0], args.moves)
        result["cached_10_heatmaps"] = cached_frames(session, slide, centres[0], args.moves, heatmaps=10)
        result["cached_10_heatmaps_10_colorbars"] = cached_frames(session, slide, centres[0], args.moves, 10, False, 10)
        result["cached_10_separate_layers"] = cached_frames(session, slide, centres[0], args.moves, 10, True, 10)
        for key in ("cached_10_heatmaps", "cached_10_heatmaps_10_colorbars", "cached_10_separate_layers"):
            for stat in ("p50_ms", "p95_ms"):
                ratio = result[key]["pan"][stat] / result["cached"]["pan"][stat]
                result[f"pan_{stat[:3]}_{key.removeprefix('cached_')}_over_1"] = round(ratio, 3)
    session.close()
    save("viewport" + ("_smoke" if args.smoke else ""), result, args.out)


if __name__ == "__main__":
    main()
