"""The CLI contract end to end on the real HER2+ section, with a planted gene; and scale-out on a LocalCluster."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import HER2ST_HE, HER2ST_OUTS, SVS
from napari_pathsae.data.store import TileStore
from napari_pathsae.io.visium import read_positions
from planting import spot_saturation, write_planted_outs

ENCODER = ["--encoder", "vit_tiny_patch16_224"]


def pathsae(*args) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    """The her2st B4 section embedded at 112 µm tiles, an SAE trained and applied, a planted gene."""
    work = tmp_path_factory.mktemp("e2e")
    signal = spot_saturation(HER2ST_HE, HER2ST_OUTS)
    write_planted_outs(HER2ST_OUTS, work / "planted", signal)
    transposed = write_planted_outs(HER2ST_OUTS, work / "transposed", signal)
    positions = read_positions(transposed / "spatial").reset_index()
    positions[["pxl_row_in_fullres", "pxl_col_in_fullres"]] = positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]]
    positions.to_csv(transposed / "spatial" / "tissue_positions.csv", index=False)
    embed = pathsae("embed", HER2ST_HE, "-o", work / "b4.zarr", *ENCODER, "--slide-mpp", "0.69", "--batch-size", "64")
    train = pathsae("train", work / "b4.zarr", "-o", work / "sae", "--arch", "topk", "--expansion", "8", "--k", "16")
    pathsae("encode", work / "b4.zarr", "--sae", work / "sae")
    return work, embed, train


def top_r(table: pd.DataFrame, gene: str) -> float:
    return float(table[table.gene == gene].r.max())


def test_embed_and_train_report_one_summary_line(section):
    work, embed, train = section
    store = TileStore.open(work / "b4.zarr")
    assert embed.stdout.count("\n") == 1
    assert f"{store.n_tiles} tiles" in embed.stdout and "tiles/s" in embed.stdout and "device cpu" in embed.stdout
    assert "RANDOM init" in embed.stderr  # said loudly, once
    assert "of 1536 never fired: removed" in train.stdout and "FVU" in train.stdout and "dead 0.0%" in train.stdout
    kept = int(re.search(r"topk SAE, (\d+) features", train.stdout).group(1))
    assert 100 < kept < 1536
    assert store.activation_names() == ["sae"] and store.activations().shape == (store.n_tiles, kept)
    assert (work / "sae" / "sparsity.safetensors").is_file()


def test_planted_gene_comes_back_as_the_top_correlated_gene(section):
    work, _, _ = section
    pathsae("correlate", work / "b4.zarr", "--visium", work / "planted", "-o", work / "corr.csv")
    table = pd.read_csv(work / "corr.csv")
    assert {"feature", "gene", "r", "p", "q"} <= set(table.columns)
    best = table.groupby("gene").r.max().sort_values(ascending=False)
    assert best.index[0] == "PLANTED1" and best.iloc[0] > 0.6, best.head()
    assert table[(table.gene == "PLANTED1") & (table.rank_in_gene == 1)].q.iloc[0] < 1e-10


def test_transposed_coordinates_lose_the_planted_gene(section):
    work, _, _ = section
    pathsae("correlate", work / "b4.zarr", "--visium", work / "planted", "-o", work / "c1.csv", "--genes", "PLANTED1")
    pathsae(
        "correlate", work / "b4.zarr", "--visium", work / "transposed", "-o", work / "c2.csv", "--genes", "PLANTED1"
    )
    aligned, transposed = (
        top_r(pd.read_csv(work / "c1.csv"), "PLANTED1"),
        top_r(pd.read_csv(work / "c2.csv"), "PLANTED1"),
    )
    assert aligned > 0.6 and transposed < aligned - 0.25, (aligned, transposed)


def discoveries(stdout: str) -> dict[str, int]:
    found = re.search(r"naive Pearson (\d+), naive Spearman (\d+), spatial (\d+)", stdout)
    return dict(zip(("pearson", "spearman", "spatial"), map(int, found.groups()), strict=True))


def test_the_spatial_test_survives_a_null_and_keeps_the_planted_gene(section):
    work, _, _ = section
    real = pathsae("correlate", work / "b4.zarr", "--visium", work / "planted", "-o", work / "real.csv")
    table = pd.read_csv(work / "real.csv")
    assert {"n_eff", "p_spatial", "q_spatial", "spearman_r_bound"} <= set(table.columns)
    best = table[table.rank_in_feature == 1].sort_values("spearman_r_bound", ascending=False)
    assert best.gene.iloc[0] == "PLANTED1", best.head()
    planted = table[(table.gene == "PLANTED1") & (table.rank_in_gene == 1)].iloc[0]
    assert planted.q_spatial < 0.01 and planted.n_eff < planted.n_spots  # 8e-4 with vit_tiny, 8e-8 vit_small
    for null in ("transpose", "rotate", "shuffle-blocks"):
        run = pathsae(
            "correlate", work / "b4.zarr", "--visium", work / "planted", "-o", work / f"{null}.csv", "--null", null
        )
        counts = discoveries(run.stdout)
        assert run.stdout.startswith(f"null {null}: ") and "every discovery is false" in run.stdout
        assert counts["spatial"] <= min(5, counts["spearman"]) and counts["pearson"] > 20 * max(1, counts["spatial"])
        nulled = pd.read_csv(work / f"{null}.csv")
        assert nulled[nulled.gene == "PLANTED1"].q_spatial.min() > 0.05
    assert discoveries(real.stdout)["spatial"] > 10


def test_report_card_with_a_second_seed_and_the_section_biology(section):
    work, _, _ = section
    pathsae("train", work / "b4.zarr", "-o", work / "sae_seed1", "--expansion", "8", "--k", "16", "--seed", "1")
    out = pathsae(
        "report", work / "sae", "--store", work / "b4.zarr", "--visium", work / "planted",
        "--other-sae", work / "sae_seed1", "-o", work / "report",
    )  # fmt: skip
    summary = json.loads((work / "report" / "report.json").read_text())
    for key in ("explained_variance", "mse", "l0", "dead_fraction", "dense_fraction", "l2_ratio", "stability"):
        assert key in summary, key
    assert 0.9 < summary["explained_variance"] <= 1 and summary["dead_fraction"] == 0 and summary["l0"] == 16
    stability = summary["stability"]
    assert 0 < stability["stable_features"] <= stability["features_compared"] and stability["median_r"] > 0.5
    assert summary["biology"]["top"][0]["gene"] == "PLANTED1"
    assert summary["biology"]["features_with_spatial_gene"] < summary["biology"]["features_with_naive_gene"]
    features = pd.read_csv(work / "report" / "features.csv")
    assert len(features) == summary["n_features"] and {"density", "stability_r", "best_gene_gene"} <= set(features)
    assert (work / "report" / "report.png").stat().st_size > 20_000
    assert (work / "sae" / "stability.csv").is_file() and f"{stability['stable_features']} of" in out.stdout
    from napari_pathsae.engine.session import read_stability
    from napari_pathsae.models.sae.formats import sae_weights_sha256

    read = read_stability(work / "sae", sae_weights_sha256(work / "sae"))  # what the feature browser shows
    assert int(read.stable.sum()) == stability["stable_features"]
    assert read_stability(work / "sae", "other weights") is None  # a replaced SAE: not shown
    again = subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", "report", work / "sae", "--store", work / "b4.zarr",
         "-o", work / "report"], capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "exists" in again.stderr


def test_export_region_and_spots(section):
    work, _, _ = section
    store = TileStore.open(work / "b4.zarr")
    x0, y0 = store.coords.min(axis=0)
    pathsae("export", work / "b4.zarr", "-o", work / "region.parquet", "--bbox", x0, y0, x0 + 2000, y0 + 2000)
    region = pd.read_parquet(work / "region.parquet")
    centres = region[["x", "y"]].to_numpy() + store.tile_side0 / 2
    assert len(region) > 0 and (centres < [x0 + 2000, y0 + 2000]).all()
    features = region.filter(regex=r"^f\d+$").to_numpy()
    np.testing.assert_allclose(features, store.activations().oindex[region.tile.to_numpy(), :])
    pathsae(
        "export",
        work / "b4.zarr",
        "-o",
        work / "spots.csv",
        "--visium",
        work / "planted",
        "--genes",
        "PLANTED1",
        "ERBB2",
    )
    spots = pd.read_csv(work / "spots.csv")
    assert len(spots) == 283 and {"gene_PLANTED1", "gene_ERBB2", "f0"} <= set(spots.columns)
    result = subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", "export", work / "b4.zarr", "-o", work / "spots.csv"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1 and "exists" in result.stderr


def test_two_slides_on_a_two_worker_local_cluster(tmp_path):
    single = tmp_path / "single.zarr"
    pathsae("embed", SVS, "-o", single, *ENCODER)
    copy = tmp_path / "second_section.svs"
    shutil.copy(SVS, copy)
    out = pathsae("embed", SVS, copy, "-o", tmp_path / "many", *ENCODER, "--workers", "2")
    assert out.stdout.count("tiles/s") == 2
    reference = TileStore.open(single).embeddings()[:]
    for name in ("cmu_small_region.zarr", "second_section.zarr"):
        store = TileStore.open(tmp_path / "many" / name)
        assert (
            store.complete
            and store.provenance["encoder"]["weights_sha256"]
            == TileStore.open(single).provenance["encoder"]["weights_sha256"]
        )
        np.testing.assert_allclose(store.embeddings()[:], reference, atol=2e-3)


@pytest.mark.parametrize("command", ["train", "embed"])
def test_a_file_given_as_a_store_is_named_and_kept(tmp_path, command):
    """A tired user points at their notes instead of the store (to read, or to embed into): one line says so,
    before the model loads (no random-weights note first), and the file is left as it was."""
    notes = tmp_path / "notes.zarr"
    notes.write_text("my notes")
    args = {
        "train": ["train", str(notes), "-o", str(tmp_path / "sae")],
        "embed": ["embed", str(SVS), "-o", str(notes), "--encoder", "vit_tiny_patch16_224"],
    }[command]
    result = subprocess.run([sys.executable, "-m", "napari_pathsae.cli", *args], capture_output=True, text=True,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and result.stderr.strip().endswith("is a file, not a store (a store is a folder)")
    assert result.stderr.count("\n") == 1 and notes.read_text() == "my notes" and not (tmp_path / "sae").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "missing.svs", "-o", "x.zarr"], "no such slide"),
        (["embed", str(SVS), "-o", "x.zarr", "--encoder", "not_a_model"], "unknown encoder"),
        (["embed", str(SVS), "-o", "x.zarr", "--tile-um", "112", "--mpp", "0.5"], "--slide-mpp is the slide's"),
        (["embed", str(SVS), "-o", "x.zarr", "--tile-px", "0"], "--tile-px: 0 must be between 16 and 4096"),
        (["train", "nowhere.zarr", "-o", "sae"], "no store at"),
        (["encode", "nowhere.zarr", "--sae", "sae"], "not an SAE folder"),
        (["encode", "nowhere.zarr", "--sae", "."], "not an SAE folder (needs cfg.json and sae_weights.safetensors)"),
    ],
)
def test_engine_user_errors(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode in (1, 2) and message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not any(Path(tmp_path).iterdir())  # nothing half-written
