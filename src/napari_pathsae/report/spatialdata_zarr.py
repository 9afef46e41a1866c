"""A store as a SpatialData zarr, for spatialdata and napari-spatialdata: the slide (a multiscale image, at
most IMAGE_MAX_SIDE px a side unless asked), tiles as square shapes with their activations as a table, and
Visium spots as circles with their genes (and the features aggregated under them) as a table; one
coordinate system, ``global``, in µm.

SpatialData places pixel i of an image on [i, i + 1) of its own axes, as level-0 px p covers [p, p + 1) here:
a level downsampled d times is scaled by d·µm/px, tiles and spots (level-0 px) by µm/px.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.identity import verified_slide_path
from ..data.store import TileStore
from ..io.slides import open_slide

#: The slide is written at its finest level whose longest side is at most this (level 0 with image_side=0).
IMAGE_MAX_SIDE = 8192
#: Coarser levels are added down to about this side.
SMALLEST_SIDE = 1024
COORDINATES = "global"


def write_spatialdata(
    store: TileStore,
    meta: pd.DataFrame,
    matrix: np.ndarray,
    kind: str,
    target: Path,
    sample=None,
    spot_values: np.ndarray | None = None,
    image_side: int = IMAGE_MAX_SIDE,
) -> list[str]:
    """Write the SpatialData zarr at ``target`` (not there yet); returns notes (the slide gone, its level)."""
    with warnings.catch_warnings():
        # spatialdata's imports warn about pkg_resources, zarr about its sharding to come: nothing to act on
        warnings.simplefilter("ignore")
        return _write(store, meta, matrix, kind, target, sample, spot_values, image_side)


def _write(store, meta, matrix, kind, target, sample, spot_values, image_side) -> list[str]:
    notes: list[str] = []
    path = verified_slide_path(store)
    if path is None:
        notes.append(f"{store.provenance['slide_path']} is gone: the SpatialData has no slide image")
        slide = None
    else:  # kept open until written: the image's levels are read lazily, as the zarr is written
        slide = open_slide(path, mpp=store.slide_mpp, backend=store.provenance.get("slide_backend"))
    try:
        images = {} if slide is None else {"slide": _slide_image(store, slide, image_side, notes)}
        _write_elements(store, meta, matrix, kind, target, sample, spot_values, images)
    finally:
        if slide is not None:
            slide.close()
    return notes


def _write_elements(store, meta, matrix, kind, target, sample, spot_values, images) -> None:
    from spatialdata import SpatialData

    shapes = {"tiles": _tile_shapes(store, meta)}
    tables = {"tile_features": _tile_table(meta, matrix, kind, _values_source(store, kind))}
    if sample is not None:
        shapes["spots"] = _spot_shapes(store, sample)
        tables["spot_genes"] = _spot_table(sample, spot_values, kind)
    SpatialData(images=images, shapes=shapes, tables=tables).write(target)


def _scale(factor: float, axes: tuple[str, ...]):
    from spatialdata.transformations import Scale

    return {COORDINATES: Scale([factor] * len(axes), axes=axes)}


def _slide_image(store: TileStore, slide, image_side: int, notes: list[str]):
    from spatialdata.models import Image2DModel

    sides = [max(shape[:2]) if slide.axes != "CYX" else max(shape[1:]) for shape in slide.level_shapes]
    level = 0 if image_side <= 0 else next((i for i, s in enumerate(sides) if s <= image_side), len(sides) - 1)
    pixels = slide.levels[level]
    if slide.axes == "YXS":
        pixels = pixels[..., :3].transpose(2, 0, 1)
    elif slide.axes == "YX":
        pixels = pixels[None]
    halvings = int(max(0, np.ceil(np.log2(max(sides[level] / SMALLEST_SIDE, 1)))))
    factor = slide.downsample(level) * store.slide_mpp
    if level:
        notes.append(f"slide written at level {level} ({sides[level]} px long side, {factor:.3g} µm/px)")
    image = Image2DModel.parse(
        pixels.rechunk((pixels.shape[0], 1024, 1024)), dims=("c", "y", "x"),
        c_coords=["r", "g", "b"] if pixels.shape[0] == 3 else None,
        transformations=_scale(factor, ("y", "x")), scale_factors=[2] * halvings or None,
    )  # fmt: skip
    return image


def _tile_shapes(store: TileStore, meta: pd.DataFrame):
    import geopandas as gpd
    import shapely
    from spatialdata.models import ShapesModel

    x, y = meta["x"].to_numpy(float), meta["y"].to_numpy(float)
    side = store.tile_side0
    squares = shapely.box(x, y, x + side, y + side)
    frame = gpd.GeoDataFrame({"tile": meta["tile"].to_numpy()}, geometry=squares, index=meta["tile"].to_numpy())
    return ShapesModel.parse(frame, transformations=_scale(store.slide_mpp, ("x", "y")))


def _values_source(store: TileStore, kind: str) -> str:
    """What made the table's values: the encoder, or the encoder and the SAE (read back by the importer)."""
    encoder = store.provenance["encoder"]
    name = encoder.get("architecture") or encoder.get("spec")
    return f"{name} + SAE {store.activation_names()[0]}" if kind == "activation" else name


def _tile_table(meta: pd.DataFrame, matrix: np.ndarray, kind: str, source: str):
    import anndata as ad
    from spatialdata.models import TableModel

    obs = meta.reset_index(drop=True).copy()
    obs.index = obs["tile"].astype(str).to_numpy()
    obs["region"] = pd.Categorical(["tiles"] * len(obs))
    obs["instance_id"] = obs["tile"].to_numpy()
    prefix = "f" if kind == "activation" else "e"
    var = pd.DataFrame(index=[f"{prefix}{i}" for i in range(matrix.shape[1])])
    table = ad.AnnData(X=np.asarray(matrix, np.float32), obs=obs, var=var)
    table.uns["pathsae"] = {"encoder": source, "values": kind}
    return TableModel.parse(table, region="tiles", region_key="region", instance_key="instance_id")


def _spot_shapes(store: TileStore, sample):
    import geopandas as gpd
    import shapely
    from spatialdata.models import ShapesModel

    xy = sample.spots_level0_xy
    frame = gpd.GeoDataFrame(
        {"radius": np.full(len(xy), sample.spot_diameter_fullres / 2)},
        geometry=shapely.points(xy[:, 0], xy[:, 1]), index=np.arange(len(xy)),
    )  # fmt: skip
    return ShapesModel.parse(frame, transformations=_scale(store.slide_mpp, ("x", "y")))


def _spot_table(sample, spot_values: np.ndarray | None, kind: str):
    from spatialdata.models import TableModel

    table = sample.adata.copy()
    table.obs["barcode"] = table.obs_names.to_numpy()
    table.obs["region"] = pd.Categorical(["spots"] * table.n_obs)
    table.obs["instance_id"] = np.arange(table.n_obs)
    if spot_values is not None:  # the tile features averaged under each spot (NaN where no tile is)
        table.obsm["pathsae_" + ("features" if kind == "activation" else "embeddings")] = spot_values
    return TableModel.parse(table, region="spots", region_key="region", instance_key="instance_id")
