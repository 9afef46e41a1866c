"""Attention-MIL regression of spot targets from the tiles under each spot (Ilse et al. 2018's gated
attention, used for gene expression by Graziani et al. 2022).

A spot is a bag of tiles. Attention weighs the tiles, their features are pooled with those weights,
and one linear head maps the pooled features to every target. The head's weights are the per-feature
coefficients (as in the linear probe) and the attention says which tiles carried the prediction.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .probe import ProbeResult, fold_r, pearson_columns


class GatedAttentionRegressor(nn.Module):
    def __init__(self, n_inputs: int, n_targets: int, hidden: int = 64, dropout: float = 0.25):
        super().__init__()
        self.tanh_branch = nn.Linear(n_inputs, hidden)
        self.gate_branch = nn.Linear(n_inputs, hidden)
        self.score = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_inputs, n_targets)

    def forward(self, tiles: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tiles (B, M, P), mask (B, M) → predictions (B, T) and attention (B, M)."""
        gated = torch.tanh(self.tanh_branch(tiles)) * torch.sigmoid(self.gate_branch(tiles))
        attention = torch.softmax(self.score(gated).squeeze(-1).masked_fill(~mask, float("-inf")), dim=1)
        pooled = (attention.unsqueeze(-1) * tiles).sum(dim=1)
        return self.head(self.dropout(pooled)), attention


def bags(weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(S, M) tile index of each spot's bag (tiles its disk overlaps, padded with 0) and (S, M) mask."""
    counts = np.diff(weights.indptr)
    size = max(1, int(counts.max(initial=0)))
    index = np.zeros((weights.shape[0], size), dtype=np.int64)
    mask = np.zeros((weights.shape[0], size), dtype=bool)
    for spot in range(weights.shape[0]):
        tiles = weights.indices[weights.indptr[spot] : weights.indptr[spot + 1]]
        index[spot, : len(tiles)] = tiles
        mask[spot, : len(tiles)] = True
    return index, mask


def _train(x, mask, y, train, valid, seed: int, epochs: int = 400, patience: int = 30):
    """Fit on ``train`` spots, keep the weights that did best on ``valid`` spots (early stopping)."""
    torch.manual_seed(seed)
    model = GatedAttentionRegressor(x.shape[-1], y.shape[1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    best, best_state, waited = float("inf"), None, 0
    batch = 128
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for begin in range(0, len(order), batch):
            rows = order[begin : begin + batch]
            predicted, _ = model(x[rows], mask[rows])
            loss = nn.functional.mse_loss(predicted, y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            loss = float(nn.functional.mse_loss(model(x[valid], mask[valid])[0], y[valid]))
        if loss < best - 1e-4:
            best, best_state, waited = loss, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    return model.eval()


def _standardised(tile_inputs: np.ndarray, tiles_seen: np.ndarray) -> np.ndarray:
    mean = tile_inputs[tiles_seen].mean(axis=0)
    scale = tile_inputs[tiles_seen].std(axis=0)
    scale[scale == 0] = 1.0
    return ((tile_inputs - mean) / scale).astype(np.float32)


def attention_probe(
    tile_inputs: np.ndarray,
    bag_index: np.ndarray,
    bag_mask: np.ndarray,
    targets: np.ndarray,
    folds: np.ndarray,
    seed: int = 0,
) -> tuple[ProbeResult, np.ndarray]:
    """Held-out attention-MIL predictions per fold (early stopping on one spatial block of the training spots),
    the head of a model fitted on all spots as coefficients, and that model's (S, M) attention."""
    mask = torch.from_numpy(bag_mask)
    predicted = np.empty_like(targets, dtype=np.float64)

    def fit(train: np.ndarray, fold_seed: int):
        x = torch.from_numpy(_standardised(tile_inputs, np.unique(bag_index[train][bag_mask[train]])))[bag_index]
        mean, scale = targets[train].mean(axis=0), targets[train].std(axis=0)
        scale[scale == 0] = 1.0
        y = torch.from_numpy(((targets - mean) / scale).astype(np.float32))
        inner = folds[train]
        valid = train[inner == inner.max()] if len(np.unique(inner)) > 1 else train[::5]
        fit_rows = np.setdiff1d(train, valid)
        return _train(x, mask, y, fit_rows, valid, fold_seed), x, mean, scale

    for fold in np.unique(folds):
        train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        model, x, mean, scale = fit(train, seed + int(fold))
        with torch.no_grad():
            predicted[test] = model(x[test], mask[test])[0].numpy() * scale + mean
    model, x, _, _ = fit(np.arange(len(targets)), seed)
    with torch.no_grad():
        _, attention = model(x, mask)
    result = ProbeResult(
        predicted=predicted,
        r=pearson_columns(targets, predicted),
        r_per_fold=fold_r(targets, predicted, folds),
        coefficients=model.head.weight.detach().numpy().T.astype(np.float64),
        alpha=np.full(targets.shape[1], np.nan),
        folds=folds,
    )
    return result, attention.numpy()
