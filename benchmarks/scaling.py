"""Scaling: `pathsae embed` time and peak RSS against slide size, and many slides on 1 vs 2 dask workers.

Four synthetic slides of growing side (each twice the area of the one before), each embedded by
a fresh whole process; then the same set of slides as one `pathsae embed` call on a dask
LocalCluster of 1 and of 2 worker processes (cores split between them). A small encoder keeps the
run short: the pipeline, not the model, is what scales here.

    python benchmarks/scaling.py [--encoder vit_tiny_patch16_224]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from measure import python, run_process, save
from synthetic_slide import slide_of_side

from napari_pathsae.data.store import TileStore


def embed(slides: list[Path], output: Path, encoder: str, extra: tuple[str, ...] = ()) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    command = python("-m", "napari_pathsae.cli", "embed", *map(str, slides), "-o", str(output), "--encoder", encoder)
    run = run_process([*command, *extra])
    stores = [output] if len(slides) == 1 else sorted(output.glob("*.zarr"))
    tiles = sum(TileStore.open(s).n_tiles for s in stores)
    shutil.rmtree(output, ignore_errors=True)
    return {
        "tiles": tiles,
        "wall_s": round(run.wall_s, 2),
        "tiles_per_s": round(tiles / run.wall_s, 2),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="vit_tiny_patch16_224")
    parser.add_argument("--sides", type=int, nargs="+", default=[4096, 5793, 8192, 11585])
    parser.add_argument("--slides", type=int, default=4, help="slides in the dask runs")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae-benchmarks"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.sides, args.slides = [2048, 4096], 2
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    by_size = []
    for side in args.sides:
        slide = slide_of_side(work, side)
        by_size.append({"side_px": side, **embed([slide], work / "scaling.zarr", args.encoder)})
    first = slide_of_side(work, args.sides[0])
    copies = []
    for i in range(args.slides):  # distinct files (each store records its slide's hash and path)
        copy = work / f"copy{i}_{first.name}"
        if not copy.exists():
            shutil.copyfile(first, copy)
        copies.append(copy)
    dask = {f"{n}_workers": embed(copies, work / "scaling_many", args.encoder, ("--workers", str(n))) for n in (1, 2)}
    save(
        "scaling" + ("_smoke" if args.smoke else ""),
        {"encoder": args.encoder, "by_slide_size": by_size, "dask_slides": args.slides, "dask": dask},
        args.out,
    )


if __name__ == "__main__":
    main()
