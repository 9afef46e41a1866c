"""The exploration panels driven as a user would, on the real her2st B4 section (pytest-qt, Xvfb)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from conftest import CYTASSIST, DATA, HER2ST_HE, HER2ST_OUTS, SVS, TINY_ENCODER
from napari_pathsae.data.store import TileStore
from napari_pathsae.data.viewport import tiles_in_view
from napari_pathsae.names import LayerKind, layer_kind
from napari_pathsae.plugin.heatmap_layers import (
    HEATMAPS_LAYER,
    HEATMAPS_LAYER_COMPUTING,
    MAX_ALPHA,
    NOT_COMPUTED_RGBA,
    composite_rgba,
    feature_rgba,
)
from napari_pathsae.plugin.painter import MOVING_S, REFRESH_MOVING_MS, REFRESH_MS
from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.viewport_worker import camera_of
from napari_pathsae.report.export import region_mask

MPP = 0.69


def open_section(viewer, qtbot, outs=HER2ST_OUTS):
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    opener = OpenSampleWidget(viewer)
    opener.slide.value, opener.visium.value, opener.mpp.value = HER2ST_HE, outs, MPP
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled, timeout=60_000)
    return viewer.layers[0], viewer.layers[1]


def load_model(viewer, qtbot, store, sae, with_spots=True):
    """Fill the Model panel and press Load; returns (panel, state) once the session is up."""
    from napari_pathsae.plugin.widgets.model_panel import ModelPanel

    panel = ModelPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.reset_choices()
    if with_spots:
        panel.spots_layer.value = panel.spots_layer.choices[1]
    panel.encoder.value, panel.store.value, panel.sae_dir.value = TINY_ENCODER, store, sae
    panel.dtype.value = "fp32"  # as the store was embedded: bf16 would vary with the tiles batched together
    panel.follow_view.value = False
    state = state_for(viewer)
    panel.load_button.clicked()
    qtbot.waitUntil(lambda: state.session is not None, timeout=60_000)
    return panel, state


def click_row(qtbot, table, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    rect = table.visualRect(table.model().index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


@pytest.fixture
def explorer(make_napari_viewer, qtbot, her2st_model):
    viewer = make_napari_viewer()
    image, spots = open_section(viewer, qtbot, her2st_model / "planted")
    panel, state = load_model(viewer, qtbot, her2st_model / "b4.zarr", her2st_model / "sae")
    yield viewer, state, image, spots, panel
    state.close()


def test_clicking_features_paints_them_exactly_on_their_tiles(explorer, qtbot, her2st_model):
    from napari_pathsae.plugin.widgets.feature_browser import FeatureBrowser

    viewer, state, image, _, panel = explorer
    assert "RANDOM weights" in panel.model_info.value and "(float32)" in panel.model_info.value  # the worker's
    assert f"{state.session.n_features} features" in panel.model_info.value
    browser = FeatureBrowser(viewer)
    viewer.window.add_dock_widget(browser)
    browser.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # by max activation
    first, second = browser.feature_at(0), browser.feature_at(1)
    click_row(qtbot, browser.table, 0)
    click_row(qtbot, browser.table, 1, Qt.KeyboardModifier.ControlModifier)
    assert state.selected == [first, second]
    qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)  # their layers come one per event-loop turn
    heat, other = viewer.layers[f"pathsae f{first}"], viewer.layers[f"pathsae f{second}"]
    # napari's active layer is the feature the dashboard shows: its layer controls edit that feature
    assert state.current == second and viewer.layers.selection.active is other
    # one colorbar on the canvas, the current feature's (each is five visuals drawn every frame); every name
    assert other.colorbar.visible and not heat.colorbar.visible
    assert heat.name_overlay.visible and other.name_overlay.visible
    state.set_current(first)  # as a click on its top tile or a restored exploration would
    assert viewer.layers.selection.active is heat
    assert heat.colorbar.visible and not other.colorbar.visible
    store = TileStore.open(her2st_model / "b4.zarr")
    acts, rc = store.activations()[:], store.root["grid_index"][:]
    assert heat.contrast_limits[1] == pytest.approx(acts[:, first].max())
    assert other.colormap.name != heat.colormap.name
    # one layer draws both: each tile's colour is the second feature's hue over the first's, from its activations
    drawn = viewer.layers[HEATMAPS_LAYER]
    assert [layer_kind(layer) for layer in viewer.layers].count(LayerKind.HEATMAPS) == 1
    expected = composite_rgba([feature_rgba(acts[:, f][None], layer.colormap, layer.contrast_limits)
                               for f, layer in ((first, heat), (second, other))])[0]  # fmt: skip
    np.testing.assert_array_equal(drawn.data[rc[:, 0], rc[:, 1]], expected)
    assert (drawn.data[rc[:, 0], rc[:, 1], 3] > 0).sum() == ((acts[:, first] > 0) | (acts[:, second] > 0)).sum()
    # hovering a feature's layer or the composite reads the activations of the tile under the cursor
    box = state.session.placement.tile_box_world(rc[[400]])[0]
    point = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    assert heat.get_status(point, world=True)["value"] == f"tile 400: f{first} = {acts[400, first]:.3g}"
    assert drawn.get_status(point, world=True)["value"] == (
        f"tile 400: f{first} = {acts[400, first]:.3g}, f{second} = {acts[400, second]:.3g}"
    )
    assert drawn.get_status([-1e6, -1e6], world=True)["value"] == "no tissue tile here"
    # hiding the second feature's layer leaves the first alone in the picture, its alpha rising with activation
    other.visible = False
    qtbot.waitUntil(lambda: (drawn.data[..., 3] > 0).sum() == (acts[:, first] > 0).sum(), timeout=5_000)
    alpha = drawn.data[rc[:, 0], rc[:, 1], 3].astype(float)
    on = acts[:, first] > 0
    assert np.corrcoef(alpha[on], acts[on, first])[0, 1] > 0.9 and alpha.max() == round(255 * MAX_ALPHA)
    other.visible = True
    # each grid cell's centre is its tile's centre on the slide layer, and its corner the tile's corner:
    # tiles are read from exact float boxes (grid index x side); the stored coords are those rounded
    coords, side = store.coords, store.tile_side0
    for i in (0, 400, len(coords) - 1):
        centre = image.world_to_data(drawn.data_to_world(rc[i]))
        np.testing.assert_allclose(centre, rc[i] * side + side / 2 - 0.5, atol=1e-6)
        np.testing.assert_allclose(centre, coords[i, ::-1] + side / 2 - 0.5, atol=0.5)
        corner = image.world_to_data(drawn.data_to_world(rc[i] - 0.5))
        np.testing.assert_allclose(corner, rc[i] * side - 0.5, atol=1e-6)
    # a label typed in the table is saved beside the SAE and renames the heatmap
    row = browser.row_of(first)
    browser.model.setData(browser.model.index(row, 1), "dense nuclei")  # what the cell's editor commits
    assert viewer.layers[f"pathsae f{first} dense nuclei"] is heat
    assert '"dense nuclei"' in (her2st_model / "sae" / "feature_labels.json").read_text()
    browser.model.setData(browser.model.index(row, 1), "")
    # searching hides non-matching rows; deselecting removes the heatmap; state survives layer removal
    browser.search.setText(f"f{second}")
    assert not browser.table.isRowHidden(browser.row_of(second)) and browser.table.isRowHidden(browser.row_of(7))
    browser.search.setText("")
    viewer.layers.remove(heat)
    click_row(qtbot, browser.table, browser.row_of(second))
    qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)
    assert state.selected == [second] and f"pathsae f{first}" not in viewer.layers
    # it keeps its hue now that it is alone, and its name on the canvas is written in that hue
    kept = viewer.layers[f"pathsae f{second}"]
    assert kept.colormap.name == other.colormap.name and kept.colorbar.visible  # the one shown: its colorbar
    np.testing.assert_allclose(kept.name_overlay.color[:3], kept.colormap.colors[-1][:3])
    click_row(qtbot, browser.table, browser.row_of(first))
    qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)
    assert f"pathsae f{first}" in viewer.layers and f"pathsae f{second}" not in viewer.layers
    browser.add_argmax_layer()
    qtbot.waitUntil(lambda: "pathsae argmax feature" in viewer.layers, timeout=60_000)
    argmax = viewer.layers["pathsae argmax feature"]
    assert argmax.data[rc[5, 0], rc[5, 1]] == acts[5].argmax() + 1


def test_the_feature_table_keeps_selection_and_search_through_refreshes_computed_off_the_ui_thread(explorer, qtbot):
    """New statistics re-sort the table (a model, not thousands of widget items): the painted features stay
    selected, the search still hides exactly the rows that do not match, and the statistics are computed
    on a worker thread."""
    from napari_pathsae.plugin.widgets.feature_browser import FeatureBrowser

    viewer, state, *_ = explorer
    session = state.session
    browser = FeatureBrowser(viewer)
    viewer.window.add_dock_widget(browser)
    browser.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)  # by "active in"
    shown = browser.visible_features()
    frequency = session.feature_table().set_index("feature").frequency
    assert list(frequency[shown]) == sorted(frequency[shown], reverse=True) and len(shown) == session.n_features
    chosen = shown[:3]
    browser.select_features(chosen)
    assert state.selected == chosen
    browser.search.setText("f1")
    matches = {1}  # a feature's name finds that feature, not f10-f19 and f100-f199 too
    assert set(browser.visible_features()) == matches
    # the least active feature becomes the most active: new statistics move it to the top row
    last = shown[-1]
    session.computer.activations[:, last] = 5.0
    threads = []
    table_of = session.feature_table
    session.feature_table = lambda: (threads.append(threading.current_thread()), table_of())[1]
    browser.refresh()
    qtbot.waitUntil(lambda: browser.feature_at(0) == last, timeout=30_000)
    assert threads and threading.main_thread() not in threads
    assert state.selected == chosen and sorted(browser._selected_rows_features()) == sorted(chosen)
    rows = range(browser.model.rowCount())
    assert {browser.feature_at(r) for r in rows if not browser.table.isRowHidden(r)} == matches
    browser.search.setText("")
    assert len(browser.visible_features()) == session.n_features and browser.visible_features()[0] == last
    qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)  # the painted features' layers are in
    # before any tile is computed nothing is known to be "never active": every row shows
    computed = session.computer.activations.copy()
    session.computer.activations[:] = np.nan
    browser.refresh_now()
    assert len(browser.visible_features()) == session.n_features and "never active" not in browser.summary.text()
    session.computer.activations[:] = computed


@pytest.fixture
def lazy_explorer(make_napari_viewer, qtbot, her2st_model, tmp_path):
    """The section open with the model loaded over an empty store (tiles compute as viewed): (viewer, state)."""
    viewer = make_napari_viewer()
    open_section(viewer, qtbot)
    _, state = load_model(viewer, qtbot, tmp_path / "lazy.zarr", her2st_model / "sae")
    return viewer, state


def test_viewport_inference_computes_what_is_in_view_and_drops_stale_work(lazy_explorer, qtbot, her2st_model):
    viewer, state = lazy_explorer
    session, worker = state.session, state.worker
    assert session.computer.activated().sum() == 0
    state.select([int(np.argmax(TileStore.open(her2st_model / "b4.zarr").activations()[:].max(axis=0)))])
    centre = session.placement.tile_box_world(session.grid_index[[500]])[0]
    box = np.array([[centre[0] - 150, centre[1] - 150], [centre[2] + 150, centre[3] + 150]])
    wanted = tiles_in_view(session.grid_index, session.placement, box, 0.25)
    queued = worker.request_view(box)
    assert set(queued) == set(wanted) and queued[0] == wanted[0]
    qtbot.waitUntil(lambda: worker.pending == 0, timeout=60_000)
    assert set(np.flatnonzero(session.computer.activated())) == set(wanted)
    assert worker.history[0][0] == wanted[0] or wanted[0] in worker.history[0]  # nearest the centre first
    qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)
    state.painter.refresh_now()
    drawn = viewer.layers[HEATMAPS_LAYER_COMPUTING]  # its name says what the grey is while tiles are missing
    assert drawn.name_overlay.visible
    rc, feature = session.grid_index[wanted], state.selected[0]
    firing = session.activations[wanted, feature] > 0
    assert firing.any() and (drawn.data[rc[firing, 0], rc[firing, 1], 3] > 0).all()
    assert (drawn.data[rc[~firing, 0], rc[~firing, 1], 3] == 0).all()  # computed, not firing: transparent
    missing = session.grid_index[np.flatnonzero(~session.computer.activated())[:50]]
    grey = np.round(np.asarray(NOT_COMPUTED_RGBA) * 255)
    assert (drawn.data[missing[:, 0], missing[:, 1]] == grey).all()  # not computed yet: grey
    # a far view queued, then replaced before it could finish: only the batch in flight is done
    far = np.array([[0.0, 0.0], [6000.0, 6000.0]])
    stale = worker.request_view(far)
    fresh = worker.request_view(box + np.array([1500.0, 1500.0]))
    qtbot.waitUntil(lambda: worker.pending == 0, timeout=60_000)
    done = set(np.flatnonzero(session.computer.activated()))
    assert set(fresh) <= done
    assert len(done & (set(stale) - set(fresh))) <= worker.batch_size < len(stale)
    # following the camera: a settled move computes the new view
    worker.follow_view(True)
    camera_of(viewer).center = (0, 5000, 11000)
    camera_of(viewer).zoom = 2.0
    qtbot.waitUntil(lambda: worker.pending == 0 and len(worker.history) > 0, timeout=60_000)
    from napari_pathsae.plugin.viewport_worker import visible_world_box

    in_view = tiles_in_view(session.grid_index, session.placement, visible_world_box(viewer), 0.25)
    qtbot.waitUntil(lambda: session.computer.activated()[in_view].all(), timeout=60_000)
    rc = session.grid_index[in_view]
    qtbot.waitUntil(lambda: (drawn.data[rc[:, 0], rc[:, 1]] != grey).any(axis=1).all(), timeout=10_000)  # painted
    # tiles arriving while the camera moves repaint it less often (each repaint is a frame on top of the pan's)
    painter = state.painter
    painter._timer.stop()
    camera_of(viewer).center = (0, 5200, 11000)
    painter.refresh()
    assert painter._timer.interval() == REFRESH_MOVING_MS
    qtbot.wait(int(MOVING_S * 1000) + 100)
    painter._timer.stop()
    painter.refresh()
    assert painter._timer.interval() == REFRESH_MS
    state.close()


def test_region_export_writes_the_drawn_tiles_and_spots(explorer, qtbot, tmp_path, her2st_model):
    from napari_pathsae.plugin.widgets.region_export import RegionExport

    viewer, state, _, _, _ = explorer
    panel = RegionExport(viewer)
    viewer.window.add_dock_widget(panel)
    layer = panel.add_region_layer()
    top_left, bottom_right = np.array([4000.0, 5000.0]), np.array([7000.0, 8500.0])  # world µm (row, col)
    layer.add_rectangles(np.array([top_left, bottom_right]))
    # the outline is a few screen pixels at the zoom it is drawn at, whatever the world units (it was 20 µm)
    assert layer.edge_width[0] * camera_of(viewer).zoom == pytest.approx(3)
    panel.output.value = tmp_path / "region.csv"
    panel.export_button.clicked()
    qtbot.waitUntil(lambda: "tiles →" in panel.status.value or "error" in panel.status.value, timeout=60_000)
    tiles = pd.read_csv(tmp_path / "region.csv")
    store = TileStore.open(her2st_model / "b4.zarr")
    x0, y0 = top_left[::-1] / MPP + 0.5
    x1, y1 = bottom_right[::-1] / MPP + 0.5
    expected = np.flatnonzero(region_mask(store.tile_centres, bbox=(x0, y0, x1, y1)))
    assert len(expected) > 20 and tiles.tile.tolist() == expected.tolist()
    np.testing.assert_allclose(
        tiles.filter(like="f").filter(regex=r"^f\d+$").to_numpy(), store.activations()[:][expected], rtol=1e-6
    )
    spots = pd.read_csv(tmp_path / "region_spots.csv")
    xy = state.session.sample.adata.obsm["spatial"] + 0.5  # pixel indices → continuous coordinates
    inside = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
    assert sorted(spots.barcode) == sorted(state.session.sample.adata.obs_names[inside]) and "gene_PLANTED1" in spots
    panel.export_button.clicked()  # the same name again: refused, the first file kept
    assert "exists" in panel.status.value and len(pd.read_csv(tmp_path / "region.csv")) == len(expected)
    # to QuPath: the same tiles as detections, the features painted as their measurements, spots beside as CSV
    state.select([3, 11])
    panel.output.value = tmp_path / "qupath.geojson"
    panel.export_button.clicked()
    qtbot.waitUntil(lambda: "qupath.geojson" in panel.status.value or "error" in panel.status.value, timeout=60_000)
    import json

    items = json.loads((tmp_path / "qupath.geojson").read_text())["features"]
    detections = [f for f in items if f["properties"]["objectType"] == "detection"]
    assert [int(f["properties"]["name"].split()[1]) for f in detections] == expected.tolist()
    assert set(detections[0]["properties"]["measurements"]) == {"f3", "f11"}
    assert [f["properties"]["objectType"] for f in items].count("annotation") == 1  # the drawn rectangle
    assert (tmp_path / "qupath_spots.csv").exists() and not (tmp_path / "qupath_spots.geojson").exists()


def test_spots_panel_finds_the_planted_gene_and_colours_spots(explorer, qtbot):
    from napari_pathsae.plugin.widgets.spots_panel import SpotsPanel

    viewer, state, _, spots, _ = explorer
    panel = SpotsPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.correlate()
    qtbot.waitUntil(
        lambda: state.session.correlations is not None and panel.correlate_button.isEnabled(), timeout=60_000
    )
    panel.gene.setText("PLANTED1")
    panel.show_gene("PLANTED1")
    best = float(panel.ranked.item(0, 1).text())
    assert best > 0.6, best
    np.testing.assert_array_equal(
        spots.features["PLANTED1"], state.session.sample.adata[:, "PLANTED1"].X.toarray().ravel()
    )
    click_row(qtbot, panel.ranked, 0)  # the top feature is selected …
    feature = state.selected[0]
    panel.colour_by_feature()  # … and its spot-aggregated activation colours the spots
    column = state.session.feature_name(feature)
    expected = np.nan_to_num(state.session.spot_values(state.session.feature_values(feature)))
    np.testing.assert_allclose(spots.features[column], expected)
    assert spots.face_color.shape == (len(expected), 4)
    assert panel.ranked.item(0, 0).text() == "PLANTED1"  # feature → ranked genes, planted one on top
    panel.predict()  # held-out prediction of the typed gene colours the spots and selects its features
    qtbot.waitUntil(lambda: panel.predict_button.isEnabled() and "held-out r" in panel.status.text(), timeout=60_000)
    r = float(panel.status.text().split("held-out r = ")[1].split()[0])
    measured = state.session.sample.adata[:, "PLANTED1"].X.toarray().ravel()
    predicted = spots.features["predicted PLANTED1"].to_numpy()
    assert r > 0.7 and np.corrcoef(predicted, measured)[0, 1] > 0.5
    assert spots.face_contrast_limits == pytest.approx(tuple(np.percentile(predicted, [2, 98])))  # its own range
    assert np.ptp(spots.face_color[:, :3], axis=0).max() > 0.5  # the colours span the colormap
    assert len(state.selected) == 3 and "(selected)" in panel.status.text()


def test_dashboard_gallery_and_concepts(explorer, qtbot):
    from napari_pathsae.plugin.widgets.concepts_panel import ConceptsPanel
    from napari_pathsae.plugin.widgets.feature_dashboard import GALLERY_TILES, FeatureDashboard

    viewer, state, _, _, _ = explorer
    dashboard = FeatureDashboard(viewer)
    viewer.window.add_dock_widget(dashboard)
    acts = state.session.activations
    feature = int(np.argmax((acts > 0).sum(axis=0)))
    state.select([feature])
    qtbot.waitUntil(lambda: dashboard.gallery.count() == GALLERY_TILES, timeout=30_000)
    shown = [dashboard.gallery.item(i).data(Qt.ItemDataRole.UserRole) for i in range(GALLERY_TILES)]
    assert shown == list(np.argsort(-acts[:, feature], kind="stable")[:GALLERY_TILES])
    dashboard.go_to_tile(shown[0])
    box = state.session.placement.tile_box_world(state.session.grid_index[[shown[0]]])[0]
    np.testing.assert_allclose(camera_of(viewer).center[-2:], [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    concepts = ConceptsPanel(viewer)
    viewer.window.add_dock_widget(concepts)
    concepts.n_concepts.value = 5
    concepts.run_button.clicked()
    qtbot.waitUntil(lambda: concepts.layer is not None, timeout=60_000)
    rc = state.session.grid_index
    assert set(np.unique(concepts.layer.data[rc[:, 0], rc[:, 1]])) == {1, 2, 3, 4, 5}
    assert concepts.legend.rowCount() == 5
    assert sum(int(concepts.legend.item(r, 1).text()) for r in range(5)) == len(rc)
    concepts.gene.value = "PLANTED1"  # the planted gene's importance, as `pathsae concepts --visium` gives it
    concepts.importance_button.clicked()
    qtbot.waitUntil(lambda: "held-out r" in concepts.status.value, timeout=60_000)
    from napari_pathsae.analysis.concept_study import spot_importance

    expected = spot_importance(state.session.store, state.session.sample, concepts.weights, ["PLANTED1"])
    shown = [float(concepts.legend.item(r, 3).text()) for r in range(5)]
    np.testing.assert_allclose(shown, expected["coefficient"], atol=1e-3)
    assert float(concepts.status.value.split("r = ")[1].split(";")[0]) > 0.4


def test_heatmap_writer_and_model_panel_errors(explorer, qtbot, tmp_path):
    from napari_pathsae.plugin.writer import write_activations

    viewer, state, image, _, panel = explorer
    state.select([3])
    state.painter.settle_now()
    heat = viewer.layers["pathsae f3"]
    written = write_activations(str(tmp_path / "all.parquet"), heat.data, {"metadata": heat.metadata})
    table = pd.read_parquet(written[0])
    assert (
        len(table) == state.session.computer.n_tiles and table.f3.tolist() == state.session.activations[:, 3].tolist()
    )
    assert write_activations(str(tmp_path / "x.csv"), image.data, {"metadata": image.metadata}) == []
    # training never overwrites a folder; a cancelled training saves nothing
    (tmp_path / "taken").mkdir()
    panel.train_output.value = tmp_path / "taken"
    panel.train_button.clicked()
    assert panel.status.value.endswith("exists; choose a new folder for the SAE (nothing is overwritten)")
    panel.train_output.value = tmp_path / "new_sae"
    panel.train_button.clicked()
    panel.cancel_training()
    qtbot.waitUntil(lambda: panel.train_button.enabled, timeout=60_000)
    assert panel.status.value == "training cancelled; no SAE was saved" and not (tmp_path / "new_sae").exists()
    viewer.layers.remove(image)
    panel.reset_choices()
    panel.load_button.clicked()
    assert panel.status.value == "open a slide first (Open slide / Visium panel)"


MENU_CLICK = """
import sys, threading
importers = {}  # heavy library -> the thread that imported it
def record(event, args):
    if event == "import" and args[0] in ("torch", "dask.array", "anndata"):
        importers.setdefault(args[0], threading.current_thread().name)
sys.addaudithook(record)
import gc, weakref
import napari, numpy
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=False)
pixels = numpy.zeros((64, 64), numpy.uint8)
slide_pixels = weakref.ref(pixels)
viewer.add_image(pixels, name="slide", metadata={"pathsae": {"kind": "slide"}})  # in memory, before the panel
del pixels
_, shell = viewer.window.add_plugin_dock_widget("napari-pathsae", "Model and inference")
shown_empty = shell.panel is None
loop, poll = QEventLoop(), QTimer()
poll.timeout.connect(lambda: shell.panel is not None and loop.quit())
poll.start(20)
QTimer.singleShot(120_000, loop.quit)
loop.exec()
panel = shell.panel
import json
inside = shell.isAncestorOf(panel.native)
frozen = [gc.get_freeze_count() > 100_000]  # the libraries are out of napari's collections
feature = viewer.add_image(numpy.ones((2, 2)), metadata={"pathsae": {"kind": "heatmap"}})
viewer.layers.remove(feature)  # a layer made after the freeze: removed, it frees nothing frozen
frozen.append(gc.get_freeze_count() > 100_000)
viewer.layers.remove("slide")  # one made before: thawed first, so its pixels are freed
for _ in range(5):  # (napari lets go of a removed layer once its Qt controls are deleted)
    QApplication.processEvents()
gc.collect()
frozen += [gc.get_freeze_count(), slide_pixels() is None]  # (frozen, they would never be)
print(json.dumps([shown_empty, type(panel).__name__, panel.load_button.text, inside, importers, frozen]))
"""


def test_a_panel_picked_in_the_plugins_menu_opens_without_importing_torch_on_the_ui_thread():
    """A fresh napari: the menu click docks a shell at once (the Model panel's module imports torch, 3-4 s that
    used to freeze the window); torch, dask and anndata are imported on another thread; then the panel fills it."""
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-c", MENU_CLICK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    shown_empty, kind, button, inside, importers, frozen = json.loads(out.stdout.strip().splitlines()[-1])
    assert (shown_empty, kind, button, inside) == (True, "ModelPanel", "Load model", True), out.stdout
    assert set(importers) == {"torch", "dask.array", "anndata"}
    assert "MainThread" not in importers.values(), importers
    # gc_freeze.py: frozen as the Model panel is built; removing a feature's layer keeps it; removing the
    # slide made before thaws it, and the slide's pixels are collected (nothing frozen is lost)
    assert frozen == [True, True, 0, True], frozen


def test_a_panel_whose_module_fails_to_import_says_so_in_one_line(make_napari_viewer, qtbot):
    from napari_pathsae.plugin.widgets.docks import shell_for

    viewer = make_napari_viewer(show=True)
    shell = shell_for("napari_pathsae.no_such_panel:Nothing", "the test panel")(viewer)
    dock = viewer.window.add_dock_widget(shell, name="Model and inference (napari-pathsae)")
    qtbot.waitUntil(lambda: "could not open" in shell._waiting.text(), timeout=30_000)
    assert shell._waiting.text() == "the test panel could not open: No module named 'napari_pathsae.no_such_panel'"
    assert shell.panel is None
    title = dock.titleBarWidget().title  # the dock is wide enough for its whole title (napari does not elide it)
    assert title.width() >= title.sizeHint().width(), (title.width(), title.sizeHint().width())


def test_every_panel_is_reachable_from_the_plugins_menu_and_shares_one_state(make_napari_viewer):
    viewer = make_napari_viewer()
    names = [
        "Model and inference",
        "Feature browser",
        "Feature dashboard",
        "Spots and genes",
        "Concepts",
        "Region export",
    ]
    widgets = [viewer.window.add_plugin_dock_widget("napari-pathsae", name)[1].panel_now() for name in names]
    states = {id(w.state) for w in widgets}
    assert len(states) == 1 and state_for(viewer) is widgets[0].state


def live_rss() -> int:
    """Resident memory once Qt's deferred deletions ran, garbage is collected and freed heap pages go back to
    the OS: glibc keeps freed arenas resident, so plain RSS in a long test process grows with the suite."""
    import contextlib
    import ctypes
    import gc

    import psutil
    from qtpy.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # removed layers' widgets and visuals
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def test_hundreds_of_view_changes_removed_layers_and_closing_mid_inference(lazy_explorer, qtbot, tmp_path):

    viewer, state = lazy_explorer
    session, worker = state.session, state.worker
    state.select([0, 1])
    worker.follow_view(True)
    camera = camera_of(viewer)
    rng = np.random.default_rng(0)
    most_pending, rss = 0, None
    for move in range(400):  # a user dragging and scrolling wildly
        if move == 100:  # after a warm-up: every pyramid level's textures and the workers' buffers exist once
            rss = live_rss()
        camera.center = (0, *rng.uniform(0, 9000, 2))
        camera.zoom = float(rng.uniform(0.05, 3.0))
        worker.request_view()  # as if each move had settled: the queue is replaced, never appended
        qtbot.wait(1)
        most_pending = max(most_pending, worker.pending)
    assert [t.name for t in threading.enumerate()].count("pathsae-viewport") == 1  # no pile-up of workers
    one_view = len(tiles_in_view(session.grid_index, session.placement, np.array([[0, 0], [9000, 9000]]), 0.25))
    assert most_pending <= one_view + 1
    # the layers the plugin paints are removed by the user while tiles compute: repainted, no error
    for layer in [layer for layer in viewer.layers if layer.name.startswith("pathsae f")]:
        viewer.layers.remove(layer)
    state.select([2])
    qtbot.waitUntil(lambda: state.painter.settled, timeout=10_000)
    state.painter.refresh_now()
    assert "pathsae f2" in viewer.layers and state.painter.composite() is not None
    # a pile-up would hold a batch of input tiles per view (32 x 224² RGB float: 19 MB), 300 views ~5.7 GB;
    # in the suite's 7.5 GB process 510-630 MB of allocator and texture churn was seen without one
    assert live_rss() - rss < 2**30
    assert worker.compute_whole_slide() > 0 and worker.pending > 0  # still computing when the window closes
    viewer.close()
    qtbot.waitUntil(lambda: "pathsae-viewport" not in [t.name for t in threading.enumerate()], timeout=60_000)
    assert TileStore.open(tmp_path / "lazy.zarr").n_tiles == session.computer.n_tiles  # the store stays readable


def test_first_clicks_work_is_done_off_the_ui_thread_as_the_plugin_opens(make_napari_viewer, qtbot, monkeypatch):
    """On a fresh install napari's first Shapes layer compiles numba code (4.7 s of a frozen window, measured)
    and the Model panel imports torch (2-4 s): the plugin's first panel starts both on a thread."""
    from napari.layers.shapes import _accelerated_triangulate_dispatch as shapes_numba

    from napari_pathsae.plugin import warm_up

    threads = []
    monkeypatch.setattr(warm_up, "_started", False)
    monkeypatch.setattr(warm_up, "warm_up", lambda: threads.append(threading.current_thread()))
    state_for(make_napari_viewer())
    state_for(make_napari_viewer())  # once per process
    qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    warm_up.compile_region_drawing()  # what it runs warms napari's own cache
    assert shapes_numba.UNIVERSAL_CACHE_WARMUP
    warm_up.import_engine()
    assert set(warm_up.ENGINE_MODULES) <= set(sys.modules) and "torch" in sys.modules


def test_the_main_path_panels_docked_together_fit_a_full_hd_screen(make_napari_viewer, qtbot):
    """Open, Model, Feature browser and Region export stacked on the right, as the Plugins menu docks them:
    the window stays 1080 px high (panels scroll) and no field of the Model panel is cut off; then every panel
    docked: still 1080 px."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1920, 1080)
    names = ("Open slide / Visium", "Model and inference", "Feature browser", "Region export")
    docks = {name: viewer.window.add_plugin_dock_widget("napari-pathsae", name)[1] for name in names}
    for dock in docks.values():
        dock.panel_now()
    qtbot.wait(300)
    assert viewer.window._qt_window.height() <= 1080  # was 1588: the Model panel alone needs 629 px
    scroll = docks["Model and inference"].scroll
    assert scroll.widget().width() <= scroll.viewport().width()  # it scrolls up and down, never cuts a field
    for name in ("Feature dashboard", "Spots and genes", "Concepts", "Cohort"):  # every panel: each one scrolls
        viewer.window.add_plugin_dock_widget("napari-pathsae", name)[1].panel_now()
    qtbot.wait(300)
    assert viewer.window._qt_window.height() <= 1080  # was 2106


def test_panels_picked_one_by_one_each_show_their_fields(make_napari_viewer, qtbot):
    """Model, Open, then the feature browser, each picked in the Plugins menu and built as its import ends:
    the Open panel shows every field, the browser its buttons, and the Model panel (docked first) through its
    Load button. Qt's own sharing had left the Model panel two fields high (67 px) with blank under Open."""
    from qtpy.QtCore import QPoint

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    names = ("Model and inference", "Open slide / Visium", "Feature browser")
    shells = {name: viewer.window.add_plugin_dock_widget("napari-pathsae", name)[1] for name in names}
    qtbot.waitUntil(lambda: all(shell.panel is not None for shell in shells.values()), timeout=120_000)
    qtbot.wait(300)  # each shell shares the column on the turn after its panel lands

    def hidden_below(name: str) -> int:
        return shells[name].scroll.verticalScrollBar().maximum()

    assert hidden_below("Open slide / Visium") == 0 and hidden_below("Feature browser") == 0
    scroll = shells["Model and inference"].scroll
    button = shells["Model and inference"].panel.load_button.native
    bottom = button.mapTo(scroll.viewport(), QPoint(0, button.height())).y()
    assert 0 < bottom <= scroll.viewport().height(), (bottom, scroll.viewport().height())
    opener = shells["Open slide / Visium"].panel  # its status line grows the form: the column is shared again
    opener.slide.value = SVS
    qtbot.mouseClick(opener.open_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(viewer.layers) == 1 and opener.open_button.enabled, timeout=60_000)
    qtbot.wait(300)
    assert "opened 1 layer" in opener.status.value
    assert hidden_below("Open slide / Visium") == 0 and hidden_below("Feature browser") == 0

    def shown_whole(label) -> bool:  # every pixel of the line on screen (not cut by the dock's edge)
        return label.isVisible() and label.visibleRegion().boundingRect().size() == label.size()

    assert shown_whole(opener.status.native)
    # the Model panel scrolls (its fields are longer than its share), yet what a click did is in view: a
    # journey found its "trained …" line cut in half by the dock's edge, and the region export's out of sight
    model = shells["Model and inference"].panel
    model.status.value = "trained an SAE of 53 features on 94 tiles, 3% never active, FVU 0.005, saved in " + "x" * 80
    qtbot.wait(300)
    assert hidden_below("Model and inference") > 0 and shown_whole(model.status.native)


def test_a_slide_opened_again_with_its_resolution_replaces_the_unscaled_one(make_napari_viewer, qtbot, tmp_path):
    """The Model panel refuses a slide of unknown µm/px and says to open it again with one: doing so leaves one
    layer, the one the Model panel then uses (not two, with napari warning of inconsistent units)."""
    from napari_pathsae.plugin.widgets.model_panel import ModelPanel
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    viewer = make_napari_viewer()
    opener, model = OpenSampleWidget(viewer), ModelPanel(viewer)
    opener.slide.value = DATA / "tiatoolbox_colon_nuclei.png"  # a PNG: no µm/px in it
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and len(viewer.layers) == 1, timeout=30_000)
    model.encoder.value, model.store.value = TINY_ENCODER, tmp_path / "s.zarr"
    model.load_button.clicked()
    assert "µm/px is unknown" in model.status.value and "open it again" in model.status.value
    opener.mpp.value = 0.5
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and bool(viewer.layers[0].metadata["pathsae"]["world_mpp"]),
                    timeout=30_000)  # fmt: skip
    assert len(viewer.layers) == 1 and viewer.layers[0].metadata["pathsae"]["world_mpp"] == 0.5
    model.reset_choices()
    assert model.slide_layer.value == viewer.layers[0].name


def test_removing_the_slide_layer_unloads_its_model_and_its_exploration_comes_back(
    make_napari_viewer, qtbot, her2st_model, tmp_path
):
    """Seen in a journey: the slide layer deleted, its model went on computing a slide no longer shown (the
    Model panel's Slide box said "(none)"). Now the model is unloaded at once, saying so, the spots stay,
    and what was on screen is saved: Load on the reopened slide brings the features back."""
    from napari_pathsae.plugin.widgets.concepts_panel import ConceptsPanel
    from napari_pathsae.plugin.widgets.model_panel import NO_MODEL, UNLOADED

    viewer = make_napari_viewer()
    image, spots = open_section(viewer, qtbot)
    panel, state = load_model(viewer, qtbot, tmp_path / "lazy.zarr", her2st_model / "sae")
    session = state.session
    concepts = ConceptsPanel(viewer)
    session.compute(np.arange(64))  # concepts over the tiles computed so far
    concepts.run()
    qtbot.waitUntil(lambda: concepts.status.value.endswith("computed tiles"), timeout=60_000)
    state.select([3, 5])
    state.painter.settle_now()
    assert state.painter.composite() is not None
    another = {"pathsae": {"kind": LayerKind.SLIDE, "path": str(DATA / "other.png")}}
    other = viewer.add_image(np.zeros((8, 8)), name="another slide", metadata=another)
    viewer.layers.remove(other)  # another file's slide: the model stays
    assert state.session is session
    assert panel.compute_whole_slide() > 0 and state.worker.pending > 0  # computing as the slide goes
    viewer.layers.remove(image)
    assert state.session is None and state.worker is None
    assert panel.status.value == UNLOADED and panel.model_info.value == NO_MODEL
    # heatmaps and concepts go one per event-loop turn (each a napari layer removal), the spots stay
    qtbot.waitUntil(lambda: [layer.name for layer in viewer.layers] == [spots.name], timeout=10_000)
    qtbot.waitUntil(lambda: "pathsae-viewport" not in [t.name for t in threading.enumerate()], timeout=60_000)
    assert concepts.status.value == "" and concepts.legend.rowCount() == 0  # not "8 concepts …" of a gone model
    concepts.run()
    assert panel.compute_whole_slide() == 0 and panel.status.value == "load a model first"  # said where clicked
    assert concepts.status.value == "load a model with an SAE first (Model panel)"
    assert TileStore.open(tmp_path / "lazy.zarr").embedded_tiles().sum() > 0  # what was computed is kept

    open_section(viewer, qtbot)
    panel.reset_choices()
    panel.slide_layer.value = next(layer.name for layer in viewer.layers if layer_kind(layer) == LayerKind.SLIDE)
    panel.load_button.clicked()
    qtbot.waitUntil(lambda: state.session is not None and state.selected == [3, 5], timeout=60_000)
    assert "exploration restored" in panel.status.value
    state.close()


def test_a_sample_with_only_its_preview_says_features_need_the_full_resolution_slide(make_napari_viewer, qtbot):
    """The CytAssist folder holds its lowres PNG only: it opens (spots on the preview), and Load says in one line
    why nothing can be computed on it, not "open the sample with its full-resolution slide" alone."""
    from napari_pathsae.plugin.widgets.model_panel import ModelPanel
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    viewer = make_napari_viewer()
    opener, model = OpenSampleWidget(viewer), ModelPanel(viewer)
    opener.visium.value = CYTASSIST
    opener.open()
    qtbot.waitUntil(lambda: opener.open_button.enabled and len(viewer.layers) == 2, timeout=60_000)
    model.encoder.value = TINY_ENCODER
    model.load_button.clicked()
    assert model.status.value.startswith("tissue_lowres_image.png is the sample's lowres preview, too coarse to tile")
    assert state_for(viewer).session is None and model.load_button.enabled
