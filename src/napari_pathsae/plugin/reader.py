"""napari reader contribution: slides, plain images, Space Ranger folders and spatial .h5ad."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import PathsaeError
from ..io.slides import SLIDE_SUFFIXES, is_slide_folder, open_slide
from ..io.visium import open_visium
from .layers import LayerDataTuple, slide_layer, visium_layers


def is_visium_folder(path: Path) -> bool:
    return path.is_dir() and any(
        (path / sub).is_dir() for sub in ("spatial", "outs/spatial", "binned_outputs", "outs/binned_outputs")
    )


def read_path(path: str | Path) -> list[LayerDataTuple]:
    """Layers for one path (the engine's errors propagate with their one-line message)."""
    path = Path(path)
    if path.suffix.lower() == ".h5ad" or (path.is_dir() and not is_slide_folder(path)):
        return visium_layers(open_visium(path))
    return [slide_layer(open_slide(path))]


def layers_for(
    slide: str | None, visium: str | None, mpp: float | None, genes: list[str], backend: str | None = None
) -> list[LayerDataTuple]:
    """Visium layers (over the full-resolution slide when given), or the slide alone (read by ``backend``)."""
    if visium:
        return visium_layers(open_visium(visium, fullres_image=slide or None, mpp=mpp), genes)
    if slide:
        return [slide_layer(open_slide(slide, mpp=mpp, backend=backend))]
    raise PathsaeError("choose a slide, a Visium folder/.h5ad, or both")


def _read_paths(paths: str | list[str]) -> list[LayerDataTuple]:
    paths = [paths] if isinstance(paths, str) else paths
    return [layer for path in paths for layer in read_path(path)]


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader hook: a reader for paths this plugin understands, else None."""
    paths = [path] if isinstance(path, str) else list(path)
    for p in map(Path, paths):
        readable = p.suffix.lower() in (*SLIDE_SUFFIXES, ".h5ad") or is_visium_folder(p) or is_slide_folder(p)
        if not readable:
            return None
    return _read_paths
