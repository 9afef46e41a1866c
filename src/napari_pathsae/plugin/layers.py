"""Pure functions from engine objects to napari layer-data tuples (no viewer needed to test them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import PathsaeError
from ..io.frames import WorldFrame
from ..io.slides import Slide
from ..io.visium import VisiumSample
from ..names import LayerKind

LayerDataTuple = tuple


def _units(frame: WorldFrame) -> str:
    return "micrometer" if frame.mpp else "pixel"


def slide_layer(
    slide: Slide,
    frame: WorldFrame | None = None,
    px_in_fullres_px: float = 1.0,
    name: str | None = None,
) -> LayerDataTuple:
    """An Image layer of the slide's levels, scaled into ``frame`` (the slide's own by default)."""
    frame = frame or slide.frame
    scale = frame.grid_scale(px_in_fullres_px)
    name = name or (slide.path.name if slide.path else "image")
    if not frame.mpp:
        name += " [µm/px unknown]"
    kwargs = {
        "name": name,
        "multiscale": len(slide.levels) > 1,
        "metadata": {"pathsae": {**slide.metadata(), "world_mpp": frame.mpp, "kind": LayerKind.SLIDE}},
        "units": _units(frame),
    }
    if slide.axes == "CYX":
        kwargs["channel_axis"] = 0
    else:
        kwargs["rgb"] = slide.rgb
    kwargs["scale"] = scale
    data = slide.levels if len(slide.levels) > 1 else slide.levels[0]
    return (data, kwargs, "image")


def gene_vector(sample: VisiumSample, gene: str) -> np.ndarray:
    """Counts of one gene per spot, looked up by symbol or by gene id."""
    adata = sample.adata
    if gene in adata.var_names:
        column = adata.var_names.get_loc(gene)
    elif "gene_ids" in adata.var and gene in set(adata.var["gene_ids"]):
        column = int(np.flatnonzero(adata.var["gene_ids"].to_numpy() == gene)[0])
    else:
        raise PathsaeError(f"gene {gene!r} is not in this sample ({adata.n_vars} genes)")
    values = adata.X[:, column]
    return np.asarray(values.toarray() if sp.issparse(values) else values, dtype=float).ravel()


def spot_features(sample: VisiumSample, genes: Sequence[str] = ()) -> pd.DataFrame:
    """Per-spot table for the Points layer: barcode, total counts, in_tissue and chosen genes."""
    adata = sample.adata
    totals = adata.X.sum(axis=1)
    table = pd.DataFrame(
        {
            "barcode": adata.obs_names.to_numpy(),
            "total_counts": np.asarray(totals, dtype=float).ravel(),
        }
    )
    if "in_tissue" in adata.obs:
        table["in_tissue"] = adata.obs["in_tissue"].to_numpy()
    for gene in genes:
        table[gene] = gene_vector(sample, gene)
    return table


def bin_raster(sample: VisiumSample) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Visium HD bins as one raster: each bin's (row, col) in it and the 3x3 affine from raster (row, col) to
    world (row, col), fitted to the bins' own centres (so a registration's rotation is kept). None for spots."""
    obs = sample.adata.obs
    if sample.spot_shape != "square" or not {"array_row", "array_col"} <= set(obs.columns):
        return None
    rows, cols = obs["array_row"].to_numpy(np.int64), obs["array_col"].to_numpy(np.int64)
    rows, cols = rows - rows.min(), cols - cols.min()
    design = np.column_stack([rows, cols, np.ones(len(rows))])
    coefficients = np.linalg.lstsq(design, sample.spots_world, rcond=None)[0]  # (3, 2)
    misplaced = np.abs(design @ coefficients - sample.spots_world).max()
    if misplaced > sample.spot_diameter_world / 4:  # the array indices are not the bins' lattice: draw points
        return None
    affine = np.eye(3)
    affine[:2, :] = coefficients.T
    return rows, cols, affine


def raster_of(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(rows, cols) float32 image with each bin's value at its place, NaN (drawn transparent) elsewhere."""
    image = np.full((int(rows.max()) + 1, int(cols.max()) + 1), np.nan, np.float32)
    image[rows, cols] = values
    return image


def shown_limits(values: np.ndarray) -> tuple[float, float]:
    """2nd to 98th percentile: a few outlying spots would wash the rest out."""
    low, high = np.nanpercentile(values, [2, 98]) if np.isfinite(values).any() else (0.0, 1.0)
    return float(low), float(high) if high > low else float(low) + 1.0


def spot_values(layer, column: str) -> np.ndarray:
    """The values a spots layer holds for ``column`` (a Points layer's feature, or a bins raster's record)."""
    if layer.metadata["pathsae"].get("raster") is not None:
        return np.asarray(layer.metadata["pathsae"]["values"][column], dtype=float)
    return layer.features[column].to_numpy(dtype=float)


def spots_layer(sample: VisiumSample, genes: Sequence[str] = (), color_by: str | None = None) -> LayerDataTuple:
    """A Points layer of spots in world (row, col), sized to the spot diameter; Visium HD bins (hundreds of
    thousands) as one raster Image layer instead, one pixel a bin."""
    features = spot_features(sample, genes)
    color_by = color_by or (genes[0] if genes else "total_counts")
    if color_by not in features:
        raise PathsaeError(f"cannot colour spots by {color_by!r}: not a spot feature")
    raster = bin_raster(sample)
    if raster is not None:
        return _bins_layer(sample, features, color_by, raster)
    kwargs = {
        "name": f"{sample.library_id} spots: {color_by}" + (" (counts per spot)" if color_by in genes else ""),
        "size": sample.spot_diameter_world,
        "symbol": "square" if sample.spot_shape == "square" else "disc",
        "features": features,
        "face_color": color_by,
        "face_colormap": "viridis",
        "border_width": 0,
        "opacity": 0.75,
        "units": _units(sample.frame),
        "metadata": {
            "adata": sample.adata,
            "pathsae": {
                "kind": LayerKind.SPOTS,
                "path": str(sample.path),
                "library_id": sample.library_id,
                "world_mpp": sample.frame.mpp,
                "mpp_source": sample.mpp_source,
                "spot_diameter_fullres": sample.spot_diameter_fullres,
                "notes": list(sample.notes),
            },
        },
    }
    return (sample.spots_world, kwargs, "points")


def _bins_layer(sample: VisiumSample, features: pd.DataFrame, color_by: str, raster) -> LayerDataTuple:
    rows, cols, affine = raster
    values = features[color_by].to_numpy(dtype=float)
    kwargs = {
        "name": f"{sample.library_id} bins: {color_by}",
        "affine": affine,
        "colormap": "viridis",
        "contrast_limits": shown_limits(values),
        "interpolation2d": "nearest",
        "opacity": 0.75,
        "units": _units(sample.frame),
        "metadata": {
            "adata": sample.adata,
            "pathsae": {
                "kind": LayerKind.SPOTS, "path": str(sample.path), "library_id": sample.library_id,
                "world_mpp": sample.frame.mpp, "mpp_source": sample.mpp_source,
                "spot_diameter_fullres": sample.spot_diameter_fullres, "notes": list(sample.notes),
                "raster": {"rows": rows, "cols": cols}, "values": {c: features[c].to_numpy() for c in features},
            },
        },
    }  # fmt: skip
    return (raster_of(rows, cols, values), kwargs, "image")


def visium_layers(sample: VisiumSample, genes: Sequence[str] = ()) -> list[LayerDataTuple]:
    """The tissue image (when there is one) under the spots, both in the sample's world frame."""
    layers = []
    if sample.image is not None:
        name = f"{sample.library_id} H&E ({sample.image_kind})"
        layers.append(slide_layer(sample.image, sample.frame, sample.image_px_in_fullres_px, name))
    layers.append(spots_layer(sample, genes))
    return layers
