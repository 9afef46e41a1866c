"""Spatial nulls: the spots moved so that none sees its own tissue, while their layout (the distances between
them, hence the spatial autocorrelation of everything measured on them) stays as it was.

Run the same analysis on a null and count its discoveries: that is the false-discovery level of the section.
"""

from __future__ import annotations

import numpy as np

from ..errors import PathsaeError

#: The nulls ``correlate --null`` offers.
NULLS = ("transpose", "rotate", "shuffle-blocks")
#: Side of the squares ``shuffle-blocks`` moves, unless told (µm).
BLOCK_UM = 1000.0


def null_positions(xy: np.ndarray, kind: str, block: float | None = None, seed: int | None = None) -> np.ndarray:
    """(S, 2) spot centres (µm) moved by ``kind``: ``transpose`` swaps x and y about the spots' centre,
    ``rotate`` turns them 180° about it, ``shuffle-blocks`` moves squares of side ``block`` (default BLOCK_UM)
    whole to each other's places (a random permutation, ``seed`` default 0, in which no square stays)."""
    xy = np.asarray(xy, dtype=np.float64)
    block, seed = block or BLOCK_UM, seed or 0
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    if kind == "transpose":
        return centre + (xy - centre)[:, ::-1]
    if kind == "rotate":
        return 2 * centre - xy
    if kind == "shuffle-blocks":
        origin = xy.min(axis=0)
        cell = np.floor((xy - origin) / block).astype(np.int64)
        blocks, which = np.unique(cell, axis=0, return_inverse=True)
        if len(blocks) < 2:
            raise PathsaeError(f"the spots fit in one {block:g} square: choose a smaller --block-um to shuffle")
        order = np.random.default_rng(seed).permutation(len(blocks))
        order = np.roll(order, 1)[np.argsort(order)]  # a cyclic shift over a random order: no block stays
        return xy + (blocks[order[which.ravel()]] - cell) * block
    raise PathsaeError(f"unknown null {kind!r} ({', '.join(NULLS)})")
