"""Writes a concept study (analysis/concept_study.py fits it): tables, maps and neighbourhoods per store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis.concept_space import concept_neighbourhood
from ..analysis.concept_study import Concepts, tile_concept_table
from ..data.store import TileStore
from .figures import concept_map_figure, concept_neighbourhood_figure


def write_concepts(
    folder: Path,
    names: list[str],
    stores: list[TileStore],
    found: Concepts,
    importance=None,
    seed: int = 0,
    n_perms: int = 1000,
) -> None:
    """tiles.csv (every store's tiles), concepts.csv (the legend), importance.csv, and per store a map and
    the concepts' neighbourhoods: neighbourhood_<store>.csv/.png and co_occurrence_<store>.csv."""
    tables = zip(names, stores, found.labels, found.weights, strict=True)
    pd.concat([tile_concept_table(*t) for t in tables], ignore_index=True).to_csv(folder / "tiles.csv", index=False)
    found.legend.to_csv(folder / "concepts.csv", index=False)
    if importance is not None:
        importance.to_csv(folder / "importance.csv", index=False)
    for name, store, labels in zip(names, stores, found.labels, strict=True):
        concept_map_figure(store, labels, found.legend, folder / f"map_{name}.png")
        # too few tiles or concepts on a store is the user's to know: its PathsaeError stops the whole output
        space = concept_neighbourhood(store, labels, seed=seed, n_perms=n_perms, store_name=name)
        space.pairs.to_csv(folder / f"neighbourhood_{name}.csv", index=False)
        space.co_occurrence.to_csv(folder / f"co_occurrence_{name}.csv", index=False)
        concept_neighbourhood_figure(
            space.pairs, space.co_occurrence, found.legend, folder / f"neighbourhood_{name}.png"
        )
