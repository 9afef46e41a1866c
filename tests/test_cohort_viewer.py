"""The cohort's feature pages in napari (a real Xvfb window), as a user meets them: the cohort loaded, the
page of the feature carrying the planted slide-level target shown first, a top tile of another slide clicked
(that slide opens at that tile, the selection kept), a typo in the feature box answered in one line."""

from __future__ import annotations

import numpy as np

from napari_pathsae.data.feature_index import load_index
from napari_pathsae.names import LayerKind, layer_kind
from napari_pathsae.plugin.heatmap_layers import HEATMAPS_LAYER
from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.tile_focus import TARGET_LAYER
from napari_pathsae.plugin.viewport_worker import camera_of


def test_feature_pages_open_other_slides_at_their_tiles(make_napari_viewer, qtbot, encoded_cohort, tmp_path):
    from napari_pathsae.plugin.widgets.cohort_panel import CohortPanel
    from napari_pathsae.plugin.widgets.model_panel import ModelPanel

    work = encoded_cohort[0]
    viewer = make_napari_viewer(show=True)
    panel, model = CohortPanel(viewer), ModelPanel(viewer)
    viewer.window.add_dock_widget(panel)
    viewer.window.add_dock_widget(model, area="left")
    state = state_for(viewer)
    panel.load(work / "C", work / "sae")
    qtbot.waitUntil(lambda: panel.index is not None, timeout=60_000)
    index = load_index(work / "C" / "index" / "sae.npz")
    planted = index.strongest("batch_share")[0]
    assert panel.feature == planted and f"f{planted}" in panel.status.text() and "batch_share" in panel.status.text()
    assert panel.slides.count() == 7 and "batch_share" in panel.slides.item(0).text()
    assert panel.top.count() == min(12, (index.top_slide[planted] >= 0).sum())
    assert panel.associations.rowCount() == 2 and panel.associations.item(0, 0).text() == "batch_share"
    assert panel.page_seconds < 1.0  # recorded; the benchmark measures it on 1M tiles
    qtbot.waitUntil(lambda: not panel.top.item(0).icon().isNull(), timeout=30_000)  # real tiles arrive
    panel.setFixedWidth(360)  # a narrow dock: the page wraps to it, nothing is cut off at the right
    qtbot.waitUntil(lambda: panel.page_scroll.viewport().width() < 360, timeout=5_000)
    assert panel.page_scroll.widget().width() <= panel.page_scroll.viewport().width()
    panel.setMinimumWidth(0), panel.setMaximumWidth(16_777_215)

    first_slide = index.top(planted)[0][0]
    panel.open_slide(first_slide)  # a double-click in the slide list
    qtbot.waitUntil(lambda: panel.current_slide() == first_slide, timeout=60_000)
    state.select([planted, 0], planted)
    qtbot.waitUntil(lambda: HEATMAPS_LAYER in viewer.layers, timeout=30_000)

    others = [(i, s, t) for i, (s, t, _, _) in enumerate(index.top(planted)[:12]) if s != first_slide]
    assert others, "the planted feature's top tiles come from one slide only"
    i, slide, tile = others[0]
    panel._tile_clicked(panel.top.item(i))  # what a click on the gallery does
    qtbot.waitUntil(lambda: panel.current_slide() == slide and TARGET_LAYER in viewer.layers, timeout=60_000)
    session = state.session
    slides = [layer for layer in viewer.layers if layer_kind(layer) == LayerKind.SLIDE]
    assert len(slides) == 1 and slides[0].metadata["pathsae"]["path"].endswith(f"{slide}.png")  # layers swapped
    assert state.selected == [planted, 0] and state.current == planted  # selection kept
    assert model.store.value == session.store.path and model.sae_dir.value == work / "sae"  # Model panel follows
    assert model.slide_layer.value == slides[0].name and f"store: {session.store.path}" == model.status.value
    box = session.placement.tile_box_world(session.grid_index[[tile]])[0]
    centre = np.asarray(camera_of(viewer).center)[-2:]
    np.testing.assert_allclose(centre, [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], rtol=1e-6)
    qtbot.waitUntil(lambda: HEATMAPS_LAYER in viewer.layers, timeout=30_000)
    viewer.layers[HEATMAPS_LAYER].refresh()

    same = [(j, t) for j, (s, t, _, _) in enumerate(index.top(planted)[:12]) if s == slide and t != tile]
    if same:  # another tile of the open slide: the camera moves, the session stays
        panel._tile_clicked(panel.top.item(same[0][0]))
        assert state.session is session

    panel.feature_box.setText("f99999")
    panel.show_typed()
    assert "no feature f99999" in panel.status.text() and panel.feature == planted
    panel.feature_box.setText("3")
    panel.show_typed()
    assert panel.feature == 3 and panel.status.text() == "page of f3"  # the error line is gone
    panel.paint_here()
    assert 3 in state.selected and state.current == 3
    qtbot.waitUntil(lambda: state.painter.settled, timeout=30_000)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    from PIL import Image

    Image.fromarray(shot).save(tmp_path / "cohort_window.png")
    assert shot.std() > 10
