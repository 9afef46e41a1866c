"""A full-size Visium HD-like sample (8 µm bins over a whole section) made from a real one, and what opening,
aggregating and correlating it cost.

How the sample is made (``build_hd_like``), from the HER2+ B4 section (legacy ST: 283 spots of 100 µm,
15,289 genes) and its full-resolution H&E (9272 x 9923 px, 0.69 µm/px):
- bins of 8 µm tile the whole image from its corner, kept where the tissue mask says tissue;
- each bin draws its UMIs (Poisson, mean ``umis_per_bin``) from the gene distribution of the nearest real
  spot, so expression varies across the section as the real spots do;
- one planted gene, PLANTED_HD, counts in proportion to the mean saturation of the bin's own pixels (the
  signal a morphology feature can find), and vanishes on a transposed null;
- the files are Space Ranger HD's: ``binned_outputs/square_008um/`` with ``filtered_feature_bc_matrix.h5``
  (10x HDF5), ``spatial/tissue_positions.parquet`` and ``spatial/scalefactors_json.json``.

usage: python benchmarks/visium_hd_like.py WORK_DIR [--genes N] [--top-genes N] [--out DIR]
(WORK_DIR holds b4.zarr as the tests' her2st_model fixture makes it; the sample is built in WORK_DIR/b4_hd)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_B4"
HE, OUTS, MPP = DATA / "B4_HE.jpg", DATA / "spaceranger_outs", 0.69
PLANTED = "PLANTED_HD"


def write_10x_h5(path: Path, counts: sp.csr_matrix, barcodes: list[str], genes: list[str]) -> None:
    """Counts (bins x genes) in Space Ranger's HDF5 layout (matrix/ CSC by barcode, features/)."""
    matrix = counts.T.tocsc()  # genes x barcodes, one column per barcode
    with h5py.File(path, "w") as f:
        f.attrs["library_ids"] = np.array([b"B4_HD"])
        group = f.create_group("matrix")
        group["barcodes"] = np.array(barcodes, dtype="S")
        group.create_dataset("data", data=matrix.data.astype(np.int32), compression="gzip")
        group.create_dataset("indices", data=matrix.indices.astype(np.int64), compression="gzip")
        group["indptr"] = matrix.indptr.astype(np.int64)
        group["shape"] = np.array(matrix.shape, dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array([f"ENSHD{i:06d}" for i in range(len(genes))], dtype="S")
        features["name"] = np.array(genes, dtype="S")
        features["feature_type"] = np.array([b"Gene Expression"] * len(genes))
        features["genome"] = np.array([b"GRCh38"] * len(genes))
        features["_all_tag_keys"] = np.array([b"genome"])


def bin_saturation(pixels: np.ndarray, bin_px: float, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mean HSV saturation of each bin's own pixels (bins ``bin_px`` apart from the image corner)."""
    from napari_pathsae.data.tiles import saturation

    sat = saturation(pixels)
    out = np.empty(len(rows))
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        y0, x0 = int(r * bin_px), int(c * bin_px)
        out[i] = sat[y0 : int((r + 1) * bin_px), x0 : int((c + 1) * bin_px)].mean()
    return out


def build_hd_like(target: Path, genes: int | None = None, umis_per_bin: float = 120.0, seed: int = 0) -> dict:
    """Write the HD-like outs folder at ``target``; returns what was made (bins, genes, UMIs)."""
    from scipy.spatial import cKDTree

    from napari_pathsae.data.tiles import tissue_mask
    from napari_pathsae.io.slides import open_slide
    from napari_pathsae.io.visium import open_visium

    rng = np.random.default_rng(seed)
    sample = open_visium(OUTS)
    slide = open_slide(HE, mpp=MPP)
    height, width = slide.shape_yx
    bin_px = 8.0 / MPP
    rows, cols = np.meshgrid(np.arange(int(np.ceil(height / bin_px))), np.arange(int(np.ceil(width / bin_px))),
                             indexing="ij")  # fmt: skip
    rows, cols = rows.ravel(), cols.ravel()
    mask, per_px = tissue_mask(slide)
    centres = np.stack([(cols + 0.5) * bin_px, (rows + 0.5) * bin_px], axis=1)  # level-0 (x, y)
    mr = np.clip((centres[:, 1] / per_px).astype(int), 0, mask.shape[0] - 1)
    mc = np.clip((centres[:, 0] / per_px).astype(int), 0, mask.shape[1] - 1)
    keep = mask[mr, mc]
    rows, cols, centres = rows[keep], cols[keep], centres[keep]
    counts = sp.csr_matrix(sample.adata.X)
    order = np.argsort(-np.asarray(counts.sum(axis=0)).ravel(), kind="stable")[: genes or counts.shape[1]]
    counts, names = counts[:, np.sort(order)], list(sample.adata.var_names[np.sort(order)])
    parent = cKDTree(sample.spots_level0_xy).query(centres)[1]
    umis = rng.poisson(umis_per_bin, len(rows))
    bins, genes_drawn = [], []
    for spot in np.unique(parent):  # every bin of one spot draws from that spot's gene distribution at once
        members = np.flatnonzero(parent == spot)
        row = counts[spot]
        if row.nnz == 0:
            continue
        probabilities = row.data / row.data.sum()
        drawn = rng.choice(row.indices, size=int(umis[members].sum()), p=probabilities)
        bins.append(np.repeat(members, umis[members]))
        genes_drawn.append(drawn)
    bins, genes_drawn = np.concatenate(bins), np.concatenate(genes_drawn)
    matrix = sp.csr_matrix((np.ones(len(bins), np.int32), (bins, genes_drawn)), shape=(len(rows), len(names)))
    matrix.sum_duplicates()
    pixels = np.asarray(slide.levels[0])
    signal = bin_saturation(pixels, bin_px, rows, cols)
    scaled = (signal - signal.min()) / (np.ptp(signal) or 1.0)
    planted = rng.poisson(1.0 + 20.0 * scaled)  # 1-21 UMIs: strong where the bin's pixels are saturated
    matrix = sp.hstack([matrix, sp.csr_matrix(planted[:, None])]).tocsr()
    names.append(PLANTED)
    root = target / "binned_outputs" / "square_008um"
    (root / "spatial").mkdir(parents=True)
    barcodes = [f"s_008um_{r:05d}_{c:05d}-1" for r, c in zip(rows, cols, strict=True)]
    write_10x_h5(root / "filtered_feature_bc_matrix.h5", matrix, barcodes, names)
    pd.DataFrame({
        "barcode": barcodes, "in_tissue": 1, "array_row": rows, "array_col": cols,
        "pxl_row_in_fullres": (rows + 0.5) * bin_px - 0.5, "pxl_col_in_fullres": (cols + 0.5) * bin_px - 0.5,
    }).to_parquet(root / "spatial" / "tissue_positions.parquet", index=False)  # fmt: skip
    scalefactors = {"spot_diameter_fullres": bin_px, "bin_size_um": 8.0, "microns_per_pixel": MPP,
                    "tissue_hires_scalef": 0.2, "tissue_lowres_scalef": 0.06}  # fmt: skip
    (root / "spatial" / "scalefactors_json.json").write_text(json.dumps(scalefactors))
    slide.close()
    return {"bins": len(rows), "genes": len(names), "umis": int(matrix.sum()), "bin_px": bin_px}


OPEN = """
import sys, time, warnings
warnings.simplefilter("ignore")
from napari_pathsae.io.visium import open_visium
start = time.perf_counter()
sample = open_visium(sys.argv[1], fullres_image=sys.argv[2], mpp=0.69, bin_size_um=8)
print(time.perf_counter() - start, sample.adata.n_obs, sample.adata.n_vars)
"""


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - start, 3)


def main(work: Path, genes: int | None, top_genes: int) -> dict:
    """Build the sample (once), then time each step a user meets; opening in its own process (peak RSS)."""
    from measure import python, run_process

    from napari_pathsae.analysis.spots import bins_to_tiles, correlate_activations, spot_tile_weights
    from napari_pathsae.data.store import TileStore
    from napari_pathsae.io.visium import open_visium
    from napari_pathsae.plugin.layers import spots_layer

    target = work / "b4_hd"
    made, build_s = timed(build_hd_like, target, genes) if not target.exists() else ({}, None)
    opened = run_process(python("-c", OPEN, str(target), str(HE)))
    imports = run_process(python("-c", "import scanpy, napari_pathsae.io.visium"))  # the same process, no sample
    open_s, bins, n_genes = opened.stdout.split()
    sample = open_visium(target, fullres_image=HE, mpp=MPP, bin_size_um=8)
    store = TileStore.open(work / "b4.zarr")
    acts = store.activations()[:]
    (_, raster_s) = timed(spots_layer, sample)
    weights, weights_s = timed(spot_tile_weights, store, sample.spots_level0_xy, sample.spot_diameter_fullres,
                               shape="square")  # fmt: skip
    tiles, tiles_s = timed(bins_to_tiles, store, sample)
    top, correlate_s = timed(correlate_activations, store, sample, acts, None, top_genes, everything=True)
    table, all_s = timed(correlate_activations, store, sample, acts, None, None, everything=True)
    ranked = table.sort_values("spearman_r_bound", ascending=False).drop_duplicates("gene")
    null, null_s = timed(correlate_activations, store, sample, acts, [PLANTED], everything=True, null="transpose")
    return {
        "sample": {"built_from": "her2st B4 (283 ST spots, full-resolution H&E)", "bin_um": 8, **made,
                   "build_s": build_s},
        "bins": int(bins), "genes": int(n_genes), "tiles": store.n_tiles, "features": int(acts.shape[1]),
        "open_s_own_process": round(float(open_s), 2), "open_process_wall_s": round(opened.wall_s, 2),
        "open_process_peak_rss_mb": round(opened.peak_rss_mb), "imports_only_peak_rss_mb": round(imports.peak_rss_mb),
        "bins_raster_layer_s": raster_s, "bin_tile_areas_s": weights_s, "bin_tile_pairs": int(weights.nnz),
        "bins_to_tiles_s": tiles_s, "tiles_with_bins": int(tiles.adata.n_obs),
        f"correlate_top{top_genes}_genes_s": correlate_s, f"top{top_genes}_pairs": len(top),
        "correlate_all_genes_s": all_s, "all_genes_pairs": len(table),
        "planted_gene_rank": int(list(ranked.gene).index(PLANTED) + 1), "genes_tested": int(table.gene.nunique()),
        "transposed_null_s": null_s, "planted_q_on_null": float(null.q_spatial.min()),
    }  # fmt: skip


if __name__ == "__main__":
    from measure import save

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="a folder holding b4.zarr (the tests' her2st_model fixture)")
    parser.add_argument("--genes", type=int, help="keep the N most expressed genes (default: all)")
    parser.add_argument("--top-genes", type=int, default=2000, help="genes correlated (the most variable)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save("visium_hd", main(args.work, args.genes, args.top_genes), args.out)
