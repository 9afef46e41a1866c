"""Embedding a real slide into its store: values equal the encoder on the tiles, runs resume, stores are never mixed."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SVS
from napari_pathsae import PathsaeError, open_slide
from napari_pathsae.data.store import TileStore
from napari_pathsae.data.tiles import TileGeometry, read_tiles, tile_grid
from napari_pathsae.engine.embed import EmbedOptions, embed_slide, summary_line
from napari_pathsae.models.encoders import load_encoder

TINY = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(TINY, dtype="fp32")  # bf16 CPUs (AMX) change results with the batch's make-up


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, tiny):
    path = tmp_path_factory.mktemp("embed") / "skin.zarr"
    events = []
    summary = embed_slide(SVS, path, tiny, EmbedOptions(layers=(6,), chunk_tiles=16), events.append)
    return path, summary, events


def test_store_holds_the_encoder_outputs_of_the_grid_tiles(embedded, tiny):
    path, summary, events = embedded
    store = TileStore.open(path)
    slide = open_slide(SVS)
    grid = tile_grid(slide, TileGeometry())
    assert store.complete and store.n_tiles == len(grid) == summary["tiles"] == summary["computed"]
    np.testing.assert_array_equal(store.coords, grid.coords)
    pick = np.array([0, 17, len(grid) - 1])
    expected = tiny.embed(read_tiles(slide, grid, pick), layers=(6,))
    np.testing.assert_allclose(store.embeddings("pooled").oindex[pick, :], expected["pooled"], atol=2e-3)
    np.testing.assert_allclose(store.embeddings("layer_6").oindex[pick, :], expected["layer_6"], atol=2e-3)
    provenance = store.provenance
    assert provenance["encoder"]["random_init"] is True and provenance["slide_mpp"] == pytest.approx(0.499)
    assert provenance["geometry"]["tile_um"] == pytest.approx(112)
    assert [e.done for e in events] == sorted(e.done for e in events) and events[-1].done == len(grid)
    line = summary_line(summary)
    assert f"{len(grid)} tiles" in line and "tiles/s" in line and "RANDOM-INIT" in line and "batch 32" in line


def test_a_killed_run_resumes_and_ends_with_the_clean_result(embedded, tiny, tmp_path):
    import shutil

    path, _, _ = embedded
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    store = TileStore.open(copy, mode="r+")
    clean = store.embeddings()[:]
    store.root["done"][1:3] = False  # as if killed after chunk 0, with chunks 1-2 half written
    store.root["embeddings"]["pooled"][16:48] = np.nan
    store.root.attrs["complete"] = False
    from napari_pathsae.engine.encode import train_to_folder
    from napari_pathsae.models.sae.train import TrainOptions

    with pytest.raises(PathsaeError, match="unfinished"):
        train_to_folder([copy], tmp_path / "sae", TrainOptions())
    summary = embed_slide(SVS, copy, tiny, EmbedOptions(layers=(6,), chunk_tiles=16))
    assert summary["computed"] == 32
    rerun = embed_slide(SVS, copy, tiny, EmbedOptions(layers=(6,), chunk_tiles=16))
    assert rerun["computed"] == 0 and TileStore.open(copy).root.attrs["summary"]["computed"] == 32
    np.testing.assert_allclose(TileStore.open(copy).embeddings()[:], clean, atol=1e-5)


def test_a_store_is_never_mixed_with_another_encoder_or_geometry(embedded):
    path, _, _ = embedded
    with pytest.raises(PathsaeError, match="encoder_weights_sha256"):
        embed_slide(SVS, path, load_encoder(TINY, seed=1), EmbedOptions(layers=(6,), chunk_tiles=16))
    with pytest.raises(PathsaeError, match="geometry"):
        embed_slide(SVS, path, load_encoder(TINY), EmbedOptions(TileGeometry(min_tissue=0.5), layers=(6,)))


def test_tiles_read_by_several_threads_give_the_same_store(embedded, tiny, tmp_path):
    path, _, _ = embedded
    parallel = tmp_path / "parallel.zarr"
    embed_slide(SVS, parallel, tiny, EmbedOptions(layers=(6,), chunk_tiles=16, readers=3))
    for name in ("pooled", "layer_6"):
        np.testing.assert_array_equal(
            TileStore.open(parallel).embeddings(name)[:], TileStore.open(path).embeddings(name)[:]
        )


def test_encoding_streams_chunks_into_the_store_with_the_sae_values(embedded, tiny, tmp_path):
    import shutil

    import torch

    from napari_pathsae.engine.encode import encode_store
    from napari_pathsae.models.sae import SAEConfig, build_sae
    from napari_pathsae.models.sae.formats import load_sae, save_sae

    path, _, _ = embedded
    store_path = tmp_path / "copy.zarr"
    shutil.copytree(path, store_path)
    torch.manual_seed(0)
    sae_dir = save_sae(build_sae(SAEConfig("topk", tiny.width, 4 * tiny.width, k=8)), tmp_path / "sae", "pooled", {})
    name = encode_store(store_path, sae_dir, batch_rows=20)  # 20 rows → one 16-tile chunk per write
    store = TileStore.open(store_path)
    sae, _ = load_sae(sae_dir)
    with torch.no_grad():
        expected = sae.encode(torch.from_numpy(store.embeddings()[:])).numpy()
    np.testing.assert_allclose(store.activations(name)[:], expected, rtol=1e-5, atol=1e-6)
    assert store.activations(name).attrs["sae"]["weights_sha256"]
