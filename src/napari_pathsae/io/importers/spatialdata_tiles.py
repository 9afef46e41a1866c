"""Tiles as shapes with their features as a table in a SpatialData zarr: LazySlide's (wsidata) files and this
package's own SpatialData export, read with spatialdata.

LazySlide writes the tiles as square polygons in level-0 px (``shapes/<tiles>``, Identity to ``global``), each
encoder's features as a table ``<model>_<tiles>`` annotating them (instance key ``tile_id``), and its tiling
on the zarr's attributes (``tile_spec``: size and stride in target px, target µm/px; ``slide_properties``:
the slide's shape). A file with several encoders' tables picks one with ``--encoder``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import PathsaeError, reported_as
from . import EmbeddingImporter, ImportedTiles, register_importer


def is_spatialdata(path: Path) -> bool:
    return path.is_dir() and (path / "shapes").is_dir() and (path / "tables").is_dir()


def read_spatialdata(path: Path, coords_path: Path | None, mpp: float, encoder: str | None = None) -> ImportedTiles:
    if coords_path is not None:
        raise PathsaeError("a SpatialData zarr holds its own tiles: drop --coords")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spatialdata's imports and reader warn about libraries, not the file
        import spatialdata

        with reported_as(f"{path.name}: not a readable SpatialData zarr"):
            sdata = spatialdata.read_zarr(path)
    name, table, region = _features_table(sdata, path, encoder)
    shapes = sdata.shapes[region]
    _check_pixel_frame(shapes, path, region)
    ids = table.obs[table.uns["spatialdata_attrs"]["instance_key"]].to_numpy()
    with reported_as(f"{path.name}: the table {name!r} names tiles its shapes {region!r} do not hold"):
        bounds = np.stack(shapes.loc[ids].geometry.bounds.to_numpy())
    widths, heights = bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]
    side0 = float(np.median(widths))
    if np.abs(widths - side0).max() > 1 or np.abs(heights - side0).max() > 1:
        raise PathsaeError(f"{path.name}: the tiles of {region!r} are not squares of one size")
    spec = dict(sdata.attrs.get("tile_spec", {}).get(region, {}))
    step0 = side0 * spec["stride_width"] / spec["width"] if spec.get("width") else None
    slide = sdata.attrs.get("slide_properties", {}).get("shape")  # (height, width) as wsidata records it
    own = dict(table.uns.get("pathsae", {}))
    model = own.get("encoder") or (name.removesuffix(f"_{region}") if name.endswith(f"_{region}") else "unknown")
    features = np.asarray(table.X.toarray() if hasattr(table.X, "toarray") else table.X, dtype=np.float32)
    metadata = {"table": name, "shapes": region, "tile_spec": spec}
    return ImportedTiles(
        bounds[:, :2], side0, step0, features, str(model), int(spec["width"]) if spec.get("width") else None,
        "spatialdata", metadata, [], (int(slide[1]), int(slide[0])) if slide else None,
    )  # fmt: skip


def _features_table(sdata, path: Path, encoder: str | None):
    """(name, table, shapes element) of the features table: the one there is, or the one of ``encoder``."""
    found = []
    for name, table in sdata.tables.items():
        region = table.uns.get("spatialdata_attrs", {}).get("region")
        if isinstance(region, str) and region in sdata.shapes:
            found.append((name, table, region))
    if encoder is not None:
        found = [f for f in found if f[0] in (encoder, f"{encoder}_{f[2]}")]
    if len(found) != 1:
        tables = ", ".join(name for name, _, _ in found) or "none annotating tiles"
        pick = " (choose one with --encoder)" if len(found) > 1 else ""
        wanted = f" for encoder {encoder!r}" if encoder else ""
        raise PathsaeError(f"{path.name}: {len(found)} feature tables{wanted}: {tables}{pick}")
    return found[0]


def _check_pixel_frame(shapes, path: Path, region: str) -> None:
    """The shapes' own coordinates must be slide pixels: an Identity or a plain scale (to µm) to ``global``."""
    from spatialdata.transformations import Identity, Scale, get_transformation

    transforms = get_transformation(shapes, get_all=True)
    if not all(isinstance(t, Identity | Scale) for t in transforms.values()):
        raise PathsaeError(f"{path.name}: the shapes {region!r} are moved or turned against the slide's pixels")


register_importer(
    EmbeddingImporter(
        "spatialdata", "LazySlide / SpatialData zarr (tiles as shapes, features as a table)",
        is_spatialdata, read_spatialdata,
    )
)  # fmt: skip
