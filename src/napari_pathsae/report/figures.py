"""Static figures (PNG, matplotlib without a display) of the analyses: tile maps over the tissue, spot maps.

Every map is drawn in level-0 pixels of the store's slide, the frame tiles and Visium spots share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.identity import verified_slide_path
from ..data.outputs import atomic_output
from ..data.store import TileStore
from ..data.viewport import tile_value_grid
from ..io.slides import open_slide

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
    height, width = store.provenance["slide_shape_yx"]
    coords, side = store.coords, store.tile_side0
    x0, y0 = np.clip(coords.min(axis=0) - side, 0, None)
    x1, y1 = np.minimum(coords.max(axis=0) + 2 * side, (width, height))
    box = (width, height, float(x0), float(y0), float(x1), float(y1))
    path = verified_slide_path(store)
    if path is None:
        return None, box
    slide = open_slide(path, backend=store.provenance.get("slide_backend"))
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
    grid = tile_value_grid(store.grid_index, store.grid_shape, values)
    step, (x0, y0) = store.grid_step0, store.grid_origin0
    return grid, [x0, x0 + grid.shape[1] * step, y0 + grid.shape[0] * step, y0]


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


def _concept_names(legend, concepts, width: int = 26) -> list[str]:
    """'3: f12, f40, f7' for each concept, cut to ``width`` characters (user labels can be long)."""
    features = dict(zip(legend["concept"], legend["top_features"], strict=True)) if legend is not None else {}
    names = []
    for c in concepts:
        name = f"{c}: {features[c]}" if c in features else str(c)
        names.append(name if len(name) <= width else name[: width - 1] + "…")
    return names


def concept_neighbourhood_figure(pairs, co_occurrence, legend, path: str | Path, cross_pairs: int = 3) -> Path:
    """Neighbourhood enrichment z of every concept pair (a heatmap centred at 0), and co-occurrence over
    distance of each concept with itself and of the ``cross_pairs`` pairs whose z is furthest from 0."""
    import matplotlib

    concepts = sorted(pairs["concept_a"].unique())
    k = len(concepts)
    z = pairs.pivot(index="concept_a", columns="concept_b", values="nhood_z").reindex(concepts, columns=concepts)
    values = z.to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    limit = max(3.0, float(finite.max()) if finite.size else 3.0)  # ±3 at least: a null's z stays pale
    store = pairs["store"].iloc[0]
    tiles = int(pairs.drop_duplicates("concept_a")["tiles_a"].sum())
    figure, axes = _figure(
        2, f"Concept neighbourhoods over {store}: {tiles} tiles, each joined to its 8 neighbours", panel_inches=6.0
    )

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.85")  # a z no shuffle could change: grey
    heat = axes[0].imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit)
    names = _concept_names(legend, concepts)
    axes[0].set_xticks(range(k), names, rotation=40, ha="right", fontsize=8)
    axes[0].set_yticks(range(k), names, fontsize=8)
    axes[0].set_xlabel("concept b", fontsize=9)
    axes[0].set_ylabel("concept a", fontsize=9)
    axes[0].set_title("neighbourhood enrichment (z)", fontsize=9)
    size = 9 if k <= 8 else 7 if k <= 14 else 5
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            text = "n/a" if not np.isfinite(v) else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
            colour = "white" if np.isfinite(v) and abs(v) > 0.6 * limit else "black"
            axes[0].text(j, i, text, ha="center", va="center", fontsize=size, color=colour)
    bar = figure.colorbar(heat, ax=axes[0], orientation="horizontal", location="bottom", shrink=0.8, aspect=30)
    bar.set_label("z against the labels shuffled over the tiles: > 0, touch more often than chance; < 0, keep apart")
    bar.ax.xaxis.label.set_fontsize(8)

    ax = axes[1]
    n_colours = len(legend) if legend is not None else int(max(concepts))  # the concept map's colours
    colours = matplotlib.colormaps["tab20"].resampled(max(n_colours, 2))
    for c in concepts:
        own = co_occurrence[(co_occurrence["concept_a"] == c) & (co_occurrence["concept_b"] == c)]
        ax.plot(own["distance_tiles"], own["co_occurrence_ratio"], "o-", color=colours(c - 1), label=f"{c} with {c}")
    cross = pairs[(pairs["concept_a"] < pairs["concept_b"]) & np.isfinite(pairs["nhood_z"])]
    strongest = cross.loc[cross["nhood_z"].abs().sort_values(ascending=False).index[:cross_pairs]]
    for row in strongest.itertuples():
        a, b = row.concept_a, row.concept_b
        line = co_occurrence[(co_occurrence["concept_a"] == a) & (co_occurrence["concept_b"] == b)]
        label = f"{a} with {b} (z {row.nhood_z:+.1f})"
        style = {"color": colours(a - 1), "markerfacecolor": colours(b - 1), "label": label}
        ax.plot(line["distance_tiles"], line["co_occurrence_ratio"], "s--", **style)
    ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle=":")
    ax.set_yscale("log", nonpositive="mask")  # a pair never within a distance (ratio 0) leaves a gap
    ratios = co_occurrence["co_occurrence_ratio"].to_numpy(dtype=float)
    shown = ratios[np.isfinite(ratios) & (ratios > 0)]
    if shown.size:  # plain numbers on the log axis: 0.1, 0.2, 0.5, 1, 2, 5 read more easily than powers of 10
        ticks = [
            t
            for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
            if shown.min() / 1.5 <= t <= shown.max() * 1.5
        ]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel("within distance (tile sides)", fontsize=9)
    ax.set_ylabel("co-occurrence: P(b near a) / P(b)  (1 = chance)", fontsize=9)
    ax.set_title("co-occurrence over distance", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    return save(figure, path)


def sae_report_figure(report, path: str | Path) -> Path:
    """One page: the headline metrics, the feature-density histogram, cross-seed stability and the features
    whose best gene survives the spatial test (the last two when the report has them)."""
    summary, features = report.summary, report.features
    panels = 2 + ("stability" in summary) + ("biology" in summary)
    figure, axes = _figure(panels, f"SAE report: {Path(summary['sae']).name} over {summary['n_tiles']} tiles")
    lines = [
        f"features          {summary['n_features']}",
        f"explained var.    {summary['explained_variance']:.4f}",
        f"MSE               {summary['mse']:.4g}",
        f"L0                {summary['l0']:.1f}",
        f"dead              {summary['dead_fraction']:.1%}",
        f"dense (>10%)      {summary['dense_fraction']:.1%}",
        f"shrinkage ‖x̂‖/‖x‖ {summary['l2_ratio']:.3f}",
    ]
    if "stability" in summary:
        s = summary["stability"]
        lines.append(f"stable (r≥{s['stable_r']})   {s['stable_features']} of {s['features_compared']}")
    if "biology" in summary:
        b = summary["biology"]
        lines.append(f"spatial gene      {b['features_with_spatial_gene']} of {b['features_tested']}")
        lines.append(f"naive gene        {b['features_with_naive_gene']} of {b['features_tested']}")
    axes[0].axis("off")
    axes[0].text(0.02, 0.98, "\n".join(lines), va="top", family="monospace", fontsize=10, transform=axes[0].transAxes)
    density = features["density"].to_numpy()
    live = density[density > 0]
    axes[1].hist(np.log10(live), bins=30, color="#3b6ea8")
    axes[1].set(xlabel="log10 fraction of tiles a feature fires on", ylabel="features")
    axes[1].set_title(f"feature density ({int((density == 0).sum())} dead)", fontsize=10)
    axes[1].axvline(-1, color="#b03a2e", linestyle="--", linewidth=1, label="dense above")
    axes[1].legend(fontsize=8)
    ax = 2
    if "stability" in summary:
        r = features.loc[features["comparable"], "stability_r"].dropna()
        axes[ax].hist(r, bins=np.linspace(min(0, float(r.min()) if len(r) else 0), 1, 31), color="#4a8c5c")
        axes[ax].axvline(summary["stability"]["stable_r"], color="#b03a2e", linestyle="--", linewidth=1)
        axes[ax].set(xlabel="best-match activation r in the other seed", ylabel="features")
        axes[ax].set_title(f"cross-seed stability (median {summary['stability']['median_r'] or 0:.2f})", fontsize=10)
        ax += 1
    if "biology" in summary:
        top = summary["biology"]["top"][:10][::-1]
        if top:
            names = [f"{t['feature']}: {t['gene']}" for t in top]
            axes[ax].barh(names, [t["spearman_r_bound"] for t in top], color="#8e5ea2")
            axes[ax].set(xlabel="Spearman r, 95% bound nearest 0")
        else:
            axes[ax].text(0.5, 0.5, "no feature has a gene\nat spatial q ≤ 0.05", ha="center", va="center")
            axes[ax].axis("off")
        axes[ax].set_title("features with a gene surviving the spatial test", fontsize=10)
    return save(figure, path)
