"""Screenshots of the exploration panels on the her2st B4 section, for docs/images (run under Xvfb).

usage: python scripts/screenshots.py WORK_DIR   (WORK_DIR holds b4.zarr, sae/ and planted/ as the
tests' her2st_model fixture makes them)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_B4"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait(condition, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        QApplication.processEvents()
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError


def settle(seconds: float = 1.0) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer, name: str) -> None:
    settle()
    viewer.window._qt_window.grab().save(str(OUT / name))
    print("wrote", OUT / name)


def main(work: Path) -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1700, 1000)
    opener = OpenSampleWidget(viewer)
    opener.slide.value, opener.visium.value, opener.mpp.value = DATA / "B4_HE.jpg", work / "planted", 0.69
    opener.open()
    _, model = viewer.window.add_plugin_dock_widget("napari-pathsae", "Model and inference")
    model.reset_choices()
    model.spots_layer.value = model.spots_layer.choices[1]
    model.encoder.value, model.sae_dir.value, model.store.value = "vit_tiny_patch16_224", work / "sae", work / "b4.zarr"
    model.follow_view.value = False
    state = state_for(viewer)
    model.load_button.clicked()
    wait(lambda: state.session is not None)
    _, browser = viewer.window.add_plugin_dock_widget("napari-pathsae", "Feature browser", tabify=True)
    spots_dock, spots = viewer.window.add_plugin_dock_widget("napari-pathsae", "Spots and genes", tabify=True)
    spots.correlate()
    wait(lambda: state.session.correlations is not None and spots.correlate_button.isEnabled())
    spots.gene.setText("PLANTED1")
    spots.show_gene("PLANTED1")
    best = int(spots.ranked.item(0, 0).data(0x0100).removeprefix("f"))
    state.session.set_label(best, "stain saturation")
    state.labels_changed.emit()
    browser.refresh()
    browser.select_features([best])
    viewer.layers[1].visible = False
    shoot(viewer, "explorer_spots.png")
    _, dashboard = viewer.window.add_plugin_dock_widget("napari-pathsae", "Feature dashboard", tabify=True)
    state.select([best])
    wait(lambda: dashboard.gallery.count() > 0)
    shoot(viewer, "explorer_dashboard.png")
    _, concepts = viewer.window.add_plugin_dock_widget("napari-pathsae", "Concepts", tabify=True)
    concepts.n_concepts.value = 6
    concepts.run_button.clicked()
    wait(lambda: concepts.layer is not None)
    concepts.gene.value = "PLANTED1"
    concepts.importance_button.clicked()
    wait(lambda: "held-out r" in concepts.status.value)
    for layer in viewer.layers:
        layer.visible = layer.name.startswith(("planted H&E", "pathsae concepts"))
    shoot(viewer, "explorer_concepts.png")
    _, region = viewer.window.add_plugin_dock_widget("napari-pathsae", "Region export", tabify=True)
    shapes = region.add_region_layer()
    shapes.add_rectangles(np.array([[3000.0, 2000.0], [5000.0, 4500.0]]))
    for old in work.glob("region*.csv"):  # a rerun: the panel refuses to overwrite
        old.unlink()
    region.output.value = work / "region.csv"
    region.export_button.clicked()
    wait(lambda: "tiles →" in region.status.value)
    viewer.reset_view()
    shoot(viewer, "explorer_region.png")
    viewer.layers.remove(shapes)
    spots_dock.raise_()
    spots.gene.setText("ERBB2")
    spots.predict()
    wait(lambda: spots.predict_button.isEnabled() and "held-out r" in spots.status.text())
    for layer in viewer.layers:  # the spots, coloured by the held-out prediction, over the tissue
        layer.visible = layer.name.startswith(("planted H&E", "planted spots"))
    shoot(viewer, "explorer_predict.png")
    state.close()
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
