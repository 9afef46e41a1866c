"""Tiles as QuPath detections (GeoJSON): each tile's square in level-0 px carrying chosen features as
measurements and, given a concept table, its concept as the classification; the exported region as an
annotation. QuPath's File > Import objects reads it over the same slide (QuPath ≥ 0.4: measurements as an
object, ids as UUIDs, colours as RGB lists)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.store import TileStore

#: QuPath classification colours for concepts 1, 2, … (tab10).
CONCEPT_COLOURS = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                   [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]]  # fmt: skip
#: Features written when none are chosen: the strongest on average over the exported tiles.
DEFAULT_FEATURES = 10


def chosen_features(matrix: np.ndarray, features: list[int] | None) -> list[int]:
    """``features`` as given, else the DEFAULT_FEATURES with the highest mean over the exported tiles."""
    if features:
        return list(features)
    means = np.nanmean(matrix, axis=0) if len(matrix) else np.zeros(matrix.shape[1])
    return [int(f) for f in np.argsort(-means, kind="stable")[:DEFAULT_FEATURES]]


def write_qupath_geojson(
    store: TileStore,
    meta: pd.DataFrame,
    matrix: np.ndarray,
    kind: str,
    features: list[int],
    temp: Path,
    region=None,
    concepts: pd.Series | None = None,
) -> None:
    """Write the tiles of ``meta`` (their x, y) with ``features`` of ``matrix`` to ``temp`` as a FeatureCollection."""
    prefix = "f" if kind == "activation" else "e"
    side = store.tile_side0
    items = []
    for row, (tile, x, y) in enumerate(meta[["tile", "x", "y"]].itertuples(index=False)):
        x1, y1 = float(x) + side, float(y) + side
        properties = {
            "objectType": "detection",
            "name": f"tile {int(tile)}",
            "measurements": {f"{prefix}{f}": float(matrix[row, f]) for f in features},
        }
        if concepts is not None and int(tile) in concepts.index:
            label = int(concepts.loc[int(tile)])
            colour = CONCEPT_COLOURS[(label - 1) % len(CONCEPT_COLOURS)]
            properties["classification"] = {"name": f"concept {label}", "color": colour}
        square = [[[float(x), float(y)], [x1, float(y)], [x1, y1], [float(x), y1], [float(x), float(y)]]]
        items.append({"type": "Feature", "id": str(uuid.uuid4()),
                      "geometry": {"type": "Polygon", "coordinates": square}, "properties": properties})  # fmt: skip
    if region is not None:
        import shapely

        items.append({
            "type": "Feature", "id": str(uuid.uuid4()), "geometry": shapely.geometry.mapping(region),
            "properties": {"objectType": "annotation", "name": "pathsae region",
                           "classification": {"name": "pathsae region", "color": [255, 255, 0]}},
        })  # fmt: skip
    temp.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
