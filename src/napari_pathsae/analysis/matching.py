"""Match the features of two SAEs (PathAI's PLUTO study): by decoder cosine, and by activation correlation
over a store's tiles.

Decoder cosine needs both SAEs to read the same embeddings (same encoder and layer). Activations can be
compared across layers and encoders' SAEs alike, as long as both ran over the same tiles.

Given a store, decoder directions are compared in standardised embedding coordinates (each dimension
divided by its spread over the tiles) and only with B's features that fire: ViT embeddings have a few
"massive" dimensions that would otherwise dominate every cosine, and a dead feature is no match.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.store import TileStore
from ..errors import PathsaeError
from ..models.sae.formats import load_sae, sae_layer
from .spots import min_active_spots

#: Rows of the similarity matrices computed at once (memory: ROWS x d_sae_b floats).
ROWS = 2048


def _best(similarity_rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For row blocks of an (A x B) similarity: each row's best column and value, and each column's best value's row."""
    best_b, best_value = [], []
    column_best, column_row = None, None
    offset = 0
    for block in similarity_rows:
        block = np.nan_to_num(block, nan=-np.inf)
        best_b.append(block.argmax(axis=1))
        best_value.append(block.max(axis=1))
        rows, values = block.argmax(axis=0) + offset, block.max(axis=0)
        if column_best is None:
            column_best, column_row = values, rows
        else:
            better = values > column_best
            column_best, column_row = np.where(better, values, column_best), np.where(better, rows, column_row)
        offset += len(block)
    return np.concatenate(best_b), np.concatenate(best_value), column_row


def _unit_rows(w: torch.Tensor) -> torch.Tensor:
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def decoder_cosines(w_a: torch.Tensor, w_b: torch.Tensor):
    """Row blocks of the (A x B) cosine between decoder directions."""
    a, b = _unit_rows(w_a), _unit_rows(w_b)
    for begin in range(0, len(a), ROWS):
        yield (a[begin : begin + ROWS] @ b.T).numpy()


class _Moments:
    """Streaming sums for Pearson r between every column of A and every column of B."""

    def __init__(self, width_a: int, width_b: int):
        self.n = 0
        self.sum_a, self.sum_b = np.zeros(width_a), np.zeros(width_b)
        self.sq_a, self.sq_b = np.zeros(width_a), np.zeros(width_b)
        self.cross = np.zeros((width_a, width_b))

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        self.n += len(a)
        self.sum_a += a.sum(axis=0)
        self.sum_b += b.sum(axis=0)
        self.sq_a += (a * a).sum(axis=0)
        self.sq_b += (b * b).sum(axis=0)
        self.cross += a.T @ b

    def correlation_rows(self):
        n = max(self.n, 1)
        mean_a, mean_b = self.sum_a / n, self.sum_b / n
        sd_a = np.sqrt(np.clip(self.sq_a / n - mean_a**2, 0, None))
        sd_b = np.sqrt(np.clip(self.sq_b / n - mean_b**2, 0, None))
        for begin in range(0, len(mean_a), ROWS):
            rows = slice(begin, begin + ROWS)
            covariance = self.cross[rows] / n - np.outer(mean_a[rows], mean_b)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = covariance / np.outer(sd_a[rows], sd_b)
            r[(sd_a[rows] < 1e-9)[:, None] | (sd_b < 1e-9)[None, :]] = np.nan  # a feature that never varies
            yield r


def embedding_spread(store: TileStore, layer: str, rows: int = 8192) -> np.ndarray:
    """(D,) standard deviation of each embedding dimension over the store's embedded tiles (1 where constant)."""
    array = store.embeddings(layer)
    total, sums, squares = 0, np.zeros(array.shape[1]), np.zeros(array.shape[1])
    for begin in range(0, array.shape[0], rows):
        x = np.asarray(array[begin : begin + rows], dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        total, sums, squares = total + len(x), sums + x.sum(axis=0), squares + (x * x).sum(axis=0)
    mean = sums / max(total, 1)
    spread = np.sqrt(np.clip(squares / max(total, 1) - mean**2, 0, None))
    return np.where(spread > 1e-12, spread, 1.0)


def activation_moments(store: TileStore, sae_a, layer_a: str, sae_b, layer_b: str, rows: int = 4096):
    """Both SAEs' activations over the store's embedded tiles, accumulated chunk by chunk; and their firing rates."""
    moments = _Moments(sae_a.cfg.d_sae, sae_b.cfg.d_sae)
    fires_a, fires_b = np.zeros(sae_a.cfg.d_sae), np.zeros(sae_b.cfg.d_sae)
    emb_a, emb_b = store.embeddings(layer_a), store.embeddings(layer_b)
    for name, sae, emb in (("A", sae_a, emb_a), ("B", sae_b, emb_b)):
        if emb.shape[1] != sae.cfg.d_in:
            raise PathsaeError(f"SAE {name} expects {sae.cfg.d_in}-d inputs; {store.path.name} holds {emb.shape[1]}-d")
    same_layer = layer_b == layer_a  # then one read serves both SAEs
    with torch.no_grad():
        for begin in range(0, emb_a.shape[0], rows):
            x_a = torch.from_numpy(np.asarray(emb_a[begin : begin + rows], dtype=np.float32))
            x_b = x_a if same_layer else torch.from_numpy(np.asarray(emb_b[begin : begin + rows], dtype=np.float32))
            finite = (torch.isfinite(x_a).all(dim=1) & torch.isfinite(x_b).all(dim=1)).numpy()
            a = sae_a.encode(x_a[finite]).double().numpy()
            b = sae_b.encode(x_b[finite]).double().numpy()
            moments.add(a, b)
            fires_a += (a > 0).sum(axis=0)
            fires_b += (b > 0).sum(axis=0)
    if moments.n < 3:
        raise PathsaeError(f"{store.path.name} has {moments.n} embedded tiles; matching activations needs at least 3")
    return moments, fires_a / moments.n, fires_b / moments.n


def match_saes(sae_a_dir: str | Path, sae_b_dir: str | Path, store: TileStore | None = None) -> pd.DataFrame:
    """One row per feature of A: its best match in B by decoder cosine (same inputs) and, given a store,
    by activation correlation over the store's tiles, with the activation r of the decoder match too."""
    sae_a, cfg_a = load_sae(sae_a_dir)
    sae_b, cfg_b = load_sae(sae_b_dir)
    layer_a, layer_b = sae_layer(cfg_a), sae_layer(cfg_b)
    same_inputs = _same_inputs(cfg_a, cfg_b) and sae_a.cfg.d_in == sae_b.cfg.d_in
    if not same_inputs and store is None:
        raise PathsaeError(
            f"the SAEs read different embeddings ({_inputs(cfg_a)} vs {_inputs(cfg_b)}): decoder directions are "
            "not comparable; give a store (--store) to match them by activation correlation"
        )
    table = pd.DataFrame({"feature_a": np.arange(sae_a.cfg.d_sae)})
    if store is not None:
        moments, fires_a, fires_b = activation_moments(store, sae_a, layer_a, sae_b, layer_b)
    if same_inputs:
        w_a, w_b = sae_a.W_dec.detach().double(), sae_b.W_dec.detach().double()
        if store is not None:
            spread = torch.from_numpy(embedding_spread(store, layer_a))
            w_a, w_b = w_a / spread, w_b / spread
        live_b = fires_b > 0 if store is not None else np.ones(sae_b.cfg.d_sae, bool)
        best, value, back = _best(np.where(live_b, block, np.nan) for block in decoder_cosines(w_a, w_b))
        table["decoder_match_b"] = best
        table["decoder_cosine"] = value
        table["decoder_mutual"] = back[best] == table["feature_a"].to_numpy()
    if store is not None:
        best, value, back = _best(moments.correlation_rows())
        dead = ~np.isfinite(value)
        table["activation_match_b"] = np.where(dead, -1, best)
        table["activation_r"] = np.where(dead, np.nan, value)
        table["activation_mutual"] = ~dead & (back[best] == table["feature_a"].to_numpy())
        if same_inputs:
            table["decoder_match_activation_r"] = _entries(moments, table["decoder_match_b"].to_numpy())
        table["frequency_a"] = fires_a
        table["frequency_b"] = fires_b[np.where(dead, 0, best)]
        table["n_tiles"] = moments.n
    return table


def _entries(moments: _Moments, columns: np.ndarray) -> np.ndarray:
    """r of each feature of A with the given feature of B."""
    out = []
    for begin, block in zip(range(0, len(columns), ROWS), moments.correlation_rows(), strict=True):
        out.append(block[np.arange(len(block)), columns[begin : begin + len(block)]])
    return np.concatenate(out)


def _inputs(cfg: dict) -> str:
    encoder = cfg.get("pathsae", {}).get("encoder", {}).get("spec") or cfg.get("metadata", {}).get("model_name")
    return f"{encoder or 'unknown encoder'} {sae_layer(cfg)}"


def _same_inputs(cfg_a: dict, cfg_b: dict) -> bool:
    weights = [c.get("pathsae", {}).get("encoder", {}).get("weights_sha256") for c in (cfg_a, cfg_b)]
    same_encoder = weights[0] == weights[1] if all(weights) else True  # SAELens files: trust the user
    return same_encoder and sae_layer(cfg_a) == sae_layer(cfg_b)


def match_summary(table: pd.DataFrame) -> str:
    """One line: how well A's features find a partner in B (medians). Given a store, only over A's features
    that fire on enough tiles: a feature firing on one tile correlates perfectly with any other such one."""
    parts, scope = [], ""
    keep = np.ones(len(table), bool)
    if "frequency_a" in table:
        n = int(table["n_tiles"].iloc[0])
        keep = (table["frequency_a"] * n).round().to_numpy() >= min_active_spots(n)
        scope = f" over {int(keep.sum())} features firing on >= {min_active_spots(n)} tiles"
    if "decoder_cosine" in table:
        cos = table.loc[keep, "decoder_cosine"]
        parts.append(f"decoder cosine median {cos.median():.3f}, {int((cos > 0.9).sum())} > 0.9")
    if "activation_r" in table:
        r = table.loc[keep, "activation_r"].dropna()
        parts.append(f"activation r median {r.median():.3f}, {int((r > 0.9).sum())} > 0.9")
    return "; ".join(parts) + scope
