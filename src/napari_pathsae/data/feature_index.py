"""A cohort's feature index: per SAE feature, what a feature page shows, kept small enough to open at once.

One ``.npz`` per SAE in ``COHORT/index/``. Arrays (F features, S slides, T top tiles, R samples, B bins)::

    slides (S,) str; n_tiles (S,) int64            valid tiles per slide
    top_key/top_slide/top_tile/top_xy (F, T[, 2])  the T highest activations across every slide (slide -1: none)
    sample_* (F, R)                                a uniform sample of each feature's non-zero activations
    hist_edges (B+1,), hist (F, B)                 non-zero activations counted in log-spaced bins
    fired (S, F), sums (S, F)                      tiles firing and activation sums per slide
    variables (V,) str, assoc_kind (V,) str, assoc_stat/assoc_p/assoc_q (V, F)   slide-level associations
    meta: json (sae, encoder, tile side, build time)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PathsaeError
from .outputs import atomic_output

FORMAT = "napari-pathsae/feature-index-v1"


@dataclass
class FeatureIndex:
    slides: np.ndarray
    n_tiles: np.ndarray
    top_value: np.ndarray
    top_slide: np.ndarray
    top_tile: np.ndarray
    top_xy: np.ndarray
    sample_value: np.ndarray
    sample_slide: np.ndarray
    sample_tile: np.ndarray
    sample_xy: np.ndarray
    hist_edges: np.ndarray
    hist: np.ndarray
    fired: np.ndarray
    sums: np.ndarray
    variables: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    assoc_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    assoc_stat: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    assoc_p: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    assoc_q: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    meta: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.top_value.shape[0])

    def density(self) -> np.ndarray:
        """(S, F) share of each slide's tiles on which each feature fires."""
        return self.fired / np.maximum(self.n_tiles, 1)[:, None]

    def overall_density(self) -> np.ndarray:
        """(F,) share of all the cohort's tiles on which each feature fires."""
        return self.fired.sum(axis=0) / max(int(self.n_tiles.sum()), 1)

    def slide_means(self) -> np.ndarray:
        """(S, F) mean activation over each slide's tiles (zeros included)."""
        return self.sums / np.maximum(self.n_tiles, 1)[:, None]

    def top(self, feature: int) -> list[tuple[str, int, float, tuple[float, float]]]:
        """(slide, tile, activation, level-0 xy) of the feature's top tiles, strongest first."""
        return self._rows(self.top_slide, self.top_tile, self.top_value, self.top_xy, feature)

    def quantile_samples(self, feature: int, bins: int = 5, per_bin: int = 4) -> list[list[tuple]]:
        """Samples of the feature's non-zero activations by quantile interval, weakest first (as Neuronpedia shows):
        ``bins`` lists of up to ``per_bin`` (slide, tile, activation, xy), spread within each interval."""
        rows = sorted(self._rows(self.sample_slide, self.sample_tile, self.sample_value, self.sample_xy, feature),
                      key=lambda r: r[2])  # fmt: skip
        out = []
        for part in np.array_split(np.arange(len(rows)), bins):
            take = part[np.linspace(0, len(part) - 1, min(per_bin, len(part))).round().astype(int)] if len(part) else []
            out.append([rows[i] for i in take])
        return out

    def _rows(self, slide, tile, value, xy, feature):
        keep = slide[feature] >= 0
        columns = (slide[feature][keep], tile[feature][keep], value[feature][keep], xy[feature][keep])
        return [
            (str(self.slides[s]), int(t), float(v), (float(p[0]), float(p[1])))
            for s, t, v, p in zip(*columns, strict=True)
        ]

    def associations(self, feature: int) -> list[dict]:
        """Each slide-level variable's test for the feature: kind, statistic, p and q (slides as the unit)."""
        return [
            {"variable": str(v), "kind": str(k), "statistic": float(self.assoc_stat[i, feature]),
             "p": float(self.assoc_p[i, feature]), "q": float(self.assoc_q[i, feature])}
            for i, (v, k) in enumerate(zip(self.variables, self.assoc_kind, strict=False))
        ]  # fmt: skip

    def strongest(self, variable: str | None = None) -> tuple[int, str, float, float] | None:
        """(feature, variable, statistic, q) of the strongest slide-level association, of ``variable`` or of any:
        the lowest q, ties (common with few slides) broken by the largest |statistic|; None if nothing was tested."""
        rows = [i for i, v in enumerate(self.variables) if variable is None or v == variable]
        if variable is not None and not rows:
            raise PathsaeError(f"the index tested no slide-level variable {variable!r}")
        q = self.assoc_q[rows] if rows else np.zeros((0, 0))
        if not np.isfinite(q).any():
            return None
        strength = np.nan_to_num(np.abs(self.assoc_stat[rows]), nan=-1.0)
        order = np.lexsort((-strength.ravel(), np.where(np.isfinite(q), q, np.inf).ravel()))
        row, feature = np.unravel_index(order[0], q.shape)
        i = rows[row]
        return int(feature), str(self.variables[i]), float(self.assoc_stat[i, feature]), float(q[row, feature])


def save_index(index: FeatureIndex, path: str | Path, overwrite: bool = True) -> Path:
    """Written whole (temporary file renamed), uncompressed so that it opens in milliseconds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: v for k, v in vars(index).items() if k != "meta"}
    with atomic_output(path, overwrite) as temp, temp.open("wb") as f:
        np.savez(f, meta=np.array(json.dumps({"format": FORMAT, **index.meta})), **arrays)
    return path


def load_index(path: str | Path) -> FeatureIndex:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as saved:
            meta = json.loads(str(saved["meta"]))
            if meta.get("format") != FORMAT:
                raise PathsaeError(f"{path}: not a napari-pathsae feature index ({meta.get('format')!r})")
            arrays = {k: saved[k] for k in saved.files if k != "meta"}
    except FileNotFoundError:
        raise PathsaeError(f"no feature index {path} (build it with `pathsae encode COHORT --sae SAE`)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise PathsaeError(f"{path}: unreadable feature index ({exc})") from None
    return FeatureIndex(**arrays, meta=meta)
