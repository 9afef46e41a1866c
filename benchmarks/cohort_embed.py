"""A cohort embedded on 1 and on 2 dask workers (`pathsae embed --manifest`): wall time and tiles/s of each,
the speed-ups, in one run on the same machine.

The cohort: the HER2+ B4 section cut into ``--pieces`` real-tissue slides (PNG, 0.69 µm/px in the manifest),
embedded at ``--tile-um`` (112) µm tiles by ``--encoder`` (random init, offline), each run into a fresh cohort folder:
- ``1_worker_half``: 1 worker pinned (taskset) to half the cores: one worker's share of the machine;
- ``1_worker_all``: 1 worker on all the cores (torch's threads use them all);
- ``2_workers``: 2 workers of half the cores each.
``speedup_2_over_1`` (the goal's ratio: workers added, each with its own cores) is 2 workers over one
worker's share; ``speedup_2_over_1_all`` is what a user of this machine gains over 1 worker on every core.

usage: python benchmarks/cohort_embed.py [--pieces 6] [--encoder vit_small_patch16_224] [--tile-um 112]
                                        [--work-dir DIR] [--out DIR]
       python benchmarks/cohort_embed.py --smoke   (CI: 2 pieces, mean-rgb)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import python, run_process, save

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_pieces(folder: Path, pieces: int) -> Path:
    """B4's H&E cut into ``pieces`` vertical strips (each a slide), and their manifest."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(Image.open(DATA / "her2st_B4" / "B4_HE.jpg").convert("RGB"))
    rows = ["slide,slide_mpp"]
    for i, strip in enumerate(np.array_split(pixels, pieces, axis=1)):
        Image.fromarray(strip).save(folder / f"piece{i}.png", compress_level=1)
        rows.append(f"piece{i}.png,0.69")
    (folder / "cohort.csv").write_text("\n".join(rows) + "\n")
    return folder / "cohort.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=6)
    parser.add_argument("--encoder", default="vit_small_patch16_224")
    parser.add_argument("--tile-um", default="112")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae_cohort_embed"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.pieces, args.encoder = 2, "mean-rgb"
    manifest = write_pieces(args.work_dir / "slides", args.pieces)
    cores = sorted(os.sched_getaffinity(0))
    half = ",".join(str(c) for c in cores[: max(1, len(cores) // 2)])
    runs = {}
    for name, workers, pin in (("1_worker_half", 1, ["taskset", "-c", half]), ("1_worker_all", 1, []),
                               ("2_workers", 2, [])):  # fmt: skip
        folder = args.work_dir / f"cohort_{name}"
        shutil.rmtree(folder, ignore_errors=True)
        command = pin + python("-m", "napari_pathsae.cli", "embed", "--manifest", str(manifest), "-o", str(folder),
                               "--encoder", args.encoder, "--tile-um", args.tile_um, "--workers", str(workers),
                               "--dtype", "fp32")  # fmt: skip
        run = run_process(command)
        tiles = sum(int(line.split(": ")[1].split()[0]) for line in run.stdout.splitlines() if "tiles/s" in line)
        runs[name] = {"workers": workers, "cores": len(cores) if not pin else half.count(",") + 1,
                      "wall_s": round(run.wall_s, 1), "tiles": tiles, "tiles_per_s": round(tiles / run.wall_s, 2),
                      "client_peak_rss_mb": round(run.peak_rss_mb)}  # fmt: skip
    rate = {name: run["tiles_per_s"] for name, run in runs.items()}
    save("cohort_embed" if not args.smoke else "cohort_embed_smoke",
         {"encoder": args.encoder, "tile_um": float(args.tile_um), "pieces": args.pieces, **runs,
          "speedup_2_over_1": round(rate["2_workers"] / rate["1_worker_half"], 2),
          "speedup_2_over_1_all": round(rate["2_workers"] / rate["1_worker_all"], 2)}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
