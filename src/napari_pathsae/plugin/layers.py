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


def spots_layer(sample: VisiumSample, genes: Sequence[str] = (), color_by: str | None = None) -> LayerDataTuple:
    """A Points layer of spots in world (row, col), sized to the spot diameter."""
    features = spot_features(sample, genes)
    color_by = color_by or (genes[0] if genes else "total_counts")
    if color_by not in features:
        raise PathsaeError(f"cannot colour spots by {color_by!r}: not a spot feature")
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


def visium_layers(sample: VisiumSample, genes: Sequence[str] = ()) -> list[LayerDataTuple]:
    """The tissue image (when there is one) under the spots, both in the sample's world frame."""
    layers = []
    if sample.image is not None:
        name = f"{sample.library_id} H&E ({sample.image_kind})"
        layers.append(slide_layer(sample.image, sample.frame, sample.image_px_in_fullres_px, name))
    layers.append(spots_layer(sample, genes))
    return layers
