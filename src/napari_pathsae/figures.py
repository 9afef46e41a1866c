"""Static figures (PNG, matplotlib without a display) of the analyses: tile maps over the tissue, spot maps.

Every map is drawn in level-0 pixels of the store's slide, the frame tiles and Visium spots share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .store import TileStore

#: Longest side of the tissue image drawn under the maps.
THUMBNAIL_PX = 1600


def _figure(panels: int, title: str, panel_inches: float = 4.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel_inches * panels, panel_inches + 0.4), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    figure.suptitle(title, fontsize=11)
    return figure, axes


def tissue_background(store: TileStore) -> tuple[np.ndarray | None, tuple[float, float, float, float]]:
    """A small RGB image of the store's slide (None when the slide file is gone; refused when the file at
    its path is another one) and the level-0 box to show: (width, height, then the tiles' bounds with a
    tile's margin: x0, y0, x1, y1)."""
    from .identity import verified_slide_path
    from .io.slides import open_slide

    height, width = store.provenance["slide_shape_yx"]
    coords, side = store.coords, store.tile_side0
    x0, y0 = np.clip(coords.min(axis=0) - side, 0, None)
    x1, y1 = np.minimum(coords.max(axis=0) + 2 * side, (width, height))
    box = (width, height, float(x0), float(y0), float(x1), float(y1))
    path = verified_slide_path(store)
    if path is None:
        return None, box
    slide = open_slide(path)
    try:
        level = next(
            (i for i, s in enumerate(slide.level_shapes) if max(s[:2]) <= 4 * THUMBNAIL_PX), len(slide.levels) - 1
        )
        pixels = slide.read_level(level)
    finally:
        slide.close()
    step = max(1, int(np.ceil(max(pixels.shape[:2]) / THUMBNAIL_PX)))
    return np.ascontiguousarray(pixels[::step, ::step, :3]), box


def tile_grid_values(store: TileStore, values: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """(rows, cols) grid of per-tile ``values`` (NaN where no tile) and its imshow extent in level-0 pixels."""
    index = np.asarray(store.root["grid_index"][:])
    grid = np.full(index.max(axis=0) + 1, np.nan, dtype=np.float32)
    grid[index[:, 0], index[:, 1]] = values
    side = store.tile_side0
    return grid, [0.0, grid.shape[1] * side, grid.shape[0] * side, 0.0]


def _draw_tissue(ax, background, box) -> None:
    width, height, x0, y0, x1, y1 = box
    if background is not None:
        ax.imshow(background, extent=[0, width, height, 0])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_axis_off()


def draw_tile_map(ax, store: TileStore, values: np.ndarray, background, box, title: str, **style) -> object:
    """Per-tile ``values`` over the tissue; returns the image (for a colour bar)."""
    _draw_tissue(ax, background, box)
    grid, extent = tile_grid_values(store, values)
    image = ax.imshow(grid, extent=extent, interpolation="nearest", **{"cmap": "magma", "alpha": 0.8, **style})
    ax.set_title(title, fontsize=9)
    return image


def draw_spot_map(ax, xy: np.ndarray, values: np.ndarray, diameter: float, background, box, title: str, **style):
    """Spot ``values`` as disks at full-resolution (x, y) over the tissue; returns the collection."""
    from matplotlib.collections import EllipseCollection

    _draw_tissue(ax, background, box)
    limits = style.pop("vmin", None), style.pop("vmax", None)
    disks = EllipseCollection(
        diameter, diameter, 0, units="xy", offsets=xy, offset_transform=ax.transData, array=np.asarray(values),
        **{"cmap": "viridis", **style},
    )  # fmt: skip
    disks.set_clim(*limits)
    ax.add_collection(disks)
    ax.set_title(title, fontsize=9)
    return disks


def save(figure, path: str | Path) -> Path:
    """Write the figure as a PNG, atomically."""
    from .outputs import atomic_output

    with atomic_output(path, overwrite=True) as temp:
        figure.savefig(temp, dpi=90, format="png")
    return Path(path)


def gene_prediction_figure(store: TileStore, sample, prediction, gene: str, path: str | Path, maps: int = 2) -> Path:
    """Measured and held-out predicted expression of ``gene`` at the spots, and activation maps of the
    features with the largest shares of its prediction."""
    background, box = tissue_background(store)
    spots = prediction.spots
    row = prediction.table.set_index("gene").loc[gene]
    top = prediction.features[prediction.features["gene"] == gene].head(maps)
    figure, axes = _figure(
        2 + len(top), f"{gene}: held-out r = {row['r']:.2f} ({row['model']}, {int(row['n_spots'])} spots)"
    )
    xy = spots[["x", "y"]].to_numpy(dtype=float) + 0.5
    measured, predicted = spots[f"measured_{gene}"].to_numpy(), spots[f"predicted_{gene}"].to_numpy()
    limits = {"vmin": float(np.nanpercentile(measured, 2)), "vmax": float(np.nanpercentile(measured, 98))}
    diameter = sample.spot_diameter_fullres
    draw_spot_map(axes[0], xy, measured, diameter, background, box, "measured (log1p CP10k)", **limits)
    spots_image = draw_spot_map(
        axes[1], xy, predicted, diameter, background, box, "predicted, held-out folds", **limits
    )
    figure.colorbar(spots_image, ax=axes[:2], shrink=0.6)
    prefix = prediction.feature_prefix
    for ax, (_, feature) in zip(axes[2:], top.iterrows(), strict=True):
        column = int(feature["feature"].removeprefix(prefix))
        values = prediction.tile_values[:, column]
        image = draw_tile_map(ax, store, values, background, box, _share_title(feature))
        figure.colorbar(image, ax=ax, shrink=0.6)
    return save(figure, path)


def _share_title(feature) -> str:
    return f"{feature['feature']}: {feature['share']:.0%} of the prediction (own r {feature['feature_r']:+.2f})"


def concept_map_figure(store: TileStore, labels: np.ndarray, legend, path: str | Path) -> Path:
    """Each tile coloured by its concept (1..k; 0, not computed, left clear), with the legend's tile counts."""
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    background, box = tissue_background(store)
    k = len(legend)
    figure, axes = _figure(2, f"{k} concepts over {store.path.name}", panel_inches=6.0)
    colours = matplotlib.colormaps["tab20"].resampled(max(k, 2))(np.arange(k))
    values = np.where(labels > 0, labels, np.nan).astype(np.float32)
    _draw_tissue(axes[0], background, box)
    axes[0].set_title("tissue", fontsize=9)
    draw_tile_map(
        axes[1],
        store,
        values,
        background,
        box,
        "concepts",
        cmap=ListedColormap(colours),
        vmin=0.5,
        vmax=k + 0.5,
        alpha=0.75,
    )
    handles = [
        Patch(color=colours[i], label=f"{row.concept}: {row.tiles} tiles ({row.top_features})")
        for i, row in enumerate(legend.itertuples())
    ]
    axes[1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    return save(figure, path)


def feature_gene_figure(
    store: TileStore,
    sample,
    tile_values: np.ndarray,
    spot_feature: np.ndarray,
    expression,
    feature: str,
    gene: str,
    r: float,
    path: str | Path,
) -> Path:
    """A feature's activation map, a gene at the spots, and the feature against the gene spot by spot."""
    background, box = tissue_background(store)
    figure, axes = _figure(3, f"{feature} against {gene}: r = {r:.2f} over spots")
    image = draw_tile_map(axes[0], store, tile_values, background, box, f"{feature} activation per tile")
    figure.colorbar(image, ax=axes[0], shrink=0.6)
    xy = sample.spots_level0_xy
    spots_image = draw_spot_map(
        axes[1], xy, expression, sample.spot_diameter_fullres, background, box, f"{gene} (log1p CP10k)"
    )
    figure.colorbar(spots_image, ax=axes[1], shrink=0.6)
    axes[2].scatter(spot_feature, expression, s=8, alpha=0.6)
    axes[2].set_xlabel(f"{feature}, spot mean of tiles")
    axes[2].set_ylabel(gene)
    return save(figure, path)
