"""The benchmarks run end to end on tiny inputs (what CI checks; the numbers come from full runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from napari_pathsae.models.sae.train import auto_width

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def smoke(script: str, tmp_path: Path, *extra: str) -> dict:
    command = [sys.executable, str(BENCHMARKS / script), "--smoke", "--work-dir", str(tmp_path), "--out", str(tmp_path)]
    done = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    name = script.removesuffix(".py") + "_smoke.json"
    return json.loads((tmp_path / name).read_text())


def test_synthetic_slide_is_a_jpeg_pyramid_of_real_tissue(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from synthetic_slide import BLOCK, build_slide, tissue_blocks
    finally:
        sys.path.remove(str(BENCHMARKS))
    from napari_pathsae import open_slide

    info = build_slide(tmp_path / "s.tif", 8192)
    slide = open_slide(tmp_path / "s.tif")
    assert info["levels"] == [8192, 2048] and slide.pyramid == "file" and slide.mpp == 0.5
    assert slide.level_shapes == [(8192, 8192, 3), (2048, 2048, 3)]
    first = np.asarray(slide.levels[0][:BLOCK, :BLOCK]).astype(int)
    assert np.abs(first - tissue_blocks()[0]).mean() < 2  # JPEG round trip of the her2st crop


def test_pipeline_efficiency_smoke(tmp_path):
    run = smoke("pipeline_efficiency.py", tmp_path)["runs"][0]
    assert run["tiles"] > 100 and run["device"] == "cpu"
    assert 0 < run["efficiency_in_run"] < 2 and 0 < run["efficiency_whole_process"] <= run["efficiency_in_run"] * 1.05


def test_sae_training_smoke(tmp_path):
    result = smoke("sae_training.py", tmp_path)
    assert result["training"]["d_sae"] == 384 * 8 and result["training"]["inputs_per_s"] > 0
    assert 0 < result["training"]["flop_utilisation"] < 1.5
    assert result["encoding"]["embeddings"] == 8192


def test_scaling_smoke(tmp_path):
    result = smoke("scaling.py", tmp_path)
    sizes = result["by_slide_size"]
    assert [s["side_px"] for s in sizes] == [2048, 4096] and sizes[1]["tiles"] > sizes[0]["tiles"] > 0
    assert result["dask"]["1_workers"]["tiles"] == result["dask"]["2_workers"]["tiles"] == 2 * sizes[0]["tiles"]


def test_open_large_slide_smoke(tmp_path):
    result = smoke("open_large_slide.py", tmp_path)
    assert result["tissue_tiles"] > 0 and set(result["steps"]) >= {"open_slide", "tissue_grid_112um"}


def test_viewport_smoke(tmp_path):
    result = smoke("viewport.py", tmp_path)
    assert result["cold"][0]["tiles"] > 0 and result["cold"][0]["all_s"] >= result["cold"][0]["first_batch_s"]
    assert result["cold_worker_process"][0]["tiles"] == result["cold"][0]["tiles"]
    assert result["worker_process_over_in_process"] > 0
    assert (
        result["cached_10_heatmaps"]["pan"]["n"] == 3
        and result["pan_p95_10_heatmaps_over_1"] > 0 < result["pan_p95_10_separate_layers_over_1"]
    )
    assert result["cached"]["pan"]["n"] == 3 and result["cached"]["zoom"]["p95_ms"] > 0


def test_panel_training_smoke(tmp_path):
    result = smoke("panel_training.py", tmp_path)
    panel, cli = result["runs"]["panel_defaults"], result["runs"]["cli_defaults"]
    assert result["tiles"] > 20 and panel["trained_width"] == 192 * 4
    assert cli["trained_width"] == auto_width(result["tiles"], 192)  # the width from the data
    for run in (panel, cli):  # latents that never fired are removed: none is dead on the training tiles
        assert 0 < run["d_sae"] <= run["trained_width"] and run["dead_fraction"] == 0 and run["steps"] >= 1000


def test_viewer_responsiveness_smoke(her2st_model, tmp_path):
    """Clicks and heartbeat phases in a real window on the her2st section, two pans each (CI runs it under Xvfb)."""
    command = [sys.executable, str(BENCHMARKS / "viewer_responsiveness.py"), str(her2st_model), "--moves", "2"]
    command += ["--diagnose", "--rounds", "2"]  # its two extra phases run too, and a second round of three
    done = subprocess.run([*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "viewer_responsiveness.json").read_text())
    assert result["worker_process"] and set(result["click_to_next_turn_ms"]) == {
        "open", "add_model_panel", "load_model", "select_1_feature", "select_5_features", "argmax", "concepts",
        "new_region_layer", "export",
    }  # fmt: skip
    first = result["model_panel_picked_first"]  # the Plugins menu's shell, and the panel built in the click
    assert first["plugins_menu"]["ready_s"] > 0 and first["ui_thread_import"]["click_ms"] > 0
    heartbeat = result["heartbeat"]
    assert heartbeat["heatmaps_while_computing"]["tiles_computed"] > 0
    assert {"computing_unthrottled", "cached_beside_niced_torch"} <= set(heartbeat)  # (two pans: too short to compute)
    assert all(phase["gap_p99_ms"] > 0 for phase in result["heartbeat"].values())
    assert "busy_cached_heatmaps" in heartbeat and set(result["layer_turns"]) == {"frozen", "not_frozen"}
    over_rounds = result["computing_p99_ratio_over_rounds"]
    assert {load: len(r["over cached heatmaps"]["rounds"]) for load, r in over_rounds.items()} == {"idle": 2, "busy": 2}
    assert all(turn["longest_stall_ms"] > 0 for turns in result["layer_turns"].values() for turn in turns.values())


def test_feature_table_smoke(tmp_path):
    """The browser's refresh, sort and search with a stand-in SAE, in a real window (CI runs it under Xvfb)."""
    command = [sys.executable, str(BENCHMARKS / "feature_table.py"), "--features", "64", "--tiles", "500"]
    done = subprocess.run([*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "feature_table.json").read_text())
    assert result["features"] == 64 and set(result["median_ms"]) == {
        "statistics_worker_thread", "show_ui_thread", "sort", "search"}  # fmt: skip


def test_cohort_scale_smoke(tmp_path):
    result = smoke("cohort_scale.py", tmp_path)
    run = result["runs"][0]
    assert run["tiles"] == 20_000 and run["slides"] == 4 and result["features"] == 96
    assert run["planted_rank_for_target"] == 1 and run["planted_rho"] > 0.9  # the planted slide-level feature
    assert "atlas of 10 features" in run["atlas_line"] and run["index_peak_rss_mb"] > 0


def test_cohort_embed_smoke(tmp_path):
    result = smoke("cohort_embed.py", tmp_path)
    half, every, two = result["1_worker_half"], result["1_worker_all"], result["2_workers"]
    assert half["tiles"] == every["tiles"] == two["tiles"] > 0 and two["workers"] == 2
    assert half["cores"] <= every["cores"] and result["speedup_2_over_1"] > 0 and result["speedup_2_over_1_all"] > 0
