"""The feature index in one streaming pass over a cohort's activations; memory flat as the cohort grows.

Chunks of (tiles × features) come in slide by slide. Only non-zero activations are looked at (an SAE's
codes are sparse): the strongest T per feature are kept by a running threshold, a uniform sample of R
non-zero activations by random keys (the same keep-the-largest-keys merge, with a random key), plus
counts, sums and a log-binned histogram. The state is O(F·(T + R + B) + S·F) whatever the number of tiles.
"""

from __future__ import annotations

import numpy as np

from ..data.feature_index import FeatureIndex

#: Log-spaced histogram edges of non-zero activations (values outside go to the end bins).
HIST_EDGES = np.logspace(-3, 3, 49)


class _Kept:
    """Per feature, the K entries with the largest keys seen so far, keys sorted descending."""

    def __init__(self, n_features: int, k: int):
        self.key = np.full((n_features, k), -np.inf, dtype=np.float64)
        self.value = np.zeros((n_features, k), dtype=np.float32)
        self.slide = np.full((n_features, k), -1, dtype=np.int32)
        self.tile = np.full((n_features, k), -1, dtype=np.int32)
        self.xy = np.zeros((n_features, k, 2), dtype=np.float32)

    def offer(self, feature, key, value, slide, tile, xy) -> None:
        better = key > self.key[feature, -1]
        if not better.any():
            return
        feature, key, value, tile, xy = feature[better], key[better], value[better], tile[better], xy[better]
        touched = np.unique(feature)
        k = self.key.shape[1]
        old = np.repeat(touched, k)
        all_feature = np.concatenate([old, feature])
        all_key = np.concatenate([self.key[touched].ravel(), key])
        order = np.lexsort((-all_key, all_feature))
        all_feature, first = all_feature[order], np.searchsorted(all_feature[order], touched)
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.append(first, len(order))))
        keep = rank < k
        src, dst_f, dst_r = order[keep], all_feature[keep], rank[keep]
        n_old = len(old)
        from_old = src < n_old
        new_src = src - n_old
        old_f, old_r = old[src[from_old]], np.tile(np.arange(k), len(touched))[src[from_old]]
        value_all = np.empty(len(src), np.float32)
        slide_all = np.empty(len(src), np.int32)
        tile_all = np.empty(len(src), np.int32)
        xy_all = np.empty((len(src), 2), np.float32)
        value_all[from_old] = self.value[old_f, old_r]
        slide_all[from_old] = self.slide[old_f, old_r]
        tile_all[from_old] = self.tile[old_f, old_r]
        xy_all[from_old] = self.xy[old_f, old_r]
        new = ~from_old
        value_all[new], slide_all[new] = value[new_src[new]], slide
        tile_all[new], xy_all[new] = tile[new_src[new]], xy[new_src[new]]
        key_all = all_key[src]
        self.key[dst_f, dst_r], self.value[dst_f, dst_r] = key_all, value_all
        self.slide[dst_f, dst_r], self.tile[dst_f, dst_r], self.xy[dst_f, dst_r] = slide_all, tile_all, xy_all


class FeatureIndexBuilder:
    """Feed ``add(slide, tiles, xy, values)`` chunk by chunk, then ``finish()`` → FeatureIndex."""

    def __init__(self, slides: list[str], n_features: int, top: int = 32, samples: int = 200, seed: int = 0):
        self.slides = list(slides)
        self.n_features = n_features
        self.top = _Kept(n_features, top)
        self.sample = _Kept(n_features, samples)
        self.rng = np.random.default_rng(seed)
        self.hist = np.zeros((n_features, len(HIST_EDGES) - 1), dtype=np.int64)
        self.fired = np.zeros((len(slides), n_features), dtype=np.int64)
        self.sums = np.zeros((len(slides), n_features), dtype=np.float64)
        self.n_tiles = np.zeros(len(slides), dtype=np.int64)

    def add(self, slide: int, tiles: np.ndarray, xy: np.ndarray, values: np.ndarray) -> None:
        """One chunk of one slide: tile numbers (n,), level-0 corners (n, 2), activations (n, F); NaN rows skipped."""
        valid = ~np.isnan(values).any(axis=1)
        if not valid.all():
            tiles, xy, values = tiles[valid], xy[valid], values[valid]
        self.n_tiles[slide] += len(tiles)
        rows, feature = np.nonzero(values > 0)
        value = values[rows, feature]
        f = self.n_features
        self.fired[slide] += np.bincount(feature, minlength=f)
        self.sums[slide] += np.bincount(feature, weights=value, minlength=f)
        bins = np.clip(np.searchsorted(HIST_EDGES, value) - 1, 0, self.hist.shape[1] - 1)
        self.hist += np.bincount(feature * self.hist.shape[1] + bins, minlength=self.hist.size).reshape(self.hist.shape)
        tile, corner = tiles[rows].astype(np.int32), xy[rows].astype(np.float32)
        self.top.offer(feature, value.astype(np.float64), value, slide, tile, corner)
        self.sample.offer(feature, self.rng.random(len(value)), value, slide, tile, corner)

    def finish(self, meta: dict | None = None) -> FeatureIndex:
        return FeatureIndex(
            slides=np.array(self.slides), n_tiles=self.n_tiles,
            top_value=self.top.value, top_slide=self.top.slide, top_tile=self.top.tile, top_xy=self.top.xy,
            sample_value=self.sample.value, sample_slide=self.sample.slide, sample_tile=self.sample.tile,
            sample_xy=self.sample.xy, hist_edges=HIST_EDGES, hist=self.hist, fired=self.fired, sums=self.sums,
            meta=dict(meta or {}),
        )  # fmt: skip
