"""Training an SAE from the viewer at its defaults on one real section: how long, and how browsable.

The her2st B4 section (1,038 tissue tiles of 112 µm) is embedded once with the Model panel's default
encoder (ViT-S/16, random weights: no model hub here), then `ExplorerSession.train_sae` runs with
`TrainOptions.for_section` (what the panel's Train button uses) and, for comparison, with the CLI's
defaults (width and inputs from the data: 3 latents and 100 inputs per tile, k 32). Both remove the latents
that never fire. Reported: training seconds, the trained and kept widths, FVU, L0, the fraction of features
never active, and the ratio of the two times (one run, one machine).

    python benchmarks/panel_training.py [--smoke]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from measure import save

from napari_pathsae.data.tiles import TileGeometry
from napari_pathsae.engine.embed import EmbedOptions
from napari_pathsae.engine.session import ExplorerSession
from napari_pathsae.models.sae.train import TrainOptions

SECTION = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_B4" / "B4_HE.jpg"
SECTION_MPP = 0.69


def run(work: Path, encoder: str, tile_um: float) -> dict:
    options = EmbedOptions(geometry=TileGeometry.from_options(tile_um=tile_um), slide_mpp=SECTION_MPP)
    session = ExplorerSession.load(SECTION, work / "b4.zarr", encoder, options=options)
    start = time.perf_counter()
    session.compute(session.missing())
    embed_s = time.perf_counter() - start
    n = session.computer.n_tiles
    runs = {}
    for name, training in {
        "panel_defaults": TrainOptions.for_section(n),
        "cli_defaults": TrainOptions(),
    }.items():
        start = time.perf_counter()
        metrics = session.train_sae(session.fresh_sae_folder(name), training)
        runs[name] = {
            "seconds": round(time.perf_counter() - start, 1),
            "d_sae": metrics["d_sae"], "trained_width": metrics["trained_width"],
            "steps": metrics["steps"], "batch_size": metrics["batch_size"],
            "fvu": round(metrics["fvu"], 4), "l0": round(metrics["l0"], 2),
            "dead_fraction": round(metrics["dead_fraction"], 3),
            "live_features": round(metrics["d_sae"] * (1 - metrics["dead_fraction"])),
        }  # fmt: skip
    ratio = runs["cli_defaults"]["seconds"] / max(runs["panel_defaults"]["seconds"], 1e-9)
    dtype = str(session.computer.encoder.dtype).removeprefix("torch.")
    session.close()
    return {"tiles": n, "encoder": encoder, "encoder_dtype": dtype, "embed_s": round(embed_s, 1), "runs": runs,
            "cli_over_panel_time": round(ratio, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny encoder, 448 µm tiles (CI)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae-bench-panel"))
    parser.add_argument("--out", type=Path, help="results folder (default docs/benchmark-results)")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    encoder, tile_um = ("vit_tiny_patch16_224", 448.0) if args.smoke else ("vit_small_patch16_224", 112.0)
    result = run(args.work_dir, encoder, tile_um)
    save("panel_training" + ("_smoke" if args.smoke else ""), result, args.out)


if __name__ == "__main__":
    main()
