"""Tile activations aggregated to Visium spots, and every feature correlated with every gene.

Aggregation weights each tile by the area its square shares with the spot's disk (both in
level-0 pixels of the slide the tiles came from, which is the full-resolution image of the spots).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from ..data.identity import check_visium_matches
from ..data.store import TileStore
from ..errors import PathsaeError
from ..io.visium import VisiumSample
from ..names import feature_names
from .probe import spatial_folds, zscore
from .spatial_null import null_positions
from .spatial_stats import conservative_r, distance_classes, effective_n, morans_i, spatial_p_values

log = logging.getLogger(__name__)

#: Points per spot disk used to measure tile/disk overlap areas (a 24 x 24 lattice inside the disk).
DISK_SAMPLES = 24


def _disk_offsets(radius: float) -> np.ndarray:
    """(M, 2) (x, y) offsets of a regular lattice inside a disk: equal-area samples of it."""
    step = 2 * radius / DISK_SAMPLES
    grid = (np.arange(DISK_SAMPLES) + 0.5) * step - radius
    xx, yy = np.meshgrid(grid, grid)
    inside = xx**2 + yy**2 <= radius**2
    return np.stack([xx[inside], yy[inside]], axis=1)


def _square_tile_weights(store: TileStore, centres_xy: np.ndarray, side: float) -> sp.csr_matrix:
    """Exact overlap areas of axis-aligned squares with the tile grid's cells, as fractions of the square:
    a Visium HD bin meets at most a few cells, so this is a handful of vector operations for any count."""
    origin, step = np.asarray(store.grid_origin0), store.grid_step0
    low, high = centres_xy - side / 2, centres_xy + side / 2
    first = np.floor((low - origin) / step)
    spots, tiles, weights = [], [], []
    span = int(np.ceil(side / step)) + 1
    for dx in range(span):
        for dy in range(span):
            cell_low = origin + (first + np.array([dx, dy])) * step
            overlap = np.clip(np.minimum(high, cell_low + step) - np.maximum(low, cell_low), 0, None)
            area = overlap.prod(axis=1) / side**2
            tile = store.tile_at(cell_low + step / 2)  # the tile whose cell this is
            hit = (area > 0) & (tile >= 0)
            spots.append(np.flatnonzero(hit))
            tiles.append(tile[hit])
            weights.append(area[hit])
    entries = (np.concatenate(weights), (np.concatenate(spots), np.concatenate(tiles)))
    return sp.coo_matrix(entries, shape=(len(centres_xy), store.n_tiles)).tocsr()


def spot_tile_weights(
    store: TileStore, centres_xy: np.ndarray, diameter: float, block: int = 20_000, shape: str = "disc"
) -> sp.csr_matrix:
    """(spots x tiles) weights: the fraction of each spot's disk area lying in each tile (``shape`` "square":
    of each Visium HD bin's square, ``diameter`` its side, computed exactly).

    ``centres_xy`` are continuous level-0 coordinates (pixel p spans [p, p + 1)), as tile boxes are;
    Visium pixel indices need ``VisiumSample.spots_level0_xy``.
    """
    if shape == "square":
        return _square_tile_weights(store, np.asarray(centres_xy, dtype=float), diameter)
    offsets = _disk_offsets(diameter / 2)
    parts = []
    for begin in range(0, len(centres_xy), block):
        points = np.asarray(centres_xy[begin : begin + block], dtype=float)[:, None, :] + offsets[None]
        tile = store.tile_at(points)
        spot = np.broadcast_to(np.arange(begin, begin + len(points))[:, None], tile.shape)
        hit = tile >= 0
        parts.append((spot[hit], tile[hit]))
    spots = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, int)
    tiles = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, int)
    weights = np.full(len(spots), 1.0 / len(offsets))
    return sp.coo_matrix((weights, (spots, tiles)), shape=(len(centres_xy), store.n_tiles)).tocsr()


def aggregate_to_spots(
    store: TileStore,
    sample: VisiumSample,
    values: np.ndarray,
    centres_xy: np.ndarray | None = None,
    weights: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-spot overlap-weighted mean of tile ``values`` and each spot's covered fraction (0: no tile), under
    the sample's spots or, for a spatial null, under ``centres_xy`` (level-0 x, y) given for each of them;
    ``weights``: the sample's own spot_tile_weights when already computed (the viewer keeps them)."""
    check_same_section(store, sample)
    if weights is None or centres_xy is not None:
        centres = sample.spots_level0_xy if centres_xy is None else centres_xy
        weights = spot_tile_weights(store, centres, sample.spot_diameter_fullres, shape=sample.spot_shape)
    return spot_means(weights, values), np.asarray(weights.sum(axis=1)).ravel()


def correlate_activations(
    store: TileStore,
    sample: VisiumSample,
    activations: np.ndarray,
    genes: list[str] | None = None,
    top_genes: int | None = None,
    everything: bool = False,
    null: str | None = None,
    block_um: float | None = None,
    seed: int | None = None,
    weights: sp.csr_matrix | None = None,
) -> pd.DataFrame:
    """Feature x gene table of tile ``activations`` aggregated to the sample's spots (the spots used said in
    one line); with ``null`` (analysis/spatial_null.py), the same analysis with the spots moved off their
    own tissue, tested at their true positions (the layout, hence the autocorrelation, is the same).
    The one recipe behind ``pathsae correlate``, the report card and the viewer's spots panel."""
    sample, weights = (bins_to_tiles(store, sample), None) if is_bins(store, sample) else (sample, weights)
    coords = sample.spots_level0_xy * store.slide_mpp
    centres = None if null is None else null_positions(coords, null, block_um, seed) / store.slide_mpp
    spot_values, covered = aggregate_to_spots(store, sample, activations, centres, weights)
    expression = normalised_expression(sample, genes, top_genes)
    report_spot_use(sample, covered, spot_values, expression)
    names = feature_names(activations.shape[1])
    return correlation_table(spot_values, expression, coords, names, everything=everything)


def is_bins(store: TileStore, sample: VisiumSample) -> bool:
    """Visium HD bins smaller than half a tile: tested per tile, not per bin (bins under one tile share its
    features, so hundreds of thousands of bins would only repeat each tile's values)."""
    return sample.spot_shape == "square" and sample.spot_diameter_fullres < store.grid_step0 / 2


def bins_to_tiles(store: TileStore, sample: VisiumSample) -> VisiumSample:
    """The sample with its bins summed into the tiles they lie in (each bin's UMIs split by area where it
    straddles two), one square "spot" per tile cell: the unit that features and genes are tested on for
    Visium HD."""
    import anndata as ad

    check_same_section(store, sample)
    weights = spot_tile_weights(store, sample.spots_level0_xy, sample.spot_diameter_fullres, shape="square")
    per_tile = np.asarray(weights.sum(axis=0)).ravel()
    tiles = np.flatnonzero(per_tile > 0)
    counts = (weights[:, tiles].T @ sp.csr_matrix(sample.adata.X, dtype=np.float32)).tocsr()
    step, origin = store.grid_step0, np.asarray(store.grid_origin0)
    centres = origin + (store.grid_index[tiles, ::-1] + 0.5) * step  # continuous level-0 (x, y) of each cell
    obs = pd.DataFrame({"tile": tiles, "bins": per_tile[tiles]}, index=[f"tile_{t}" for t in tiles])
    adata = ad.AnnData(X=counts, obs=obs, var=sample.adata.var.copy())
    adata.obsm["spatial"] = centres - 0.5  # pixel-index convention of obsm['spatial']
    scalefactors = {**sample.scalefactors, "spot_diameter_fullres": step}
    note = f"{sample.adata.n_obs} bins summed into the {len(tiles)} tiles they lie in (tested per tile)"
    return replace(sample, adata=adata, scalefactors=scalefactors, notes=[*sample.notes, note])


def spot_means(weights: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """Overlap-weighted mean of tile ``values`` (N,) or (N, K) per spot, over the tiles computed so far
    (rows with NaN are left out); NaN for a spot with no computed tile under it."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    known = np.isfinite(flat).all(axis=1)
    covered = weights @ known.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ np.where(known[:, None], flat, 0.0)) / covered[:, None]
    means[covered == 0] = np.nan
    return means.reshape((-1, *values.shape[1:])).astype(np.float32)


@dataclass
class SpotDesign:
    """The spots with computed tiles that pass library QC: their inputs, expression and spatial folds."""

    inputs: np.ndarray  # (S, P) overlap-weighted mean of the tile values under each kept spot
    expression: pd.DataFrame  # (S, G) log-normalised expression of the kept spots
    keep: np.ndarray  # (all spots,) bool
    folds: np.ndarray  # (S,) held-out fold of each kept spot
    block_um: float  # side of the squares held out together
    overlap: sp.csr_matrix  # (all spots, tiles) overlap weights


def spot_design(
    store: TileStore,
    sample: VisiumSample,
    tile_values: np.ndarray,
    genes: list[str] | None,
    top_genes: int | None,
    n_folds: int,
    block_um: float,
) -> SpotDesign:
    """Tile values aggregated to the spots, the genes' expression, and spatially blocked folds over the spots
    that have both (a tile not computed yet is a NaN row; a spot under none of the computed ones is left out)."""
    check_same_section(store, sample)
    sample = bins_to_tiles(store, sample) if is_bins(store, sample) else sample
    overlap = spot_tile_weights(store, sample.spots_level0_xy, sample.spot_diameter_fullres, shape=sample.spot_shape)
    inputs = spot_means(overlap, tile_values)
    expression = normalised_expression(sample, genes, top_genes)
    keep = report_spot_use(sample, np.asarray(overlap.sum(axis=1)).ravel(), inputs, expression)
    if keep.sum() < 2 * n_folds:
        raise PathsaeError(
            f"only {int(keep.sum())} spots have computed tiles and pass library QC; "
            f"{n_folds} held-out folds need at least {2 * n_folds}"
        )
    folds, side = spatial_folds(sample.spots_level0_xy[keep] * store.slide_mpp, n_folds, block_um)
    return SpotDesign(inputs[keep].astype(np.float64), expression[keep], keep, folds, side, overlap)


def report_spot_use(
    sample: VisiumSample, covered: np.ndarray, spot_values: np.ndarray, expression: pd.DataFrame
) -> np.ndarray:
    """The spots an analysis uses (finite aggregated values, passing library QC), and one line saying why
    the others were left out, logged as a warning when any was; it adds a warning when most in-tissue
    spots lie on no tile (another section's sample?)."""
    qc_failed = ~np.isfinite(expression.to_numpy()).all(axis=1)
    used = np.isfinite(spot_values).all(axis=1) & ~qc_failed
    total, no_tile = len(covered), covered == 0
    unit = "tiles (Visium HD bins summed into them)" if "bins" in sample.adata.obs else "spots"
    parts = [f"{unit}: {int(used.sum())} of {total} used"]
    dropped = []
    if no_tile.any():
        dropped.append(f"{int(no_tile.sum())} lie on no tissue tile")
    if (qc_failed & ~no_tile).any():
        dropped.append(f"{int((qc_failed & ~no_tile).sum())} fail library QC (too few counts)")
    if dropped:
        parts.append("; left out: " + ", ".join(dropped))
    obs = sample.adata.obs
    in_tissue = obs["in_tissue"].to_numpy() == 1 if "in_tissue" in obs else np.ones(total, bool)
    if in_tissue.any() and no_tile[in_tissue].mean() > 0.5:
        parts.append(
            f"; {no_tile[in_tissue].mean():.0%} of the in-tissue spots lie on no tile of this store: "
            "a Visium sample of another section, or positions of another image?"
        )
    if dropped:
        log.warning("".join(parts))
    return used


def check_same_section(store: TileStore, sample: VisiumSample) -> None:
    """Spot pixels are full-resolution pixels: the store's slide must be that full-resolution image, and a
    store embedded with a Visium sample accepts only that sample's spots."""
    check_visium_matches(store, sample)
    height, width = store.provenance["slide_shape_yx"]
    xy = sample.adata.obsm["spatial"]
    outside = (xy[:, 0] < 0) | (xy[:, 1] < 0) | (xy[:, 0] > width) | (xy[:, 1] > height)
    if outside.mean() > 0.5:
        raise PathsaeError(
            f"most spots lie outside the {width}x{height} px slide of {store.path.name}: "
            "embed the full-resolution image these spots were registered to"
        )


def normalised_expression(
    sample: VisiumSample, genes: list[str] | None = None, top_genes: int | None = None
) -> pd.DataFrame:
    """Library-size normalised (10,000 per spot) log1p expression of the chosen genes, else of every gene
    detected in at least ``min_active_spots`` spots, optionally only the ``top_genes`` most variable.

    Spots whose library is below ``min_spot_counts`` (10% of the median, at least 10 counts) get NaN:
    after normalisation a handful of counts would make extreme, meaningless values.
    """
    x = sample.adata.X
    x = x.tocsr().astype(np.float64) if sp.issparse(x) else sp.csr_matrix(np.asarray(x, dtype=np.float64))
    totals = np.asarray(x.sum(axis=1)).ravel()
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    normed = sp.diags(scale) @ x
    normed.data = np.log1p(normed.data)
    names = np.asarray(sample.adata.var_names)
    if genes:
        missing = [g for g in genes if g not in set(names)]
        if missing:
            raise PathsaeError(f"genes not in this sample: {', '.join(missing[:5])}")
        index = [int(np.flatnonzero(names == g)[0]) for g in genes]
    else:
        detected = np.flatnonzero(np.asarray((x > 0).sum(axis=0)).ravel() >= min_active_spots(x.shape[0]))
        if top_genes is not None and len(detected) > top_genes:
            mean = np.asarray(normed[:, detected].mean(axis=0)).ravel()
            var = np.asarray(normed[:, detected].multiply(normed[:, detected]).mean(axis=0)).ravel() - mean**2
            detected = detected[np.argsort(-var)[:top_genes]]
        index = list(detected)
    if not index:
        raise PathsaeError("no gene is detected in enough spots to correlate")
    values = normed[:, index].toarray()
    values[totals < min_spot_counts(totals)] = np.nan
    return pd.DataFrame(values, index=sample.adata.obs_names, columns=names[index])


def min_active_spots(n_spots: int) -> int:
    """Genes and features active in fewer spots than this are not correlated: with a handful of
    non-zero spots, single-spot leverage gives |r| near 1 by chance among millions of pairs."""
    return max(10, int(0.02 * n_spots))


def min_spot_counts(totals: np.ndarray) -> float:
    """Library-size QC bound: 10% of the median library, and at least 10 counts."""
    return max(10.0, 0.1 * float(np.median(totals)))


def _p_values(r: np.ndarray, dof: int) -> np.ndarray:
    t = r * np.sqrt(dof / np.clip(1 - r.astype(np.float64) ** 2, 1e-12, None))
    return 2 * stats.t.sf(np.abs(t), dof)


def _descending_ranks(m: np.ndarray, axis: int) -> np.ndarray:
    """1-based rank of each entry among its column (axis=0) or row (axis=1), largest first."""
    order = np.argsort(-m, axis=axis)
    ranks = np.empty_like(order)
    np.put_along_axis(
        ranks, order, np.arange(1, m.shape[axis] + 1).reshape((-1, 1) if axis == 0 else (1, -1)), axis=axis
    )
    return ranks


def correlation_table(
    features: np.ndarray,
    genes: pd.DataFrame,
    coords_um: np.ndarray,
    feature_names: list[str] | None = None,
    top: int = 10,
    max_q: float = 0.05,
    everything: bool = False,
) -> pd.DataFrame:
    """Naive Pearson and Spearman r, p and Benjamini–Hochberg q of (feature, gene) pairs over spots, and the
    spatially aware test beside them: ``n_eff`` (effective spots), ``p_spatial`` and ``q_spatial`` of the
    Spearman r (analysis/spatial_stats.py). ``coords_um`` (S, 2) are the spots' (or tiles') positions.

    Every pair is tested (q corrects for all of them); pairs are ranked by ``spearman_r_bound``
    (``rank_in_gene``, ``rank_in_feature``): the Spearman r's 95 % bound nearest 0 over the effective spots.
    The table keeps the pairs with q_spatial ≤ ``max_q`` and each gene's and each feature's ``top`` pairs,
    or every pair with ``everything``. Spots without tiles or failing library QC (NaN) are dropped; constant
    features, features and genes that depart from their median in fewer than ``min_active_spots`` spots,
    and constant genes get no row.
    """
    keep = np.isfinite(features).all(axis=1) & np.isfinite(genes.to_numpy()).all(axis=1)
    f, g = features[keep], genes.to_numpy()[keep]
    n = len(f)
    if n < 4:
        raise PathsaeError(f"only {n} spots overlap the tiles; correlation needs at least 4")
    names = np.asarray(feature_names or [str(i) for i in range(features.shape[1])], dtype=object)
    # a feature or gene carried by a spot or two correlates perfectly with something by chance: not tested
    f_support, g_support = _support(f), _support(g)
    live_f = np.flatnonzero((f.std(axis=0) > 0) & (f_support >= min_active_spots(n)))
    live_g = np.flatnonzero((g.std(axis=0) > 0) & (g_support >= min_active_spots(n)))
    if len(live_f) == 0 or len(live_g) == 0:
        raise PathsaeError("no feature or no gene varies over enough spots")
    f, g = f[:, live_f], g[:, live_g]
    f_ranks, g_ranks = stats.rankdata(f, axis=0), stats.rankdata(g, axis=0)
    pearson = zscore(f).T @ zscore(g)
    spearman = zscore(f_ranks).T @ zscore(g_ranks)
    p = _p_values(pearson, n - 2)
    q = _bh(p)
    sp_p = _p_values(spearman, n - 2)
    sp_q = _bh(sp_p)
    classes = distance_classes(np.asarray(coords_um, dtype=np.float64)[keep])
    n_eff = effective_n(morans_i(f_ranks, classes), morans_i(g_ranks, classes), classes)
    # a pair is no better evidenced than the spots that carry its sparser side: the t tails are far too
    # thin for a gene detected in 10 spots meeting a feature active in 12 (q 4e-18 on a null otherwise)
    n_eff = np.minimum(n_eff, np.minimum(f_support[live_f, None], g_support[None, live_g]))
    p_spatial = spatial_p_values(spearman, n_eff)
    q_spatial = _bh(p_spatial)
    bound = conservative_r(spearman, n_eff)
    in_gene, in_feature = _descending_ranks(bound, 0), _descending_ranks(bound, 1)
    chosen = np.ones_like(q, bool) if everything else (q_spatial <= max_q) | (in_gene <= top) | (in_feature <= top)
    fi, gi = np.nonzero(chosen)
    table = pd.DataFrame(
        {
            "feature": names[live_f[fi]],
            "gene": genes.columns.to_numpy()[live_g[gi]],
            "r": pearson[fi, gi],
            "p": p[fi, gi],
            "q": q[fi, gi],
            "spearman_r": spearman[fi, gi],
            "spearman_p": sp_p[fi, gi],
            "spearman_q": sp_q[fi, gi],
            "n_eff": n_eff[fi, gi],
            "p_spatial": p_spatial[fi, gi],
            "q_spatial": q_spatial[fi, gi],
            "spearman_r_bound": bound[fi, gi],
            "rank_in_gene": in_gene[fi, gi],
            "rank_in_feature": in_feature[fi, gi],
            "n_spots": n,
        }
    )
    table = table.sort_values(["gene", "rank_in_gene"], ignore_index=True)
    every = {"q": q, "spearman_q": sp_q, "q_spatial": q_spatial}
    table.attrs["discoveries"] = {name: int((values <= max_q).sum()) for name, values in every.items()}
    table.attrs["tested"] = int(q.size)
    return table


def _support(values: np.ndarray) -> np.ndarray:
    """Per column, the spots where the value departs from its median (a sparse gene: where it is detected)."""
    return (np.abs(values - np.median(values, axis=0)) > 1e-12).sum(axis=0)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q over every entry of ``p``."""
    return stats.false_discovery_control(p.ravel(), method="bh").reshape(p.shape)
