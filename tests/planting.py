"""Planted signals: a gene made from an image property under each spot (into a Space Ranger-style folder),
and embeddings made of a known sparse dictionary."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
import zarr

from napari_pathsae import open_slide, open_visium
from napari_pathsae.data.store import TileStore
from napari_pathsae.data.tiles import saturation

D_IN, ATOMS, ACTIVE, N = 32, 48, 3, 6000


def spot_saturation(slide_path: Path, outs: Path) -> np.ndarray:
    """Mean saturation of the full-resolution image inside each spot's disk."""
    sample = open_visium(outs)
    image = np.asarray(open_slide(slide_path).levels[0])
    radius = sample.spot_diameter_fullres / 2
    values = []
    for x, y in sample.adata.obsm["spatial"]:
        y0, y1, x0, x1 = int(y - radius), int(y + radius), int(x - radius), int(x + radius)
        patch = image[max(y0, 0) : y1, max(x0, 0) : x1]
        yy, xx = np.mgrid[max(y0, 0) : y1, max(x0, 0) : x1]
        disk = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        values.append(float(saturation(patch)[disk].mean()))
    return np.asarray(values)


def write_planted_outs(outs: Path, target: Path, signal: np.ndarray, gene: str = "PLANTED1") -> Path:
    """Copy of ``outs`` with the counts as a MEX folder plus one gene proportional to ``signal``."""
    sample = open_visium(outs)
    counts = sp.csr_matrix(sample.adata.X)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scaled = 0.5 + (signal - signal.min()) / (np.ptp(signal) or 1.0)  # 0.5-1.5: no counts near zero
    planted = np.round(scaled * totals * 0.05).astype(np.int64)  # a gene that scales with depth, as real ones do
    matrix = sp.hstack([counts, sp.csr_matrix(planted[:, None])]).tocsc()
    mex = target / "filtered_feature_bc_matrix"
    mex.mkdir(parents=True)
    with gzip.open(mex / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, matrix.T.astype(np.int64))
    names = [*sample.adata.var_names, gene]
    ids = [*sample.adata.var.get("gene_ids", sample.adata.var_names), f"ENSPLANTED{len(names)}"]
    with gzip.open(mex / "features.tsv.gz", "wt") as f:
        f.writelines(f"{i}\t{n}\tGene Expression\n" for i, n in zip(ids, names, strict=True))
    with gzip.open(mex / "barcodes.tsv.gz", "wt") as f:
        f.writelines(f"{b}\n" for b in sample.adata.obs_names)
    shutil.copytree(outs / "spatial", target / "spatial")
    return target


def planted_dictionary_store(path: Path, seed: int = 0) -> tuple[TileStore, np.ndarray]:
    """A store of embeddings made of 3 of 48 known unit atoms each, plus an offset and one outlier dimension;
    also ``layer_6``: the same embeddings in a rotated basis (another layer seeing the same tissue)."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(ATOMS, D_IN))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((N, ATOMS))
    for row in codes:
        row[rng.choice(ATOMS, ACTIVE, replace=False)] = rng.uniform(1, 3, ACTIVE)
    x = codes @ atoms + 5.0
    x = np.concatenate([x, rng.normal(0, 200, (N, 1))], axis=1).astype(np.float32)
    rotation = np.eye(D_IN + 1)
    rotation[:D_IN, :D_IN] = np.linalg.qr(rng.normal(size=(D_IN, D_IN)))[0]  # the outlier dimension stays put
    root = zarr.open_group(str(path), mode="w")
    root.create_array("embeddings/pooled", data=x, chunks=(512, D_IN + 1))
    root.create_array("embeddings/layer_6", data=(x @ rotation).astype(np.float32), chunks=(512, D_IN + 1))
    root.create_group("activations")
    root.attrs.update(
        {"format": "napari-pathsae/tiles-v1", "identity": {}, "provenance": {"encoder": {"weights_sha256": "x"}}}
    )
    return TileStore.open(path), atoms
