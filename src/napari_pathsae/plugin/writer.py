"""napari writer: File → Save Selected Layer on a pathsae heatmap writes its store's activation table."""

from __future__ import annotations

from ..data.store import TileStore
from ..errors import PathsaeError
from ..names import LayerKind
from ..report.export import export_tiles
from .notify import report_error

#: Layers whose File → Save Selected Layer writes the activation table.
SAVABLE = (LayerKind.HEATMAP, LayerKind.HEATMAPS, LayerKind.PATCH_HEATMAP)


def write_activations(path: str, data, meta: dict) -> list[str]:
    """Every tile's activations of the heatmap's SAE (CSV, Parquet or .h5ad); [] when it cannot."""
    info = meta.get("metadata", {}).get("pathsae", {})
    try:
        if info.get("kind") not in SAVABLE or not info.get("store"):
            raise PathsaeError("only pathsae heatmap layers can be saved as an activation table")
        export_tiles(TileStore.open(info["store"]), path, sae=info.get("sae"))
    except PathsaeError as exc:
        report_error(exc)
        return []
    return [path]
