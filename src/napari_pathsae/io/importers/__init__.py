"""Importers of tile embeddings other tools wrote (TRIDENT, CLAM, STAMP): one file per format, each registered
with how it recognises a file and how it reads it into ``ImportedTiles`` (level-0 px, whatever the file's units).

``engine/import_embeddings.py`` turns ImportedTiles into an ordinary store; `pathsae import --format` lists
these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import PathsaeError


@dataclass
class ImportedTiles:
    """Tiles and their embeddings as another tool wrote them, in level-0 pixels."""

    coords: np.ndarray  # (N, 2) float64 level-0 (x, y) of each tile's top-left corner
    side0: float  # tile side in level-0 px
    step0: float | None  # level-0 px between neighbouring tiles, when the file says (None: the side)
    features: np.ndarray  # (N, D) float32
    encoder: str  # the encoder as the file names it ("uni_v1"); "unknown" when it does not
    tile_px: int | None  # pixels across a tile as the encoder saw it, when the file says
    format: str  # the importer's name
    metadata: dict = field(default_factory=dict)  # the file's own attributes, kept in provenance
    notes: list[str] = field(default_factory=list)  # what was assumed or inferred, one line each
    #: The slide's level-0 (width, height) as the file records it, to refuse another slide.
    slide_shape_xy: tuple[int, int] | None = None


@dataclass(frozen=True)
class EmbeddingImporter:
    name: str
    description: str
    #: Whether a file is this format (reads only metadata).
    recognises: Callable[[Path], bool]
    #: (features file, optional coordinates file, slide µm/px, the encoder asked for) → ImportedTiles; a
    #: file holding several encoders' features picks by that name.
    read: Callable[[Path, Path | None, float, str | None], ImportedTiles]


_IMPORTERS: dict[str, EmbeddingImporter] = {}


def register_importer(importer: EmbeddingImporter) -> EmbeddingImporter:
    if importer.name in _IMPORTERS:
        raise ValueError(f"embedding importer {importer.name!r} is registered already")
    _IMPORTERS[importer.name] = importer
    return importer


def importer_names() -> list[str]:
    return list(_IMPORTERS)


def importer_for(path: Path, name: str | None = None) -> EmbeddingImporter:
    """The importer named, else the first that recognises the file; refused in one line when none does."""
    if name is not None:
        if name not in _IMPORTERS:
            raise PathsaeError(f"no importer {name!r} (choose one of {', '.join(_IMPORTERS)})")
        return _IMPORTERS[name]
    if not path.exists():
        raise PathsaeError(f"no such file: {path}")
    for importer in _IMPORTERS.values():
        if importer.recognises(path):
            return importer
    raise PathsaeError(
        f"{path.name}: not an embedding file napari-pathsae recognises "
        f"({'; '.join(i.description for i in _IMPORTERS.values())})"
    )


# the registration block: importing a format's module registers it (order: who recognises a file first)
from . import spatialdata_tiles, stamp, trident  # noqa: E402, F401
