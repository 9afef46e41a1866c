"""Concepts in space: neighbourhood enrichment and co-occurrence of concepts on a real section's tile grid,
with a planted layout (two halves and a sprinkled checkerboard) and a shuffled null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import HER2ST_HE
from napari_pathsae import PathsaeError
from napari_pathsae.analysis.concept_space import concept_neighbourhood
from napari_pathsae.data.store import TileStore


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory) -> TileStore:
    """The her2st B4 section's real tissue tile grid (112 µm tiles, 1038 of them), nothing embedded."""
    from napari_pathsae.data.tiles import TileGeometry
    from napari_pathsae.engine.embed import EmbedOptions, open_tiles

    slide, grid = open_tiles(HER2ST_HE, EmbedOptions(geometry=TileGeometry.from_options(tile_um=112), slide_mpp=0.69))
    slide.close()
    provenance = {
        "slide_mpp": grid.slide_mpp, "tile_side_level0_px": grid.side0, "slide_shape_yx": list(slide.shape_yx),
        "slide_path": str(tmp_path_factory.getbasetemp() / "no-slide.jpg"),  # maps drawn without the tissue
    }  # fmt: skip
    path = tmp_path_factory.mktemp("grid") / "b4.zarr"
    return TileStore.create_or_resume(
        path, {}, provenance, grid.coords, grid.tissue_fraction, grid.grid_index, {"pooled": (1,)}
    )


def planted_labels(store: TileStore) -> np.ndarray:
    """Concept 1 on the left half of the tissue, 2 on the right, 3 a checkerboard sprinkled across a band."""
    row, col = np.asarray(store.root["grid_index"][:]).T
    labels = np.where(col < np.median(col), 1, 2)
    band = (row >= np.quantile(row, 0.4)) & (row < np.quantile(row, 0.6))
    labels[band & ((row + col) % 2 == 0)] = 3
    return labels


def grid_contacts(store: TileStore, labels: np.ndarray) -> dict[tuple[int, int], int]:
    """Edges of the 8-neighbourhood counted from the grid indices alone, by the unordered pair of concepts."""
    index = np.asarray(store.root["grid_index"][:])
    at = {tuple(rc): i for i, rc in enumerate(index)}
    contacts: dict[tuple[int, int], int] = {}
    for i, (r, c) in enumerate(index):
        for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each edge once
            j = at.get((r + dr, c + dc))
            if j is not None and labels[i] and labels[j]:
                pair = tuple(sorted((int(labels[i]), int(labels[j]))))
                contacts[pair] = contacts.get(pair, 0) + 1
    return contacts


def z_of(pairs: pd.DataFrame, a: int, b: int) -> float:
    return float(pairs.set_index(["concept_a", "concept_b"]).loc[(a, b), "nhood_z"])


def test_planted_halves_border_each_other_only_at_the_seam_and_a_shuffle_finds_nothing(grid_store, tmp_path):
    from napari_pathsae.report.figures import concept_neighbourhood_figure

    labels = planted_labels(grid_store)
    labels[:40] = 0  # not computed: left out of the graph
    found = concept_neighbourhood(grid_store, labels)
    pairs = found.pairs
    assert len(pairs) == 9 and pairs.drop_duplicates("concept_a")["tiles_a"].sum() == 1038 - 40
    assert z_of(pairs, 1, 1) > 20 and z_of(pairs, 2, 2) > 20 and z_of(pairs, 3, 3) > 5
    assert z_of(pairs, 1, 2) < -20 and z_of(pairs, 1, 2) == pytest.approx(z_of(pairs, 2, 1))
    expected = grid_contacts(grid_store, labels)
    for row in pairs.itertuples():  # the tile graph is exactly the grid's 8-neighbourhood
        assert row.n_contacts == expected.get(tuple(sorted((row.concept_a, row.concept_b))), 0)
    ratio = pairs.set_index(["concept_a", "concept_b"])["co_occurrence_ratio"]
    assert ratio[(1, 1)] > 1.5 and ratio[(1, 2)] < 0.2 and np.allclose(pairs["co_occurrence_um"], 168.0)
    curve = found.co_occurrence
    assert len(curve) == 9 * 5 and list(curve["distance_tiles"].unique()) == [1.5, 2.5, 4.0, 6.0, 10.0]
    apart = curve[(curve["concept_a"] == 1) & (curve["concept_b"] == 2)]["co_occurrence_ratio"].to_numpy()
    assert (np.diff(apart) > 0).all() and apart[-1] < 1  # the halves meet more often the wider the disk

    for seed in range(3):  # the null: the same tiles and counts, labels shuffled
        shuffled = labels.copy()
        shuffled[labels > 0] = np.random.default_rng(seed).permutation(labels[labels > 0])
        null = concept_neighbourhood(grid_store, shuffled, seed=seed).pairs
        assert null["nhood_z"].abs().max() < 3, null

    legend = pd.DataFrame({"concept": [1, 2, 3], "tiles": [0, 0, 0], "top_features": ["f1", "f2", "f3, f4, f5"]})
    path = concept_neighbourhood_figure(pairs, found.co_occurrence, legend, tmp_path / "n.png")
    assert path.stat().st_size > 20_000


def test_too_few_tiles_or_concepts_are_refused_in_one_line(grid_store, tmp_path):
    from napari_pathsae.analysis.concept_study import Concepts
    from napari_pathsae.report.concepts import write_concepts

    labels = planted_labels(grid_store)
    sparse = np.where(np.arange(len(labels)) < 8, labels, 0)
    with pytest.raises(PathsaeError, match="at least 10 computed tiles and 2 concepts; it has 8 tiles"):
        concept_neighbourhood(grid_store, sparse)
    with pytest.raises(PathsaeError, match="concept labels for 1038 tiles"):
        concept_neighbourhood(grid_store, labels[:-1])
    one = np.ones_like(labels)  # a store with a single concept: write_concepts stops, it does not skip the store
    found = Concepts([one], [np.eye(2)[one - 1]], np.eye(2), pd.DataFrame({"concept": [1, 2], "tiles": [1038, 0],
                                                                            "top_features": ["f0", "f1"]}))  # fmt: skip
    with pytest.raises(PathsaeError, match="1038 tiles of 1 concept"):
        write_concepts(tmp_path, ["b4"], [grid_store], found)
    assert not (tmp_path / "neighbourhood_b4.csv").exists()


def test_concepts_cli_writes_each_stores_neighbourhoods(her2st_model, tmp_path, capsys):
    from napari_pathsae.cli import main

    out = tmp_path / "concepts"
    assert main(["concepts", str(her2st_model / "b4.zarr"), "-n", "5", "-o", str(out)]) == 0, capsys.readouterr()
    pairs = pd.read_csv(out / "neighbourhood_b4.csv")
    assert list(pairs.columns) == [
        "store", "concept_a", "concept_b", "tiles_a", "tiles_b", "n_contacts", "nhood_z", "co_occurrence_ratio",
        "co_occurrence_um",
    ]  # fmt: skip
    assert len(pairs) == 25 and (pairs["store"] == "b4").all() and np.isfinite(pairs["nhood_z"]).all()
    square = pairs.pivot(index="concept_a", columns="concept_b", values="nhood_z").to_numpy()
    np.testing.assert_allclose(square, square.T)  # an edge between a and b is one between b and a
    store = TileStore.open(her2st_model / "b4.zarr")
    tiles = pd.read_csv(out / "tiles.csv")
    labels = np.zeros(store.n_tiles, dtype=np.int64)
    labels[tiles["tile"]] = tiles["concept"]
    edges = sum(grid_contacts(store, labels).values())
    assert pairs.loc[pairs["concept_a"] <= pairs["concept_b"], "n_contacts"].sum() == edges
    curve = pd.read_csv(out / "co_occurrence_b4.csv")
    assert len(curve) == 25 * 5 and {"distance_um", "distance_tiles", "co_occurrence_ratio"} <= set(curve.columns)
    assert (out / "neighbourhood_b4.png").stat().st_size > 20_000
