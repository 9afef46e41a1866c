"""The papers' analyses end to end: gene prediction held out spatially, SAE matching, concepts and their
importance, features against a per-tile annotation table. Real her2st section; planted signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import HER2ST_HE, HER2ST_OUTS
from napari_pathsae import PathsaeError
from napari_pathsae.analysis.concept_study import slide_importance
from napari_pathsae.analysis.probe import spatial_blocks, spatial_folds
from napari_pathsae.cli import main
from napari_pathsae.models.sae.formats import load_sae, save_sae
from napari_pathsae.models.sae.train import TrainOptions, train_sae
from planting import ACTIVE, planted_dictionary_store, spot_saturation, write_planted_outs


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- spatially blocked folds ----------------------------------------------------------------------


def test_folds_hold_out_whole_squares_of_tissue():
    xy = np.stack(np.meshgrid(np.arange(0, 6000, 200.0), np.arange(0, 5000, 200.0)), axis=-1).reshape(-1, 2)
    folds, side = spatial_folds(xy, n_folds=5, block_um=1000)
    blocks = spatial_blocks(xy, side)
    assert side == 1000 and sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    for block in np.unique(blocks):  # a square never straddles folds
        assert len(np.unique(folds[blocks == block])) == 1
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 25 * 2  # balanced to within two squares
    small, side = spatial_folds(xy[:40] * 0.01, n_folds=5, block_um=1000)  # a tiny section: squares shrink
    assert side < 1000 and len(np.unique(small)) == 5
    with pytest.raises(PathsaeError, match="cannot make 5 held-out folds"):
        spatial_folds(xy[:6], 5)
    with pytest.raises(PathsaeError, match="sit in 1 places"):
        spatial_folds(np.zeros((40, 2)), 5)


# --- predict-genes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shuffled_outs(her2st_model, tmp_path_factory):
    """The planted gene's values moved to random other spots: no longer anything the image shows."""
    signal = spot_saturation(HER2ST_HE, HER2ST_OUTS)
    permuted = np.random.default_rng(1).permutation(signal)
    return write_planted_outs(HER2ST_OUTS, tmp_path_factory.mktemp("shuffled") / "outs", permuted)


def test_predict_genes_finds_the_planted_gene_held_out(her2st_model, tmp_path, capsys):
    out = tmp_path / "genes.csv"
    code, printed, err = run(
        capsys, "predict-genes", her2st_model / "b4.zarr", "--visium", her2st_model / "planted", "-o", out,
        "--spots-table", tmp_path / "spots.csv", "--features-table", tmp_path / "features.csv",
        "--figures", tmp_path / "figures", "--genes", "PLANTED1", "ERBB2", "COL1A1", "IGKC",
    )  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table.columns[:2]) == ["gene", "r"] and len(table) == 4
    assert table.iloc[0]["gene"] == "PLANTED1" and table.iloc[0]["r"] > 0.75, table
    assert "PLANTED1 r = " in printed
    spots = pd.read_csv(tmp_path / "spots.csv")
    measured, predicted = spots["measured_PLANTED1"], spots["predicted_PLANTED1"]
    assert np.corrcoef(measured, predicted)[0, 1] == pytest.approx(table.iloc[0]["r"], abs=1e-6)
    assert spots["fold"].nunique() == 5 and len(spots) == table.iloc[0]["n_spots"]
    features = pd.read_csv(tmp_path / "features.csv")
    planted = features[features["gene"] == "PLANTED1"]
    assert planted["share"].is_monotonic_decreasing and len(planted) == 10
    assert abs(planted["feature_r"].iloc[0]) > 0.5  # the feature with the largest share follows the gene alone too
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "COL1A1.png", "ERBB2.png", "IGKC.png", "PLANTED1.png",
    ]  # fmt: skip
    from PIL import Image

    with Image.open(tmp_path / "figures" / "PLANTED1.png") as png:
        assert png.size[0] > 1500 and np.asarray(png).std() > 20


def test_predict_genes_gives_nothing_for_a_gene_the_image_does_not_carry(her2st_model, shuffled_outs, tmp_path, capsys):
    out = tmp_path / "genes.csv"
    code, _, err = run(capsys, "predict-genes", her2st_model / "b4.zarr", "--visium", shuffled_outs, "-o", out,
                       "--genes", "PLANTED1")  # fmt: skip
    assert code == 0, err
    assert abs(pd.read_csv(out).iloc[0]["r"]) < 0.3


def test_predict_genes_default_covers_every_detected_gene_and_ranks_the_planted_first(her2st_model, tmp_path, capsys):
    out = tmp_path / "genes.csv"
    code, _, err = run(
        capsys, "predict-genes", her2st_model / "b4.zarr", "--visium", her2st_model / "planted", "-o", out
    )
    assert code == 0, err
    table = pd.read_csv(out)
    assert len(table) > 5000 and table.iloc[0]["gene"] == "PLANTED1"
    assert table["r"].is_monotonic_decreasing


def test_attention_mil_predicts_the_planted_gene(her2st_model, tmp_path, capsys):
    out = tmp_path / "mil.csv"
    code, _, err = run(
        capsys, "predict-genes", her2st_model / "b4.zarr", "--visium", her2st_model / "planted", "-o", out,
        "--genes", "PLANTED1", "ERBB2", "--model", "mil",
    )  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(out).set_index("gene")
    assert table.loc["PLANTED1", "r"] > 0.6 and (table["model"] == "mil").all()


@pytest.mark.parametrize("model", ["ridge", "mil"])
def test_predict_genes_on_a_half_computed_store_uses_the_computed_tiles_only(her2st_model, tmp_path, model):
    """The viewer's store: tiles not computed yet are NaN rows; spots over none of them are left out."""
    import shutil

    from napari_pathsae import open_visium
    from napari_pathsae.analysis.gene_prediction import predict_genes
    from napari_pathsae.data.store import TileStore

    shutil.copytree(her2st_model / "b4.zarr", tmp_path / "half.zarr")
    store = TileStore.open(tmp_path / "half.zarr", mode="r+")
    acts = store.activations()
    left = store.tile_centres[:, 0] < np.median(store.tile_centres[:, 0])
    values = acts[:]
    values[~left] = np.nan
    acts[:] = values
    result = predict_genes(store, open_visium(her2st_model / "planted"), ["PLANTED1"], model=model)
    row = result.table.iloc[0]
    assert 50 < row["n_spots"] < 200 and np.isfinite(row["r"])
    assert result.spots["x"].max() < store.tile_centres[~left, 0].max()  # only spots over computed tiles
    if model == "mil":  # attention lands on computed tiles only, as weights in (0, 1]
        attended = np.isfinite(result.tile_attention)
        assert attended.any() and not attended[~left].any()
        assert (result.tile_attention[attended] > 0).all() and (result.tile_attention[attended] <= 1).all()


def test_predict_genes_refuses_bad_requests_in_one_line(her2st_model, tmp_path, capsys):
    base = ["predict-genes", her2st_model / "b4.zarr", "--visium", her2st_model / "planted"]
    code, _, err = run(capsys, *base, "-o", tmp_path / "a.csv", "--genes", "NOTAGENE")
    assert code == 1 and err.count("\n") == 1 and "NOTAGENE" in err
    (tmp_path / "exists.csv").write_text("keep me")
    code, _, err = run(capsys, *base, "-o", tmp_path / "exists.csv", "--genes", "PLANTED1")
    assert code == 1 and "exists" in err and (tmp_path / "exists.csv").read_text() == "keep me"
    code, _, err = run(capsys, *base, "-o", tmp_path / "b.csv", "--genes", "PLANTED1", "--folds", "200")
    assert code == 1 and "fold" in err and not (tmp_path / "b.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["exists.csv"]  # nothing half-written


# --- match ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_saes(tmp_path_factory):
    """Two SAEs trained with different seeds on the same planted-dictionary embeddings, one on its rotated
    "layer_6", and a copy of the first with its features shuffled."""
    work = tmp_path_factory.mktemp("match")
    store, _ = planted_dictionary_store(work / "store.zarr")
    options = TrainOptions(arch="topk", expansion=2, k=ACTIVE, batch_size=256, lr=2e-3)
    paths = {}
    for name, seed, layer in (("a", 0, "pooled"), ("b", 1, "pooled"), ("deep", 2, "layer_6")):
        sae, _ = train_sae([store], TrainOptions(**{**vars(options), "seed": seed, "layer": layer}))
        paths[name] = save_sae(sae, work / name, layer, {"encoder": {"spec": "planted", "weights_sha256": "x"}})
    sae, _ = load_sae(paths["a"])
    order = np.random.default_rng(0).permutation(sae.cfg.d_sae)
    for name in ("W_dec", "b_enc"):
        getattr(sae, name).data = getattr(sae, name).data[order]
    sae.W_enc.data = sae.W_enc.data[:, order]
    paths["shuffled"] = save_sae(
        sae, work / "shuffled", "pooled", {"encoder": {"spec": "planted", "weights_sha256": "x"}}
    )
    return work, paths, order


def matched(capsys, out, a, b, *store) -> tuple[pd.DataFrame, str]:
    """`pathsae match A B` (with ``--store`` when given): its table and what it printed."""
    code, printed, err = run(capsys, "match", a, b, "-o", out, *(["--store", *store] if store else []))
    assert code == 0, err
    return pd.read_csv(out), printed


def test_match_finds_a_shuffled_copy_exactly(two_saes, tmp_path, capsys):
    work, paths, order = two_saes
    table, _ = matched(capsys, tmp_path / "m.csv", paths["a"], paths["shuffled"], work / "store.zarr")
    inverse = np.argsort(order)  # feature f of A is feature inverse[f] of the copy
    live = table["frequency_a"] > 0  # with a store, dead features have no match: they never fire
    assert live.sum() > 40
    np.testing.assert_array_equal(table.loc[live, "decoder_match_b"], inverse[live])
    np.testing.assert_allclose(table.loc[live, "decoder_cosine"], 1, atol=1e-6)
    np.testing.assert_allclose(table.loc[live, "activation_r"], 1, atol=1e-6)
    np.testing.assert_array_equal(table.loc[live, "activation_match_b"], inverse[live])
    assert table.loc[live, "decoder_mutual"].all()
    table, _ = matched(capsys, tmp_path / "no_store.csv", paths["a"], paths["shuffled"])  # every feature, dead too
    np.testing.assert_array_equal(table["decoder_match_b"], inverse)
    assert "activation_r" not in table


def test_independent_saes_agree_on_the_planted_features(two_saes, tmp_path, capsys):
    work, paths, _ = two_saes
    table, printed = matched(capsys, tmp_path / "m.csv", paths["a"], paths["b"], work / "store.zarr")
    live = table[table["frequency_a"] > 0.01]
    assert len(live) >= 40  # the 48 planted atoms
    assert live["decoder_cosine"].median() > 0.9 and live["activation_r"].median() > 0.9
    assert (live["decoder_match_b"] == live["activation_match_b"]).mean() > 0.9  # both ways agree
    assert "decoder cosine median" in printed and "activation r median" in printed


def test_saes_of_different_layers_match_by_activation_only(two_saes, tmp_path, capsys):
    work, paths, _ = two_saes
    code, _, err = run(capsys, "match", paths["a"], paths["deep"], "-o", tmp_path / "x.csv")
    assert code == 1 and "--store" in err and err.count("\n") == 1 and not (tmp_path / "x.csv").exists()
    code, _, err = run(
        capsys, "match", paths["a"], paths["deep"], "-o", tmp_path / "m.csv", "--store", work / "store.zarr"
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "m.csv")
    assert "decoder_cosine" not in table
    assert table.loc[table["frequency_a"] > 0.01, "activation_r"].median() > 0.9  # the same atoms, rotated


# --- concepts -------------------------------------------------------------------------------------


def test_concepts_cli_writes_tiles_maps_and_gene_importance(her2st_model, tmp_path, capsys):
    out = tmp_path / "concepts"
    code, _, err = run(
        capsys, "concepts", her2st_model / "b4.zarr", "-n", "5", "-o", out,
        "--visium", her2st_model / "planted", "--genes", "PLANTED1", "ERBB2",
    )  # fmt: skip
    assert code == 0, err
    tiles = pd.read_csv(out / "tiles.csv")
    assert len(tiles) == 1038 and set(tiles["concept"]) == {1, 2, 3, 4, 5}
    weights = tiles[[f"w{c}" for c in range(1, 6)]].to_numpy()
    np.testing.assert_array_equal(weights.argmax(axis=1) + 1, tiles["concept"])  # k-means: one-hot
    legend = pd.read_csv(out / "concepts.csv")
    assert legend["tiles"].sum() == 1038
    importance = pd.read_csv(out / "importance.csv")
    planted = importance[importance["target"] == "PLANTED1"]
    assert len(planted) == 5 and planted["model_r"].iloc[0] > 0.5
    assert (out / "map_b4.png").stat().st_size > 20_000
    code, _, err = run(capsys, "concepts", her2st_model / "b4.zarr", "-n", "5", "-o", out)
    assert code == 1 and "exists" in err


def test_slide_level_importance_points_at_the_concept_that_sets_the_target():
    rng = np.random.default_rng(0)
    names = [f"s{i}" for i in range(12)]
    weights = [np.eye(3)[rng.choice(3, 200, p=rng.dirichlet(np.ones(3)))] for _ in names]
    share = np.array([w[:, 1].mean() for w in weights])
    targets = pd.DataFrame({"grade": 2 * share + rng.normal(0, 0.02, 12)}, index=names)
    table = slide_importance(names, weights, targets)
    assert table.loc[table["coefficient"].abs().idxmax(), "concept"] == 2
    assert table["model_r"].iloc[0] > 0.8 and (table["unit"] == "slide").all()
    with pytest.raises(PathsaeError, match="no row for s11"):
        slide_importance(names, weights, targets.iloc[:11])


# --- features against a per-tile annotation table -------------------------------------------------


def test_correlate_finds_the_feature_a_tile_annotation_follows(her2st_model, tmp_path, capsys):
    from napari_pathsae.data.store import TileStore

    store = TileStore.open(her2st_model / "b4.zarr")
    acts = store.activations()[:]
    feature = int(np.argmax((acts > 0).mean(axis=0) * ((acts > 0).mean(axis=0) < 0.6)))  # a common, varying one
    centres = store.tile_centres
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(
        {"x": centres[:, 0], "y": centres[:, 1], "cells": 3 * acts[:, feature] + rng.normal(0, 0.1, len(acts))}
    )
    cells.to_csv(tmp_path / "cells.csv", index=False)
    out = tmp_path / "c.csv"
    code, printed, err = run(
        capsys, "correlate", her2st_model / "b4.zarr", "--annotations", tmp_path / "cells.csv", "-o", out
    )
    assert code == 0, err
    table = pd.read_csv(out)
    best = table.sort_values("r", ascending=False).iloc[0]
    assert best["feature"] == f"f{feature}" and best["annotation"] == "cells" and best["r"] > 0.95
    assert best["n_tiles"] == len(acts) and "over 1038 tiles" in printed
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    code, _, err = run(
        capsys, "correlate", her2st_model / "b4.zarr", "--annotations", tmp_path / "bad.csv", "-o", tmp_path / "d.csv"
    )
    assert code == 1 and "'tile' column" in err
    code, _, err = run(capsys, "correlate", her2st_model / "b4.zarr", "-o", tmp_path / "e.csv")
    assert code == 1 and "--visium" in err
