"""Pipeline efficiency: `pathsae embed` tiles/s over the bare encoder forward, same model/batch/dtype/device.

The whole process counts: the CLI is timed from launch to exit (imports, model loading, slide
hashing, tissue detection, reading, decoding, store writes), on a JPEG-tiled pyramidal slide built
from real tissue (synthetic_slide.py). Each measurement runs in a fresh process, one at a time.

    python benchmarks/pipeline_efficiency.py --encoders vit_small_patch16_224 vit_base_patch16_224
    python benchmarks/pipeline_efficiency.py --smoke     # tiny inputs: checks the benchmark runs
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from measure import BENCHMARKS, python, run_process, save
from synthetic_slide import slide_of_side

from napari_pathsae.data.store import TileStore


def bare_tiles_per_s(slide: Path, encoder: str, batch_size: int, batches: int, device: str) -> float:
    command = python(
        str(BENCHMARKS / "bare_forward.py"), encoder, str(slide), "--batch-size", str(batch_size),
        "--batches", str(batches), "--device", device,
    )  # fmt: skip
    return json.loads(run_process(command).stdout.strip().splitlines()[-1])["tiles_per_s"]


def efficiency(slide: Path, work_dir: Path, encoder: str, batch_size: int, bare_batches: int, device: str) -> dict:
    """Bare forward, the whole `pathsae embed` process, bare forward again (this machine's speed drifts)."""
    before = bare_tiles_per_s(slide, encoder, batch_size, bare_batches, device)
    store_path = work_dir / f"{slide.stem}.{encoder}.zarr"
    shutil.rmtree(store_path, ignore_errors=True)
    embed = run_process(
        python(
            "-m", "napari_pathsae.cli", "embed", str(slide), "-o", str(store_path), "--encoder", encoder,
            "--batch-size", str(batch_size), "--device", device,
        )
    )  # fmt: skip
    summary = TileStore.open(store_path).summary
    shutil.rmtree(store_path, ignore_errors=True)
    after = bare_tiles_per_s(slide, encoder, batch_size, bare_batches, device)
    bare = (before + after) / 2
    whole = summary["computed"] / embed.wall_s
    return {
        "encoder": encoder,
        "device": summary["device"],
        "dtype": summary["dtype"],
        "batch_size": batch_size,
        "tiles": summary["computed"],
        "bare_tiles_per_s_before_after": [before, after],
        "embed_wall_s": round(embed.wall_s, 2),
        "embed_tiles_per_s_whole_process": round(whole, 3),
        "embed_tiles_per_s_in_run": summary["tiles_per_s"],
        "fixed_overhead_s": round(embed.wall_s - summary["computed"] / bare, 2),
        "efficiency_whole_process": round(whole / bare, 3),
        "efficiency_in_run": round(summary["tiles_per_s"] / bare, 3),
        "embed_peak_rss_mb": round(embed.peak_rss_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["vit_small_patch16_224", "vit_base_patch16_224"])
    parser.add_argument("--side", type=int, default=12288, help="slide side in px (12288: 1558 tissue tiles)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bare-batches", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae-benchmarks"))
    parser.add_argument("--out", type=Path, help="results folder (default docs/benchmark-results)")
    parser.add_argument("--smoke", action="store_true", help="tiny slide and model: checks that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.encoders, args.side, args.batch_size, args.bare_batches = ["vit_tiny_patch16_224"], 4096, 8, 1
    args.work_dir.mkdir(parents=True, exist_ok=True)
    slide = slide_of_side(args.work_dir, args.side)
    runs = [efficiency(slide, args.work_dir, e, args.batch_size, args.bare_batches, args.device) for e in args.encoders]
    save("pipeline_efficiency" + ("_smoke" if args.smoke else ""), {"slide": slide.name, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
