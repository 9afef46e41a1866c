"""Activation (or embedding) tables for the whole slide, a bbox or a GeoJSON polygon: CSV, Parquet, .h5ad,
TRIDENT-style .h5 or QuPath GeoJSON (tiles only; report/trident_h5.py, report/qupath_geojson.py), or a
SpatialData .zarr with the slide, tiles and spots (report/spatialdata_zarr.py). Regions may be QuPath's own
annotation exports, picked by classification.

Tiles are rows; a tile belongs to a region when its centre does. Coordinates are level-0 pixels
(x, y) as in QuPath and GeoJSON exports; µm columns follow from the slide's µm/px. Files are
written to a temporary name and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..analysis.spots import aggregate_to_spots, normalised_expression, report_spot_use
from ..data.outputs import atomic_folder, atomic_output, writable_target
from ..data.store import TileStore
from ..errors import PathsaeError

FORMATS = (".csv", ".parquet", ".h5ad", ".h5", ".geojson", ".zarr")
#: Formats a spot table is not written in alone (a SpatialData .zarr takes spots with the tiles).
TILE_FORMATS = (".h5", ".geojson", ".zarr")


def region_mask(
    centres_xy: np.ndarray,
    bbox: tuple[float, float, float, float] | None = None,
    geojson: str | Path | None = None,
    polygon=None,
    region_class: str | None = None,
) -> np.ndarray:
    """Points (tile centres) in the bbox (x0, y0, x1, y1), the GeoJSON polygon(s) (those classified
    ``region_class`` when given) and/or a shapely polygon."""
    keep = np.ones(len(centres_xy), dtype=bool)
    if bbox is not None:
        x0, y0, x1, y1 = _checked_bbox(bbox)
        keep &= (centres_xy[:, 0] >= x0) & (centres_xy[:, 0] < x1) & (centres_xy[:, 1] >= y0) & (centres_xy[:, 1] < y1)
    for region in (read_polygon(geojson, region_class) if geojson is not None else None, polygon):
        if region is not None:
            import shapely

            keep &= shapely.contains_xy(region, centres_xy[:, 0], centres_xy[:, 1])
    return keep


def _checked_bbox(bbox) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = bbox
    if x1 <= x0 or y1 <= y0:
        raise PathsaeError(f"empty bbox {bbox}: expected X0 Y0 X1 Y1 with X1 > X0 and Y1 > Y0")
    return x0, y0, x1, y1


def region_outline(bbox=None, geojson=None, polygon=None, region_class: str | None = None):
    """The region as one shapely geometry (the intersection of what is given), None for the whole slide."""
    import shapely

    parts = [shapely.box(*_checked_bbox(bbox))] if bbox is not None else []
    parts += [read_polygon(geojson, region_class)] if geojson is not None else []
    parts += [polygon] if polygon is not None else []
    return shapely.intersection_all(parts) if parts else None


def read_polygon(path: str | Path, classification: str | None = None):
    """Union of the Polygon/MultiPolygon geometries of a GeoJSON Feature, FeatureCollection or geometry (a
    QuPath export too); with ``classification``, only the features QuPath classified so."""
    import shapely
    from shapely.geometry import shape

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PathsaeError(f"{path}: not readable GeoJSON ({exc})") from None
    if not isinstance(data, dict):
        raise PathsaeError(f"{path}: GeoJSON must be an object")
    features = data.get("features") if data.get("type") == "FeatureCollection" else [data]
    if classification is not None:
        found = {_class_name(f) for f in features or []} - {None}
        features = [f for f in features or [] if _class_name(f) == classification]
        if not features:
            raise PathsaeError(
                f"{path}: no annotation classified {classification!r} (has {', '.join(sorted(found)) or 'none'})"
            )
    geometries = []
    for feature in features or []:
        geometry = feature.get("geometry", feature) if isinstance(feature, dict) else None
        if isinstance(geometry, dict) and geometry.get("type") in ("Polygon", "MultiPolygon"):
            try:
                geometries.append(shape(geometry))
            except Exception as exc:
                raise PathsaeError(f"{path}: invalid polygon ({exc})") from None
    if not geometries:
        raise PathsaeError(f"{path}: no Polygon or MultiPolygon in the GeoJSON")
    polygon = shapely.union_all([shapely.make_valid(g) for g in geometries])
    if polygon.is_empty or polygon.area == 0:
        raise PathsaeError(f"{path}: the polygon has no area")
    return polygon


def _class_name(feature) -> str | None:
    """A QuPath feature's classification name (QuPath ≥ 0.4 writes an object, older ones a name)."""
    if not isinstance(feature, dict):
        return None
    found = (feature.get("properties") or {}).get("classification")
    return found.get("name") if isinstance(found, dict) else found


def tile_table(
    store: TileStore, keep: np.ndarray | None = None, sae: str | None = None
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """(metadata columns, values matrix, value kind) of the kept tiles: activations, else pooled embeddings."""
    keep = np.ones(store.n_tiles, bool) if keep is None else keep
    values, kind = store.values(sae)
    index = np.flatnonzero(keep)
    matrix = np.asarray(values.oindex[index, :] if len(index) else np.empty((0, values.shape[1])), dtype=np.float32)
    computed = ~np.isnan(matrix).any(axis=1)  # tiles the viewer has not computed yet are left out
    index, matrix = index[computed], matrix[computed]
    coords = store.coords[index]
    centres_um = store.tile_centres[index] * store.slide_mpp
    meta = pd.DataFrame(
        {
            "tile": index,
            "x": coords[:, 0],
            "y": coords[:, 1],
            "centre_x_um": centres_um[:, 0],
            "centre_y_um": centres_um[:, 1],
            "tissue_fraction": store.tissue_fraction[index],
        }
    )
    return meta, matrix, kind


def _table_format(path: str | Path) -> str:
    """The output's suffix, once it is one we write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise PathsaeError(f"{Path(path).name}: choose a .csv, .parquet, .h5ad, .h5, .geojson or .zarr output")
    return suffix


def checked_output(path: str | Path, overwrite: bool = False) -> Path:
    """``path`` once its format is one we write and it may be written (before any work)."""
    _table_format(path)
    return writable_target(path, overwrite)


def write_table(
    meta: pd.DataFrame,
    matrix: np.ndarray,
    kind: str,
    path: str | Path,
    obsm_xy: np.ndarray,
    extra_uns: dict,
    overwrite: bool = False,
) -> Path:
    """CSV/Parquet (one column per feature) or .h5ad (X = values, obsm['spatial'] = (x, y)), written atomically."""
    suffix = _table_format(path)  # atomic_output checks that it may be written
    prefix = "f" if kind == "activation" else "e"
    columns = [f"{prefix}{i}" for i in range(matrix.shape[1])]
    with atomic_output(path, overwrite) as temp:
        if suffix == ".h5ad":
            obs = meta.copy()
            obs.index = [str(i) for i in meta.iloc[:, 0]]
            adata = ad.AnnData(X=matrix, obs=obs, var=pd.DataFrame(index=columns))
            adata.obsm["spatial"] = np.asarray(obsm_xy, dtype=float)
            adata.uns["pathsae"] = json.loads(json.dumps({"values": kind, **extra_uns}, default=str))
            adata.write_h5ad(temp)
        else:
            table = pd.concat([meta.reset_index(drop=True), pd.DataFrame(matrix, columns=columns)], axis=1)
            table.to_csv(temp, index=False) if suffix == ".csv" else table.to_parquet(temp, index=False)
    return path


def export_tiles(
    store: TileStore,
    path: str | Path,
    bbox=None,
    geojson=None,
    sae: str | None = None,
    overwrite: bool = False,
    polygon=None,
    region_class: str | None = None,
    features: list[int] | None = None,
    concepts: pd.Series | None = None,
) -> int:
    """Write the region's tile table; returns the number of rows. For QuPath GeoJSON, ``features`` are the
    measurements (default: the strongest ten on average) and ``concepts`` (tile → concept) the classes."""
    checked_output(path, overwrite)
    centres = store.tile_centres
    meta, matrix, kind = tile_table(store, region_mask(centres, bbox, geojson, polygon, region_class), sae)
    if len(meta) == 0:
        raise PathsaeError("no tile lies in the region")
    if features and max(features) >= matrix.shape[1]:
        raise PathsaeError(f"feature {max(features)} does not exist (the store holds {matrix.shape[1]})")
    if _table_format(path) == ".zarr":
        return export_spatialdata(store, path, None, bbox, geojson, sae, overwrite, polygon, region_class)[0]
    if _table_format(path) == ".geojson":
        from .qupath_geojson import chosen_features, write_qupath_geojson

        region = region_outline(bbox, geojson, polygon, region_class)
        with atomic_output(path, overwrite) as temp:
            write_qupath_geojson(store, meta, matrix, kind, chosen_features(matrix, features), temp, region, concepts)
        return len(meta)
    if _table_format(path) == ".h5":
        from .trident_h5 import write_trident_h5

        with atomic_output(path, overwrite) as temp:
            write_trident_h5(store, meta, matrix, kind, sae or _activation_name(store, kind), temp)
        return len(meta)
    xy = centres[meta["tile"].to_numpy()].astype(float)
    write_table(meta, matrix, kind, path, xy, {"store": str(store.path), "provenance": store.provenance}, overwrite)
    return len(meta)


def export_spatialdata(
    store: TileStore,
    path: str | Path,
    sample=None,
    bbox=None,
    geojson=None,
    sae: str | None = None,
    overwrite: bool = False,
    polygon=None,
    region_class: str | None = None,
    image_side: int | None = None,
) -> tuple[int, int, list[str]]:
    """A SpatialData zarr of the region's tiles (and the sample's spots in it): (tiles, spots, notes)."""
    from .spatialdata_zarr import IMAGE_MAX_SIDE, write_spatialdata

    writable_target(path, overwrite)
    meta, matrix, kind = tile_table(store, region_mask(store.tile_centres, bbox, geojson, polygon, region_class), sae)
    if len(meta) == 0:
        raise PathsaeError("no tile lies in the region")
    spot_values = None
    if sample is not None:
        array, _ = store.values(sae)
        spot_values, _ = aggregate_to_spots(store, sample, np.asarray(array[:], dtype=np.float32))
        keep = region_mask(sample.spots_level0_xy, bbox, geojson, polygon, region_class)
        if not keep.any():
            raise PathsaeError("no spot lies in the region")
        sample, spot_values = _subset(sample, keep), spot_values[keep]
    side = IMAGE_MAX_SIDE if image_side is None else image_side
    with atomic_folder(path, overwrite) as staging:
        staging.rmdir()  # spatialdata writes the folder itself
        notes = write_spatialdata(store, meta, matrix, kind, staging, sample, spot_values, side)
    return len(meta), 0 if sample is None else sample.adata.n_obs, notes


def _activation_name(store: TileStore, kind: str) -> str | None:
    return store.activation_names()[0] if kind == "activation" else None


def export_spots(
    store: TileStore,
    sample,
    path: str | Path,
    genes: list[str] | None = None,
    sae: str | None = None,
    overwrite: bool = False,
    polygon=None,
    bbox=None,
    geojson=None,
    region_class: str | None = None,
) -> int:
    """Visium spot table: aggregated tile features beside the spots' normalised expression, for the spots
    whose centres lie in the region (``bbox``, ``geojson`` and/or ``polygon``, as for tiles)."""
    if _table_format(path) in TILE_FORMATS:
        name = Path(path).name
        raise PathsaeError(f"{name}: a spot table is written as .csv, .parquet or .h5ad, not {Path(path).suffix}")
    checked_output(path, overwrite)
    array, kind = store.values(sae)
    values, covered = aggregate_to_spots(store, sample, np.asarray(array[:], dtype=np.float32))
    expression = normalised_expression(sample, genes)
    if bbox is not None or geojson is not None or polygon is not None:
        keep = region_mask(sample.spots_level0_xy, bbox, geojson, polygon, region_class)
        if not keep.any():
            raise PathsaeError("no spot lies in the region")
        sample = _subset(sample, keep)
        values, covered, expression = values[keep], covered[keep], expression[keep]
    report_spot_use(sample, covered, values, expression)
    meta = pd.DataFrame(
        {
            "barcode": sample.adata.obs_names,
            "x": sample.adata.obsm["spatial"][:, 0],
            "y": sample.adata.obsm["spatial"][:, 1],
            "tile_coverage": covered,
        }
    )
    meta = pd.concat([meta, expression.reset_index(drop=True).add_prefix("gene_")], axis=1)
    write_table(meta, values, kind, path, sample.adata.obsm["spatial"], {"store": str(store.path)}, overwrite)
    return len(meta)


def _subset(sample, keep: np.ndarray):
    from dataclasses import replace

    return replace(sample, adata=sample.adata[keep])
