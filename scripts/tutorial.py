"""Run docs/tutorial.md end to end on the her2st B4 section and write its figures and numbers.

    python scripts/tutorial.py [--work DIR] [--encoder NAME] [--random-init]

Each step is the `pathsae` command the tutorial shows; the figures come from napari_pathsae.report.figures.
Outputs: docs/images/tutorial/*.png and docs/tutorial-results.json (the numbers quoted in the tutorial).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HER2ST = ROOT.parent / "shared" / "data" / "her2st_B4"
SLIDE, OUTS = HER2ST / "B4_HE.jpg", HER2ST / "spaceranger_outs"
IMAGES = ROOT / "docs" / "images" / "tutorial"
GENES = ["ERBB2", "GRB7", "KRT19", "KRT8", "COL1A1", "COL3A1", "IGKC", "IGHG1", "CD74", "MGP"]
SHOWN = ["ERBB2", "COL1A1", "IGKC"]


def pathsae(*args) -> str:
    """Run one CLI command as a user would; return what it printed."""
    command = [str(Path(sys.executable).with_name("pathsae")), *map(str, args)]
    print("$", " ".join(c if " " not in c else repr(c) for c in command[1:]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()}")
    print(done.stdout.strip(), f"[{time.perf_counter() - start:.0f} s]", flush=True)
    return done.stdout.strip()


def feature_gene_figures(work: Path, results: dict) -> None:
    """For each shown gene: the feature that correlates best with it, its map, the gene, and the scatter."""
    from napari_pathsae import open_visium
    from napari_pathsae.analysis.spots import aggregate_to_spots, normalised_expression
    from napari_pathsae.data.store import TileStore
    from napari_pathsae.report.figures import feature_gene_figure

    store = TileStore.open(work / "b4.zarr")
    sample = open_visium(OUTS)
    table = pd.read_csv(work / "correlate.csv")
    acts = np.asarray(store.activations("sae_pooled")[:], dtype=np.float32)
    spot_values, _ = aggregate_to_spots(store, sample, acts)
    expression = normalised_expression(sample, SHOWN)
    results["feature_gene"] = {}
    for gene in SHOWN:
        best = table[table["gene"] == gene].sort_values("r", ascending=False).iloc[0]
        feature = int(best["feature"].removeprefix("f"))
        results["feature_gene"][gene] = {"feature": best["feature"], "r": round(float(best["r"]), 3),
                                         "q": float(best["q"])}  # fmt: skip
        feature_gene_figure(
            store, sample, acts[:, feature], spot_values[:, feature], expression[gene].to_numpy(), best["feature"],
            gene, float(best["r"]), IMAGES / f"feature_vs_{gene}.png",
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/pathsae-tutorial"))
    parser.add_argument("--encoder", default="vit_small_patch16_224")
    parser.add_argument("--random-init", action="store_true", help="allow random weights (offline)")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    w = args.work
    results: dict = {"encoder": args.encoder, "random_init": args.random_init}
    start = time.perf_counter()

    # legacy ST spots are 100 µm, not Visium's 55 µm: give the slide's µm/px rather than infer it from the spots
    embed = ["--encoder", args.encoder, "--tile-um", 112, "--slide-mpp", 0.69, "--layers", 6, "--visium", OUTS]
    results["embed"] = pathsae(
        "embed", SLIDE, "-o", w / "b4.zarr", *embed, *(["--random-init"] if args.random_init else [])
    )
    for name, extra in (("sae_pooled", []), ("sae_pooled_seed1", ["--seed", 1]), ("sae_layer6", ["--layer", 6])):
        # one section is 946 tiles: a small dictionary, and enough steps (small batches) for decoders to settle
        train = ["--expansion", 4, "--k", 32, "--batch-size", 256, "--samples", 400_000]
        results[name] = pathsae("train", w / "b4.zarr", "-o", w / name, *train, *extra)
        pathsae("encode", w / "b4.zarr", "--sae", w / name)

    # 1. features against genes, and SAEs matched across seeds and layers
    results["correlate"] = pathsae("correlate", w / "b4.zarr", "--visium", OUTS, "--sae", "sae_pooled",
                                   "-o", w / "correlate.csv", "--genes", *GENES)  # fmt: skip
    feature_gene_figures(w, results)
    for other in ("sae_pooled_seed1", "sae_layer6"):
        results[f"match_{other}"] = pathsae("match", w / "sae_pooled", w / other, "-o", w / f"match_{other}.csv",
                                            "--store", w / "b4.zarr")  # fmt: skip

    # 2. concepts, their map and their importance for the genes
    results["concepts"] = pathsae("concepts", w / "b4.zarr", "-n", 8, "--sae", "sae_pooled", "-o", w / "concepts",
                                  "--visium", OUTS, "--genes", *GENES)  # fmt: skip
    shutil.copy(w / "concepts" / "map_b4.png", IMAGES / "concept_map.png")
    importance = pd.read_csv(w / "concepts" / "importance.csv")
    results["concept_model_r"] = importance.groupby("target")["model_r"].first().round(3).to_dict()

    # 3. gene expression predicted from the features, held out spatially: ridge and attention MIL
    for model in ("ridge", "mil"):
        figures = ["--figures", w / f"figures_{model}"] if model == "ridge" else []
        results[f"predict_{model}"] = pathsae(
            "predict-genes", w / "b4.zarr", "--visium", OUTS, "--sae", "sae_pooled", "--genes", *GENES,
            "--model", model, "-o", w / f"predict_{model}.csv", *figures,
        )  # fmt: skip
        table = pd.read_csv(w / f"predict_{model}.csv")
        results[f"r_{model}"] = table.set_index("gene")["r"].round(3).to_dict()
    for gene in SHOWN:
        shutil.copy(w / "figures_ridge" / f"{gene}.png", IMAGES / f"predicted_{gene}.png")
    results["predict_all"] = pathsae("predict-genes", w / "b4.zarr", "--visium", OUTS, "--sae", "sae_pooled",
                                     "-o", w / "predict_all.csv")  # fmt: skip
    every = pd.read_csv(w / "predict_all.csv")
    results["predict_all_top"] = every.head(10)[["gene", "r"]].round(3).to_dict("records")
    results["predict_all_median_r"] = round(float(every["r"].median()), 3)
    results["seconds"] = round(time.perf_counter() - start)
    (ROOT / "docs" / "tutorial-results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"done in {results['seconds']} s; figures in {IMAGES}")


if __name__ == "__main__":
    main()
