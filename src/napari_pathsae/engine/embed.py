"""Embedding a slide: tiles → encoder → its store, reading overlapped with compute, with progress events."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.store import TileStore, writer_lock
from ..data.tiles import TileGeometry, TileGrid, read_tiles, tile_grid
from ..errors import PathsaeError
from ..io.slides import Slide, open_slide
from ..models.encoders import Encoder
from ..names import layer_embedding
from .cores import usable_cores
from .progress import Progress, ProgressCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedOptions:
    geometry: TileGeometry = field(default_factory=TileGeometry)
    batch_size: int = 32
    layers: tuple[int, ...] = ()  # intermediate blocks (1-based) whose CLS token is stored too
    patch_tokens: bool = False
    slide_mpp: float | None = None  # overrides the slide's metadata
    visium: str | None = None  # Space Ranger folder of the same section, kept in provenance
    chunk_tiles: int = 512  # tiles written (and redone after a kill) together
    readers: int | None = None  # threads reading tiles; None: 1 on CPU, more on a GPU (see reader_threads)
    visium_fingerprint: str | None = None  # identity.visium_fingerprint of that folder: later analyses check it
    slide_backend: str | None = None  # the slide reader (io/backends/) forced by --backend; None: by the file


def reader_threads(options: EmbedOptions, device: torch.device) -> int:
    """One reader on CPU (more would take cores from the model); on a GPU, decoding is the bottleneck."""
    if options.readers is not None:
        return max(1, options.readers)
    return 1 if device.type == "cpu" else max(1, min(8, usable_cores() - 1))


def output_widths(encoder: Encoder, options: EmbedOptions) -> dict[str, tuple[int, ...]]:
    widths = {"pooled": (encoder.width,)}
    for layer in options.layers:
        widths[layer_embedding(layer)] = (int(encoder.model.num_features),)
    if options.patch_tokens:
        size = encoder.input_size // encoder.model.patch_embed.patch_size[0]
        widths["patch_tokens"] = (size * size, int(encoder.model.num_features))
    return widths


def open_tiles(slide_path: str | Path, options: EmbedOptions = EmbedOptions()) -> tuple[Slide, TileGrid]:
    """The slide and its tissue tile grid: checked before a model is loaded (a blank image is refused at once)."""
    slide = open_slide(slide_path, mpp=options.slide_mpp, backend=options.slide_backend)
    try:
        return slide, tile_grid(slide, options.geometry)
    except BaseException:
        slide.close()
        raise


def prepare_store(
    slide_path: str | Path,
    store_path: str | Path,
    encoder: Encoder,
    options: EmbedOptions = EmbedOptions(),
    tiles: tuple[Slide, TileGrid] | None = None,
) -> tuple[TileStore, Slide, TileGrid]:
    """The slide's tile grid and its store (created, or resumed when slide, encoder and geometry match)."""
    slide, grid = tiles or open_tiles(slide_path, options)
    try:
        provenance = {"visium": options.visium, "visium_fingerprint": options.visium_fingerprint,
                      "torch_version": torch.__version__}  # fmt: skip
        widths = output_widths(encoder, options)
        store = TileStore.create(store_path, slide, grid, encoder.provenance(), widths, options.chunk_tiles, provenance)
    except BaseException:
        slide.close()
        raise
    return store, slide, grid


def embed_slide(
    slide_path: str | Path,
    store_path: str | Path,
    encoder: Encoder,
    options: EmbedOptions = EmbedOptions(),
    progress: ProgressCallback | None = None,
    tiles: tuple[Slide, TileGrid] | None = None,
) -> dict:
    """Embed every tissue tile of one slide into its store (resuming a killed run); returns the summary.

    One run writes a store at a time (``writer_lock``): a second run on the same store is refused."""
    start = time.perf_counter()
    with writer_lock(store_path):
        store, slide, grid = prepare_store(slide_path, store_path, encoder, options, tiles)
        try:
            computed = _embed_pending(store, slide, grid, encoder, options, progress, Path(slide_path).name, start)
        finally:
            slide.close()
        seconds = time.perf_counter() - start
        summary = {
            "slide": str(slide_path),
            "store": str(store_path),
            "tiles": len(grid),
            "computed": computed,
            "seconds": round(seconds, 3),
            "tiles_per_s": round(computed / seconds, 2) if computed else 0.0,
            "device": str(encoder.device),
            "dtype": str(encoder.dtype).removeprefix("torch."),
            "batch_size": options.batch_size,
            "random_init": encoder.random_init,
        }
        if computed or not store.complete:  # a rerun on a finished store keeps the original run's record
            store.mark_complete(summary)
    return summary


def _embed_pending(store, slide, grid, encoder, options, progress, name: str, start: float) -> int:
    """Embed the store's unfinished chunks, reading the next one (split over the readers) while computing."""
    pending = store.pending_chunks()
    slices = store.chunk_slices()
    total = len(grid)
    done = total - sum(slices[i].stop - slices[i].start for i in pending)
    computed = 0
    readers = reader_threads(options, encoder.device)
    with ThreadPoolExecutor(max_workers=readers) as pool:

        def read(chunk: int) -> list:
            rows = np.arange(slices[chunk].start, slices[chunk].stop)
            return [pool.submit(read_tiles, slide, grid, part) for part in _split_at_grid_rows(rows, grid, readers)]

        upcoming = read(pending[0]) if pending else []
        for position, chunk in enumerate(pending):
            tiles = np.concatenate([part.result() for part in upcoming])
            if position + 1 < len(pending):
                upcoming = read(pending[position + 1])  # read the next while computing
            outputs = embed_batches(encoder, tiles, options)
            _warn_non_finite(outputs["pooled"], name, encoder)
            store.write_chunk(chunk, outputs)
            done += len(tiles)
            computed += len(tiles)
            if progress:
                elapsed = time.perf_counter() - start
                progress(Progress(name, done, total, elapsed, computed / max(elapsed, 1e-9)))
    return computed


def _warn_non_finite(pooled: np.ndarray, name: str, encoder: Encoder) -> None:
    bad = int((~np.isfinite(pooled).all(axis=1)).sum())
    if bad:
        log.warning(
            "%s: %d tiles gave NaN/inf embeddings in %s (overflow? try --dtype fp32); train and encode skip them",
            name, bad, str(encoder.dtype).removeprefix("torch."),
        )  # fmt: skip


def _split_at_grid_rows(rows: np.ndarray, grid: TileGrid, parts: int) -> list[np.ndarray]:
    """``rows`` (store order) in up to ``parts`` pieces, cut only where the grid row changes.

    read_tiles reads each grid row's tiles as bands; cutting inside a row would change the bands
    and so the resampling of the tiles at their edges (±1 grey level).
    """
    changes = np.flatnonzero(np.diff(grid.grid_index[rows, 0])) + 1
    if parts <= 1 or len(changes) == 0:
        return [rows]
    wanted = np.linspace(0, len(rows), parts + 1)[1:-1]
    cuts = np.unique(changes[np.abs(changes[None, :] - wanted[:, None]).argmin(axis=1)])
    return np.split(rows, cuts)


def embed_batches(encoder: Encoder, tiles: np.ndarray, options: EmbedOptions) -> dict[str, np.ndarray]:
    """The encoder's outputs for ``tiles`` in batches; out of GPU memory, the batch halves and stays halved."""
    parts: dict[str, list[np.ndarray]] = {}
    begin = 0
    while begin < len(tiles):
        size = min(options.batch_size, encoder.batch_limit or options.batch_size)
        try:
            batch = encoder.embed(tiles[begin : begin + size], options.layers, options.patch_tokens)
        except torch.OutOfMemoryError:
            if size == 1:
                raise PathsaeError(f"out of {encoder.device.type} memory even one tile at a time") from None
            encoder.batch_limit = size // 2
            if encoder.device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("out of %s memory at batch %d; continuing at %d", encoder.device.type, size, size // 2)
            continue
        for name, values in batch.items():
            parts.setdefault(name, []).append(values)
        begin += size
    return {name: np.concatenate(values) for name, values in parts.items()}


def summary_line(summary: dict) -> str:
    """The one line `pathsae embed` ends with."""
    warning = ", RANDOM-INIT encoder weights" if summary["random_init"] else ""
    return (
        f"{Path(summary['slide']).name}: {summary['tiles']} tiles ({summary['computed']} computed) in "
        f"{summary['seconds']:.1f} s, {summary['tiles_per_s']:.1f} tiles/s, device {summary['device']}, "
        f"dtype {summary['dtype']}, batch {summary['batch_size']}{warning}"
    )
