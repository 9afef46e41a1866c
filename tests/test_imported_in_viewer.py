"""Features another tool computed, explored in napari (a real Xvfb window) as a user would: the CMU slide
opened, a TRIDENT import with overlapping tiles chosen as the Model panel's store, an SAE trained on it;
features paint exactly on the tiles the file placed, and no encoder is loaded."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SVS
from importer_files import trident_grid, write_trident
from napari_pathsae.data.store import TileStore
from napari_pathsae.engine.import_embeddings import import_embeddings
from napari_pathsae.errors import PathsaeError
from napari_pathsae.plugin.heatmap_layers import HEATMAPS_LAYER
from napari_pathsae.plugin.state import state_for
from test_importers import planted_features

W, H = 2220, 2967


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The CMU slide's TRIDENT features (224 px tiles 168 apart, a planted darkness feature) and an SAE on them."""
    from napari_pathsae.engine.encode import train_to_folder
    from napari_pathsae.io.slides import open_slide
    from napari_pathsae.models.sae.train import TrainOptions

    work = tmp_path_factory.mktemp("imported")
    coords = trident_grid(W, H, patch_size=224, src_mag=20, dst_mag=20, overlap=56)
    slide = open_slide(SVS)
    features = planted_features(slide, coords, 224, width=48)
    slide.close()
    file = write_trident(work / "cmu.h5", coords, features, 224, 20, 20, 56, W, H, "uni_v1")
    import_embeddings(file, SVS, work / "cmu.zarr")
    train_to_folder([work / "cmu.zarr"], work / "sae", TrainOptions(arch="topk", expansion=2, k=8, samples=20_000))
    return work


def test_an_imported_store_explores_like_an_embedded_one(make_napari_viewer, qtbot, imported):
    from napari_pathsae.plugin.widgets.model_panel import ModelPanel
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    viewer = make_napari_viewer(show=True)
    opener = OpenSampleWidget(viewer)
    opener.slide.value = SVS
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and len(viewer.layers) == 1, timeout=60_000)
    image = viewer.layers[0]
    panel = ModelPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.reset_choices()
    panel.store.value, panel.sae_dir.value = imported / "cmu.zarr", imported / "sae"
    state = state_for(viewer)
    panel.load_button.clicked()
    qtbot.waitUntil(lambda: state.session is not None, timeout=60_000)
    try:
        session = state.session
        assert session.encoder is None and "imported features (no encoder runs here)" in panel.model_info.value
        assert "uni_v1 via trident" in panel.model_info.value
        panel.compute_whole_slide()  # only the SAE runs: every tile's features are in the store
        qtbot.waitUntil(lambda: session.computer.activated().all(), timeout=60_000)
        store = TileStore.open(imported / "cmu.zarr")
        darkness = store.embeddings()[:, 0]
        acts = session.activations
        feature = int(np.nanargmax([abs(np.corrcoef(acts[:, f], darkness)[0, 1]) if acts[:, f].std() else 0
                                    for f in range(acts.shape[1])]))  # fmt: skip
        state.select([feature])
        qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)
        state.painter.refresh_now()
        drawn = viewer.layers[HEATMAPS_LAYER]
        rc = session.grid_index
        assert ((drawn.data[rc[:, 0], rc[:, 1], 3] > 0) == (acts[:, feature] > 0)).all()
        # each grid cell is the middle of its tile: 168 px centred in the 224 px tile the file placed
        coords, side, step = store.coords, store.tile_side0, store.grid_step0
        assert (side, step) == (224.0, 168.0)
        for i in (0, len(coords) // 2, len(coords) - 1):
            centre = image.world_to_data(drawn.data_to_world(rc[i]))
            np.testing.assert_allclose(centre, coords[i, ::-1] + side / 2 - 0.5, atol=1e-6)
            corner = image.world_to_data(drawn.data_to_world(rc[i] - 0.5))
            np.testing.assert_allclose(corner, coords[i, ::-1] + (side - step) / 2 - 0.5, atol=1e-6)
        # the dashboard's tile pictures are cut at the file's corners
        pixels = session.tile_pixels(np.arange(session.n_tiles))
        assert np.corrcoef(255.0 - pixels.mean(axis=(1, 2, 3)), darkness)[0, 1] > 0.99
    finally:
        state.close()


def test_an_imported_store_with_another_slide_is_refused(imported, tmp_path):
    from napari_pathsae.engine.session import ExplorerSession

    with pytest.raises(PathsaeError, match="holds features of another slide"):
        ExplorerSession.load(SVS.with_name("tiatoolbox_target_image.png"), imported / "cmu.zarr")


def test_the_model_panel_imports_a_file_on_load(make_napari_viewer, qtbot, imported, tmp_path):
    from napari_pathsae.plugin.widgets.model_panel import ModelPanel
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    viewer = make_napari_viewer()
    opener = OpenSampleWidget(viewer)
    opener.slide.value = SVS
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and len(viewer.layers) == 1, timeout=60_000)
    panel = ModelPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.reset_choices()
    panel.imported.value, panel.store.value, panel.sae_dir.value = imported / "cmu.h5", tmp_path / "x.zarr", None
    state = state_for(viewer)
    panel.load_button.clicked()
    assert panel.status.value == "importing cmu.h5…"
    qtbot.waitUntil(lambda: state.session is not None, timeout=60_000)
    try:
        assert state.session.encoder is None and "imported features" in panel.model_info.value
        assert panel.store.value == tmp_path / "x.zarr" and panel.encoder.value == "uni_v1 via trident"
        np.testing.assert_array_equal(
            TileStore.open(tmp_path / "x.zarr").embeddings()[:], TileStore.open(imported / "cmu.zarr").embeddings()[:]
        )
    finally:
        state.close()
    panel.imported.value = tmp_path / "nothing.h5"  # a file that is not there: one line in the status
    panel.store.value = tmp_path / "y.zarr"
    panel.load_button.clicked()
    qtbot.waitUntil(lambda: panel.load_button.enabled, timeout=30_000)
    assert "no such file" in panel.status.value and not (tmp_path / "y.zarr").exists()
