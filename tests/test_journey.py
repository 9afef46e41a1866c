"""A first-time user's whole journey through the viewer, in a real window (Xvfb, OpenGL), on her2st B4.

Read this first. It clicks what a user clicks, in the order they click it, through napari's event
loop: open the section with its full-resolution slide, load an encoder, compute the slide, train an
SAE from the panel, pick features, open the dashboard and jump to a top tile, colour the spots by a
gene, rank features for it, predict it held-out, find concepts, draw a region, export it, close,
reopen and find the exploration as it was left. It fails on a crash, on any traceback, Qt warning or
napari warning, and on every status line that contradicts what is on screen.

Set PATHSAE_JOURNEY_SHOTS=folder to keep a screenshot of each step (docs/images come from it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractButton, QApplication, QCheckBox, QComboBox, QLineEdit, QTableView

from conftest import HER2ST_HE, TINY_ENCODER
from napari_pathsae.data.store import TileStore
from napari_pathsae.plugin.heatmap_layers import HEATMAPS_LAYER, MAX_ALPHA, composite_rgba, feature_rgba
from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.viewport_worker import camera_of

pytestmark = pytest.mark.qt_log_level_fail("WARNING")  # a Qt warning in the log fails the journey

PLUGIN = "napari-pathsae"
MPP = 0.69
GENE = "PLANTED1"  # colour saturation under each spot (tests/planting.py): a gene the tissue shows
#: A third of a 1920 px window: no dock may be wider.
MAX_DOCK_PX = 640


# --- what the user sees --------------------------------------------------------------------------
@pytest.fixture
def notifications():
    """Every napari notification shown during the test; the journey allows no warning or error it did not ask for."""
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def complaints(seen, since: int = 0) -> list[str]:
    return [n.message for n in seen[since:] if str(n.severity) in ("warning", "error")]


def shot(viewer, name: str) -> None:
    folder = os.environ.get("PATHSAE_JOURNEY_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(Path(folder) / f"{name}.png"), canvas_only=False, flash=False)


def click(qtbot, widget) -> None:
    """A real mouse click on a magicgui or Qt button."""
    qtbot.mouseClick(getattr(widget, "native", widget), Qt.MouseButton.LeftButton)


def click_row(qtbot, table: QTableView, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    table.scrollTo(table.model().index(row, 0))
    rect = table.visualRect(table.model().index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def dock(viewer, name: str):
    """Plugins → napari-pathsae → ``name``, as the menu does it; returns the panel once its dock has built it."""
    shell = viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]
    deadline = time.monotonic() + 120
    while shell.panel is None:
        assert time.monotonic() < deadline, f"{name} did not open"
        QApplication.processEvents()
        time.sleep(0.01)
    return shell.panel


def without_tooltip(panel) -> list[str]:
    """Fields, buttons and column headers of a panel that explain nothing when hovered."""
    native = getattr(panel, "native", panel)
    kinds = (QAbstractButton, QCheckBox, QComboBox, QLineEdit)
    bare = [
        f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
        for kind in kinds
        for w in native.findChildren(kind)
        if not w.toolTip() and w.isVisibleTo(native) and not _inside_a_tooltipped_field(w, native)
    ]
    for table in native.findChildren(QTableView):  # QTableWidget too: its items answer through its model
        model = table.model()
        for column in range(model.columnCount()):
            tip = model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
            if not tip:
                bare.append(f"column {model.headerData(column, Qt.Orientation.Horizontal)!r}")
    return bare


def _inside_a_tooltipped_field(widget, top) -> bool:
    """magicgui's FileEdit/SpinBox are made of inner Qt widgets; the field's own tooltip covers them."""
    parent = widget.parentWidget()
    while parent is not None and parent is not top:
        if parent.toolTip():
            return True
        parent = parent.parentWidget()
    return False


# --- the journey -----------------------------------------------------------------------------------
def test_first_time_user_journey(make_napari_viewer, qtbot, tmp_path, planted_outs, notifications):
    viewer = make_napari_viewer(show=True)  # a real window with an OpenGL context
    state = state_for(viewer)
    wait = qtbot.waitUntil

    # 1. Open the Visium section with its full-resolution slide, from the panel.
    opener = dock(viewer, "Open slide / Visium")
    opener.slide.value, opener.visium.value, opener.mpp.value = HER2ST_HE, planted_outs, MPP
    click(qtbot, opener.open_button)
    wait(lambda: len(viewer.layers) == 2, timeout=60_000)  # read on a worker thread: the click returns at once
    assert [layer.metadata["pathsae"]["kind"] for layer in viewer.layers] == ["slide", "spots"]
    assert viewer.scale_bar.visible
    spots = viewer.layers[1]

    # 2. The Model panel: the only spots layer is picked; load the encoder onto a new store.
    model = dock(viewer, "Model and inference")
    browser = dock(viewer, "Feature browser")
    assert browser.summary.text() == "load a model in the Model panel"
    assert model.spots_layer.value == spots.name
    model.encoder.value, model.store.value = TINY_ENCODER, tmp_path / "b4.zarr"
    click(qtbot, model.load_button)
    wait(lambda: state.session is not None, timeout=120_000)
    assert "RANDOM weights" in model.model_info.value and "0/1038 tiles computed" in model.model_info.value
    assert browser.summary.text().startswith("encoder loaded, no SAE yet")  # not "load a model"
    assert model.train_button.text == "Compute 1038 missing tiles, then train"
    shot(viewer, "01_loaded")

    # 3. Compute the whole slide: the count moves by itself; the store becomes complete without an SAE.
    seen_counts = set()
    state.tiles_computed.connect(lambda _: seen_counts.add(model.model_info.value))
    click(qtbot, model.whole_slide_button)
    wait(lambda: "whole slide done: 1038 tiles computed" in model.status.value, timeout=300_000)
    assert len(seen_counts) > 2, "the computed count did not move while tiles arrived"
    assert "1038/1038 tiles computed" in model.model_info.value
    assert TileStore.open(tmp_path / "b4.zarr").complete
    assert model.train_button.text == "Train SAE on this slide"
    click(qtbot, model.whole_slide_button)  # a second run: nothing to do, nothing left spinning
    assert model.status.value == "every tile is computed" and model._slide_progress is None

    # 4. Train an SAE from the panel at its defaults, cancel once, then let it finish.
    click(qtbot, model.train_button)
    wait(lambda: model.train_progress.value > 0 or not model.train_button.enabled, timeout=30_000)
    click(qtbot, model.cancel_train_button)
    wait(lambda: model.train_button.enabled, timeout=120_000)
    assert model.status.value == "training cancelled; no SAE was saved"
    assert not list(tmp_path.glob("b4.topk-*")) + list(tmp_path.glob(".b4.topk-*"))  # nothing half-written
    click(qtbot, model.train_button)
    wait(lambda: model.status.value.startswith("trained"), timeout=300_000)
    sae = tmp_path / "b4.topk-x4-k16"
    assert sae.is_dir() and model.status.value.startswith(f"trained {sae.name} beside the store")
    assert model.status.tooltip == f"the SAE is saved in {sae}"
    session = state.session
    kept = session.n_features  # of 768 trained, those that fire on the section (the rest are removed)
    assert 50 < kept <= 768 and f"{kept} features" in model.model_info.value and model.train_progress.value == 1000
    wait(lambda: browser.model.rowCount() == kept, timeout=30_000)
    dead = int((np.nan_to_num(session.activations) <= 0).all(axis=0).sum())
    assert dead == 0 and len(browser.visible_features()) == kept  # every tile computed: no feature is dead
    assert not browser.stable_only.isEnabled()  # no second seed reported yet
    shot(viewer, "02_trained")

    # 5. Pick three features (the strongest): each painted in its hue, with its legend, tissue visible.
    browser.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # by max activation
    first, second, third = (browser.feature_at(r) for r in range(3))
    click_row(qtbot, browser.table, 0)
    click_row(qtbot, browser.table, 1, Qt.KeyboardModifier.ControlModifier)
    click_row(qtbot, browser.table, 2, Qt.KeyboardModifier.ControlModifier)
    assert state.selected == [first, second, third] and state.current == third
    wait(lambda: state.painter.settled, timeout=10_000)  # their layers and legends come one per event-loop turn
    heat = {f: viewer.layers[f"pathsae f{f}"] for f in (first, second, third)}
    grid = session.grid_index
    for f, layer in heat.items():  # each named in its hue; one colorbar: the current feature's
        assert layer.visible and layer.name_overlay.visible and layer.colorbar.visible == (f == third)
        assert layer.contrast_limits[1] == pytest.approx(float(np.nanmax(session.activations[:, f])))
        assert layer.colormap.colors[:, 3].max() <= MAX_ALPHA and layer.opacity == 1.0  # never hides the H&E
    assert len({layer.colormap.name for layer in heat.values()}) == 3
    # one layer draws all three, each feature's hue over the previous ones, from the activations of its tiles
    drawn = viewer.layers[HEATMAPS_LAYER]
    expected = composite_rgba([feature_rgba(session.activations[:, f][None], layer.colormap, layer.contrast_limits)
                               for f, layer in heat.items()])[0]  # fmt: skip
    np.testing.assert_array_equal(drawn.data[grid[:, 0], grid[:, 1]], expected)
    assert drawn.data[..., 3].max() <= round(255 * (1 - (1 - MAX_ALPHA) ** 3))
    # the H&E still shows under the strongest tile of the top heatmap (its texture survives the overlay)
    canvas = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    assert canvas.std() > 20

    # 6. The dashboard follows the current feature; a top tile is outlined when the gallery jumps to it.
    dashboard = dock(viewer, "Feature dashboard")
    assert dashboard.feature == third
    click_row(qtbot, browser.table, 0)  # a plain click: only the first, which becomes current
    assert state.selected == [first] and dashboard.feature == first
    wait(lambda: dashboard.gallery.count() == 12, timeout=30_000)
    assert "press 'Correlate features with genes'" in dashboard.figure.axes[1].texts[0].get_text()  # spots are on
    item = dashboard.gallery.item(0)
    rect = dashboard.gallery.visualItemRect(item)
    qtbot.mouseClick(dashboard.gallery.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    top_tile = int(item.data(Qt.ItemDataRole.UserRole))
    box = session.placement.tile_box_world(grid[[top_tile]])[0]
    np.testing.assert_allclose(camera_of(viewer).center[-2:], [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    outline = viewer.layers["pathsae target tile"]
    np.testing.assert_allclose(outline.data[0].min(axis=0), box[:2])
    assert outline.visible
    # next / previous feature from the keyboard (PageDown / PageUp on the canvas)
    canvas_widget = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas_widget, Qt.Key.Key_PageDown)
    assert state.selected == [browser.visible_features()[1]] and dashboard.feature == state.current
    qtbot.keyClick(canvas_widget, Qt.Key.Key_PageUp)
    assert state.selected == [first]
    shot(viewer, "03_dashboard")

    # 7. Spots: colour by the gene (legend says what), rank features for it, predict it held out.
    panel = dock(viewer, "Spots and genes")
    panel.gene.setText(GENE)
    click(qtbot, panel.colour_gene_button)
    assert spots.name.endswith(f"spots: {GENE} (counts per spot)") and spots.face_colorbar.visible
    click(qtbot, panel.correlate_button)
    wait(lambda: session.correlations is not None and panel.correlate_button.isEnabled(), timeout=120_000)
    assert "genes: press" not in " ".join(t.get_text() for ax in dashboard.figure.axes for t in ax.texts)
    qtbot.keyClick(panel.gene, Qt.Key.Key_Return)  # Enter: colour by it and rank the features
    best_feature = panel.ranked.item(0, 0).data(Qt.ItemDataRole.UserRole)
    assert float(panel.ranked.item(0, 1).text()) > 0.5  # the planted gene has a feature that carries it
    wait(lambda: state.painter.settled, timeout=10_000)
    viewer.layers[f"pathsae f{first}"].visible = False  # the user hides the painted layer …
    click_row(qtbot, panel.ranked, 0)  # … then picks the ranked feature: it reuses that layer, shown
    chosen = int(best_feature.removeprefix("f"))
    assert state.selected == [chosen] and viewer.layers[f"pathsae f{chosen}"].visible
    assert f"f{chosen}" in panel.figure.axes[0].get_xlabel()  # the scatter follows the new feature
    click(qtbot, panel.predict_button)
    wait(lambda: "held-out r" in panel.status.text(), timeout=120_000)
    r = float(panel.status.text().split("held-out r = ")[1].split()[0])
    assert r > 0.6 and len(state.selected) == 3
    assert spots.name.endswith(f"spots: {GENE} predicted, held out (log1p CP10k)")
    wait(lambda: state.painter.settled, timeout=10_000)
    assert all(viewer.layers[f"pathsae f{f}"].visible for f in state.selected)
    shot(viewer, "04_spots")

    # 8. Concepts: a legend row per concept, and hovering a tile names its concept, not a number.
    concepts = dock(viewer, "Concepts")
    concepts.n_concepts.value = 5
    click(qtbot, concepts.run_button)
    wait(lambda: concepts.layer is not None and concepts.legend.rowCount() == 5, timeout=120_000)
    tile = grid[100]
    world = session.placement.tile_box_world(grid[[100]])[0]
    status = concepts.layer.get_status(((world[0] + world[2]) / 2, (world[1] + world[3]) / 2), world=True)
    label = int(concepts.layer.data[tile[0], tile[1]])
    assert f"concept: concept {label}:" in str(status)
    # the argmax map: its legend names features, and so does hovering (never feature + 1)
    click(qtbot, browser.argmax_button)
    wait(lambda: "pathsae argmax feature" in viewer.layers, timeout=60_000)  # computed off the UI thread
    argmax = viewer.layers["pathsae argmax feature"]
    winner = int(np.nanargmax(session.activations[100]))
    status = argmax.get_status(((world[0] + world[2]) / 2, (world[1] + world[3]) / 2), world=True)
    assert f"feature: {session.feature_name(winner)}" in str(status)
    assert browser.argmax_legend.isVisible() and browser.argmax_legend.rowCount() > 0
    shot(viewer, "05_concepts")

    # 9. Draw a region and export it; the format follows the suffix, a mismatch is refused.
    export = dock(viewer, "Region export")
    region = export.add_region_layer()
    region.add_rectangles(np.array([[4000.0, 5000.0], [6000.0, 7500.0]]))
    export.output.value = tmp_path / "region.parquet"
    assert export.format.value == ".parquet"
    export.format.value = ".csv"
    click(qtbot, export.export_button)
    assert "says .parquet but Format says .csv" in export.status.value
    asked_for = [export.status.value]  # the one error this journey provokes
    export.format.value = ".parquet"
    click(qtbot, export.export_button)
    wait(lambda: "tiles →" in export.status.value, timeout=120_000)
    table = pd.read_parquet(tmp_path / "region.parquet")
    assert len(table) > 20 and (tmp_path / "region_spots.parquet").is_file()

    # 10. The layout: no dock wider than a third of a 1920 px window, every field and column explained.
    viewer.window.resize(1920, 1080)
    qtbot.wait(200)
    for name in ("Open slide / Visium", "Model and inference", "Feature browser", "Feature dashboard",
                 "Spots and genes", "Concepts", "Region export"):  # fmt: skip
        dock_widget = viewer.window._wrapped_dock_widgets[f"{name} ({PLUGIN})"]
        assert dock_widget.width() <= MAX_DOCK_PX, (name, dock_widget.width())
    for panel_widget in (opener, model, browser, dashboard, panel, concepts, export):
        assert without_tooltip(panel_widget) == [], type(panel_widget).__name__
    shot(viewer, "06_region")
    assert complaints(notifications) == asked_for

    # 11. Close the window; reopen the section and the same store and SAE: the exploration is back.
    saved = {
        "selected": list(state.selected),
        "current": state.current,
        "center": camera_of(viewer).center[-2:],
        "correlations": session.correlations.copy(),
        "concepts": concepts.layer.data.copy(),
        "region": region.data[0].copy(),
        "spots": spots.name,
    }
    viewer.window.close()  # the window closes with its layers in place, as when the user closes it
    qtbot.waitUntil(lambda: state._closed, timeout=60_000)
    folder = tmp_path / "b4.zarr.exploration" / sae.name
    assert json.loads((folder / "exploration.json").read_text())["view"]["selected"] == saved["selected"]

    viewer = make_napari_viewer(show=True)
    state = state_for(viewer)
    opener = dock(viewer, "Open slide / Visium")
    opener.slide.value, opener.visium.value, opener.mpp.value = HER2ST_HE, planted_outs, MPP
    click(qtbot, opener.open_button)
    wait(lambda: len(viewer.layers) == 2, timeout=60_000)
    model = dock(viewer, "Model and inference")
    browser = dock(viewer, "Feature browser")
    concepts = dock(viewer, "Concepts")
    model.encoder.value, model.store.value, model.sae_dir.value = TINY_ENCODER, tmp_path / "b4.zarr", sae
    click(qtbot, model.load_button)
    wait(lambda: "exploration restored" in model.status.value, timeout=120_000)
    assert state.selected == saved["selected"] and state.current == saved["current"]
    wait(lambda: sorted(browser._selected_rows_features()) == sorted(saved["selected"]), timeout=30_000)
    pd.testing.assert_frame_equal(state.session.correlations, saved["correlations"])
    np.testing.assert_array_equal(concepts.layer.data, saved["concepts"])
    assert concepts.legend.rowCount() == 5
    np.testing.assert_allclose(viewer.layers["pathsae region"].data[0], saved["region"])
    np.testing.assert_allclose(camera_of(viewer).center[-2:], saved["center"])
    assert any(layer.name == saved["spots"] for layer in viewer.layers)
    shot(viewer, "07_restored")

    # 12. An exploration saved with other SAE weights is refused with one line, and nothing changes.
    record = json.loads((folder / "exploration.json").read_text())
    record["owner"]["sae_sha256"] = "0" * 64
    (folder / "exploration.json").write_text(json.dumps(record))
    before = len(notifications)
    click(qtbot, model.load_button)
    wait(lambda: "other weights); not restored" in model.status.value, timeout=120_000)
    assert "\n" not in model.status.value and complaints(notifications, before) == [model.status.value]
