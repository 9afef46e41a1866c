"""The encoder's bare forward speed: a ready normalised batch on the device, nothing else.

This is the denominator of the pipeline efficiency: the same model, batch size, dtype and device
as `pathsae embed`, without reading, decoding, preprocessing or writing. The batch is real tissue
tiles of the slide given (CPU speed depends on the values: denormals), read before timing.

    python benchmarks/bare_forward.py vit_small_patch16_224 SLIDE --batch-size 32 --batches 8
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from napari_pathsae.data.tiles import TileGeometry, read_tiles, tile_grid
from napari_pathsae.io.slides import open_slide
from napari_pathsae.models.encoders import load_encoder


def bare_forward(
    spec: str, slide_path: str, batch_size: int, batches: int, device: str = "auto", dtype: str = "auto"
) -> dict:
    """Tiles/s of ``batches`` timed forward passes (after one warm-up) of the encoder's pooled output."""
    encoder = load_encoder(spec, device=device, dtype=dtype)
    slide = open_slide(slide_path)
    grid = tile_grid(slide, TileGeometry())
    middle = len(grid) // 2
    x = encoder.preprocess(read_tiles(slide, grid, np.arange(middle, min(middle + batch_size, len(grid)))))
    autocast = torch.autocast(encoder.device.type, dtype=encoder.dtype, enabled=encoder.dtype != torch.float32)
    sync = torch.cuda.synchronize if encoder.device.type == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.inference_mode(), autocast:
            encoder._pool(encoder.model.forward_features(x)).float()

    forward()
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        forward()
    sync()
    seconds = time.perf_counter() - start
    return {
        "encoder": spec,
        "device": str(encoder.device),
        "dtype": str(encoder.dtype).removeprefix("torch."),
        "batch_size": batch_size,
        "batches": batches,
        "seconds": round(seconds, 3),
        "tiles_per_s": round(len(x) * batches / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder")
    parser.add_argument("slide")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    print(json.dumps(bare_forward(args.encoder, args.slide, args.batch_size, args.batches, args.device, args.dtype)))


if __name__ == "__main__":
    main()
