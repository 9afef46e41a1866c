"""A JPEG-tiled pyramidal TIFF of any size, built from real tissue, for the benchmarks.

Level 0 is a mosaic of 4096-px blocks of the her2st B4 H&E (one tissue-rich crop, rotated and
flipped into four blocks) on an elliptical tissue region, with white glass around it. Each
level's 256-px tiles are JPEG-encoded once per distinct block and written as encoded bytes, so a
100,000 x 100,000 px slide takes seconds to build, not hours. Levels are 1, 4, 16, 64… as in
Aperio SVS files, stored as SubIFDs with the µm/px in the resolution tags.

    python benchmarks/synthetic_slide.py OUT.tif --side 100000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

HER2ST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "her2st_B4" / "B4_HE.jpg"
BLOCK = 4096  # level-0 px per mosaic block
CROP_YX = (4096, 1024)  # a block of the her2st H&E that is ~99% tissue
TILE = 256
QUALITY = 85
LEVEL_FACTOR = 4
WHITE = 245


def tissue_blocks(image: Path = HER2ST) -> list[np.ndarray]:
    """Four distinct 4096-px tissue blocks: one real crop, rotated and flipped."""
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(image) as img:
        y, x = CROP_YX
        crop = np.asarray(img.crop((x, y, x + BLOCK, y + BLOCK)).convert("RGB"))
    return [crop, np.rot90(crop).copy(), crop[::-1].copy(), crop[:, ::-1].copy()]


def block_layout(side: int) -> np.ndarray:
    """(n, n) block → index of its tissue block, or -1 for glass (an ellipse of tissue)."""
    n = -(-side // BLOCK)
    centre = (np.arange(n) + 0.5) / n - 0.5
    y, x = np.meshgrid(centre, centre, indexing="ij")
    inside = (x / 0.45) ** 2 + (y / 0.40) ** 2 <= 1.0
    inside[n // 2, n // 2] = True  # small slides keep at least one block of tissue
    kinds = (np.add.outer(np.arange(n), 2 * np.arange(n)) % 4).astype(int)
    return np.where(inside, kinds, -1)


def level_sides(side: int) -> list[int]:
    """Level sides, finest first, down to the first one of at most 2048 px."""
    sides = [side]
    while sides[-1] > 2048:
        sides.append(sides[-1] // LEVEL_FACTOR)
    return sides


def _encoded_tiles(blocks: list[np.ndarray], factor: int) -> tuple[list[list[bytes]], bytes, int]:
    """Per block, its tiles at ``factor`` (row-major) JPEG-encoded; a glass tile; tiles per block side."""
    per_side = BLOCK // factor // TILE
    encoded = []
    for block in blocks:
        small = np.asarray(Image.fromarray(block).reduce(factor)) if factor > 1 else block
        encoded.append(
            [
                imagecodecs.jpeg8_encode(small[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE], level=QUALITY)
                for r in range(per_side)
                for c in range(per_side)
            ]
        )
    glass = imagecodecs.jpeg8_encode(np.full((TILE, TILE, 3), WHITE, np.uint8), level=QUALITY)
    return encoded, glass, per_side


def _tile_bytes(layout: np.ndarray, side: int, encoded, glass: bytes, per_side: int) -> Iterator[bytes]:
    n = -(-side // TILE)
    for r in range(n):
        for c in range(n):
            kind = layout[r // per_side, c // per_side]
            yield glass if kind < 0 else encoded[kind][(r % per_side) * per_side + c % per_side]


def _rendered_level(blocks: list[np.ndarray], layout: np.ndarray, side: int, factor: int) -> np.ndarray:
    """A coarse level (blocks smaller than a tile) as pixels."""
    b = BLOCK // factor
    small = [np.asarray(Image.fromarray(block).reduce(factor)) for block in blocks]
    out = np.full((layout.shape[0] * b, layout.shape[1] * b, 3), WHITE, np.uint8)
    for (r, c), kind in np.ndenumerate(layout):
        if kind >= 0:
            out[r * b : (r + 1) * b, c * b : (c + 1) * b] = small[kind]
    return out[:side, :side]


def build_slide(path: str | Path, side: int, mpp: float = 0.5, image: Path = HER2ST) -> dict:
    """Write the slide; returns its size, levels, file bytes and build seconds."""
    start = time.perf_counter()
    blocks, layout, sides = tissue_blocks(image), block_layout(side), level_sides(side)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    common = dict(tile=(TILE, TILE), compression="jpeg", photometric="rgb", dtype=np.uint8)
    with tifffile.TiffWriter(partial, bigtiff=True) as tif:
        for level, level_side in enumerate(sides):
            factor = LEVEL_FACTOR**level
            extra = (
                {"subifds": len(sides) - 1, "resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
                if level == 0
                else {"subfiletype": 1}
            )
            if BLOCK // factor >= TILE:
                encoded, glass, per_side = _encoded_tiles(blocks, factor)
                data = _tile_bytes(layout, level_side, encoded, glass, per_side)
                tif.write(data, shape=(level_side, level_side, 3), **common, **extra)
            else:
                pixels = _rendered_level(blocks, layout, level_side, factor)
                tif.write(pixels, **common, **extra)
    partial.replace(path)
    return {
        "side_px": side,
        "mpp": mpp,
        "levels": sides,
        "tissue_blocks": int((layout >= 0).sum()),
        "blocks": int(layout.size),
        "file_bytes": path.stat().st_size,
        "build_s": round(time.perf_counter() - start, 2),
    }


def slide_of_side(work_dir: Path, side: int) -> Path:
    """The synthetic slide of this side in ``work_dir``, built once."""
    path = work_dir / f"synthetic_{side}.tif"
    if not path.exists():
        build_slide(path, side)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--side", type=int, default=100_000, help="level-0 side in px")
    parser.add_argument("--mpp", type=float, default=0.5)
    args = parser.parse_args()
    print(build_slide(args.output, args.side, args.mpp))


if __name__ == "__main__":
    main()
