"""Opening a 100,000 x 100,000 px JPEG-tiled pyramid: seconds and extra RSS, then a view and its tiles.

Measured in a fresh process after the imports: ``open_slide``, one full-HD read at level 0 (what
napari slices for a 20x view), the coarsest level (napari's first paint), and the tissue grid of
112 µm tiles (what `pathsae embed` and the viewer compute first).

    python benchmarks/open_large_slide.py [--side 100000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import psutil
from measure import save
from synthetic_slide import slide_of_side

from napari_pathsae.data.tiles import TileGeometry, tile_grid
from napari_pathsae.io.slides import open_slide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=100_000)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae-benchmarks"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.side = 4096
    args.work_dir.mkdir(parents=True, exist_ok=True)
    path = slide_of_side(args.work_dir, args.side)
    process = psutil.Process()
    base = process.memory_info().rss
    steps: dict[str, dict] = {}

    def step(name: str, action):
        start = time.perf_counter()
        value = action()
        steps[name] = {
            "s": round(time.perf_counter() - start, 3),
            "extra_rss_mb": round((process.memory_info().rss - base) / 2**20, 1),
        }
        return value

    slide = step("open_slide", lambda: open_slide(path))
    y, x = args.side // 2, args.side // 2
    step("full_hd_view_level0", lambda: np.asarray(slide.levels[0][y : y + 1080, x : x + 1920]))
    step("coarsest_level", lambda: np.asarray(slide.levels[-1]))
    grid = step("tissue_grid_112um", lambda: tile_grid(slide, TileGeometry()))
    save(
        "open_large_slide" + ("_smoke" if args.smoke else ""),
        {
            "side_px": args.side,
            "file_gb": round(path.stat().st_size / 1e9, 2),
            "levels": slide.level_shapes,
            "tissue_tiles": len(grid),
            "steps": steps,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
