"""Association tests that survive spatial autocorrelation: the effective number of spots (or tiles).

Neighbouring spots are not independent samples: tissue, and the expression and features measured on it, come
in patches, so a correlation over S spots carries far less evidence than S independent pairs, and BH over
naive p-values counts spatial structure as discovery (2,740 pairs at q ≤ 0.05 on transposed coordinates).

The test is Clifford, Richardson & Hémon's (1989) modified t-test with Dutilleul's (1993) effective sample
size: under H0 the variance of r is Σ_d S_d ρ_x(d) ρ_y(d) / n², summed over distance classes d (with the
zero-distance class, S_0 = n, ρ = 1), where S_d counts the ordered pairs of points in class d and ρ(d) is each
variable's autocorrelation there, estimated by Moran's I; n_eff = 1 + 1 / var(r) and r is tested with a t on
n_eff − 2 degrees of freedom. The test is run on ranks (Spearman r, Moran's I of the ranks), so a gene or
feature carried by a handful of spots cannot win by leverage. It needs one Moran's I per variable and class
(squidpy's spatial neighbours and autocorrelation), and one matrix product for every feature-gene pair at
once, where spatially constrained permutations would need thousands of re-runs of the whole table.
Pairs beyond the last class are taken as uncorrelated; real long-range correlations there are negative (the
patches average out), so leaving them out makes var(r) larger and the test conservative.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import scipy.sparse as sp
from scipy import stats

from .squidpy_quiet import radius_graph, squidpy

#: Distance classes of the correlogram (the first holds the immediate neighbours).
N_CLASSES = 10
#: The correlogram is estimated on at most this many points (a random subset, fixed seed): pairs grow as n².
MAX_POINTS = 3000
#: Pairs with fewer effective spots than this are not evidence for anything (p = 1).
MIN_EFFECTIVE_N = 8.0


@dataclass(frozen=True)
class DistanceClasses:
    """Binary neighbour graphs of one point set, one per distance class, and their pair counts."""

    n: int  # points tested
    sample: np.ndarray  # indices of the points the correlogram is estimated on
    graphs: list[sp.csr_matrix]  # (len(sample), len(sample)) each
    edges_um: np.ndarray  # (N_CLASSES + 1,) class bounds
    pair_counts: np.ndarray  # (N_CLASSES,) ordered pairs per class among all n points (scaled from the sample)


def distance_classes(coords_um: np.ndarray, n_classes: int = N_CLASSES, seed: int = 0) -> DistanceClasses:
    """The correlogram's classes over ``coords_um`` (n, 2): the first up to 1.5 nearest-neighbour spacings,
    then equal widths up to half the largest extent; graphs from squidpy's radius neighbours."""
    import anndata as ad

    coords = np.asarray(coords_um, dtype=np.float64)
    n = len(coords)
    sample = np.arange(n)
    if n > MAX_POINTS:
        sample = np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))
    points = coords[sample]
    from scipy.spatial import cKDTree

    spacing = float(np.median(cKDTree(points).query(points, k=2)[0][:, 1]))
    reach = max(float(np.ptp(points, axis=0).max()) / 2, 1.5 * spacing * 1.01)
    edges = np.concatenate([[0.0], np.linspace(1.5 * spacing, reach, n_classes)])
    adata = ad.AnnData(np.zeros((len(points), 1), np.float32), obsm={"spatial": points})
    graphs = []
    for k, (lo, hi) in enumerate(pairwise(edges)):
        key = f"class{k}"
        radius_graph(adata, (lo + 1e-9, hi), key_added=key)
        graph = sp.csr_matrix(adata.obsp[f"{key}_connectivities"])
        graph.data[:] = 1.0
        graph.setdiag(0)
        graph.eliminate_zeros()
        graphs.append(graph)
    scale = (n / len(points)) * ((n - 1) / max(len(points) - 1, 1))
    counts = np.array([g.nnz for g in graphs], dtype=np.float64) * scale
    return DistanceClasses(n, sample, graphs, edges, counts)


def morans_i(values: np.ndarray, classes: DistanceClasses) -> np.ndarray:
    """(classes, variables) Moran's I of each column of ``values`` (n, m) in each distance class (squidpy,
    binary weights); 0 where a class has no pair or a variable is constant."""
    import anndata as ad

    v = np.asarray(values, dtype=np.float64)[classes.sample]
    constant = v.std(axis=0) == 0
    v = np.where(constant, np.arange(len(v), dtype=np.float64)[:, None], v)  # placeholder, zeroed below
    adata = ad.AnnData(v.astype(np.float32), obsm={"spatial": np.zeros((len(v), 2))})
    adata.var_names = [str(i) for i in range(v.shape[1])]
    sq = squidpy()
    out = np.zeros((len(classes.graphs), v.shape[1]))
    for k, graph in enumerate(classes.graphs):
        if graph.nnz == 0:
            continue
        adata.obsp["lag"] = graph
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            table = sq.gr.spatial_autocorr(
                adata, connectivity_key="lag", mode="moran", transformation=False, n_perms=None,
                corr_method=None, copy=True, show_progress_bar=False,
            )  # fmt: skip
        out[k] = table["I"].reindex(adata.var_names).to_numpy()
    out[:, constant] = 0.0
    return np.nan_to_num(out)


def effective_n(moran_x: np.ndarray, moran_y: np.ndarray, classes: DistanceClasses) -> np.ndarray:
    """(m_x, m_y) Dutilleul's effective sample size of every pair: 1 + n² / (n + Σ_d S_d I_x(d) I_y(d)),
    between MIN_EFFECTIVE_N-ish and n (negative autocorrelation does not add evidence beyond n)."""
    n = classes.n
    lagged = (moran_x.T * classes.pair_counts) @ moran_y  # Σ_d S_d I_x(d) I_y(d)
    variance = np.maximum(n + lagged, n / 10) / n**2  # estimation noise cannot make var(r) absurdly small
    return np.clip(1.0 + 1.0 / variance, 2.0, float(n))


def _t_and_dof(r: np.ndarray, n_eff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dof = np.maximum(n_eff - 2.0, 1.0)
    return np.abs(r) * np.sqrt(dof / np.clip(1 - r.astype(np.float64) ** 2, 1e-12, None)), dof


def spatial_p_values(r: np.ndarray, n_eff: np.ndarray) -> np.ndarray:
    """Two-sided p of r on n_eff − 2 degrees of freedom; 1 below MIN_EFFECTIVE_N."""
    t, dof = _t_and_dof(r, n_eff)
    return np.where(n_eff < MIN_EFFECTIVE_N, 1.0, 2 * stats.t.sf(t, dof))


def conservative_r(r: np.ndarray, n_eff: np.ndarray, z: float = 1.96) -> np.ndarray:
    """The end of r's 95 % interval nearest zero (Fisher's z on n_eff − 3): pairs are ranked by it, so a
    strong association seen on few effective spots, or a weak one on many, does not outrank a strong one
    on many (0 below MIN_EFFECTIVE_N or when the interval spans zero)."""
    half = z / np.sqrt(np.maximum(n_eff - 3.0, 1.0))
    shrunk = np.maximum(np.abs(np.arctanh(np.clip(r, -0.999999, 0.999999))) - half, 0.0)
    return np.where(n_eff < MIN_EFFECTIVE_N, 0.0, np.sign(r) * np.tanh(shrunk))
