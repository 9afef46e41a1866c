"""Screenshots for docs/images, taken along the user's journey on the her2st B4 section (run under Xvfb).

Every panel is docked as `pathsae demo` docks them (feature browser above, the rest as tabs) in a
1920 x 1080 window; the panels are driven as a user clicks them: open, load the default encoder,
compute the slide, train at the panel's defaults, paint features, spots by a gene, prediction,
concepts, a region. Slow the first time (embedding with ViT-S, then training); the store and SAE are
kept in WORK_DIR for reruns.

usage: xvfb-run -s "-screen 0 1920x1080x24" python scripts/screenshots.py WORK_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_pathsae.plugin.demo import dock_all_panels
from napari_pathsae.plugin.launch import WINDOW_PX
from napari_pathsae.plugin.state import state_for

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_B4"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
GENE = "ERBB2"


def wait(condition, timeout: float = 900.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        QApplication.processEvents()
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError


def settle(seconds: float = 1.5) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer, name: str) -> None:
    settle()
    viewer.screenshot(str(OUT / name), canvas_only=False, flash=False)
    print("wrote", OUT / name)


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(*WINDOW_PX)
    docks, panels = dock_all_panels(viewer)
    state = state_for(viewer)
    opener = panels["Open slide / Visium"]
    opener.slide.value, opener.visium.value, opener.mpp.value = DATA / "B4_HE.jpg", DATA / "spaceranger_outs", 0.69
    opener.open()
    model = panels["Model and inference"]
    docks["Model and inference"].raise_()
    model.store.value = work / "b4.zarr"
    sae = work / "b4.topk-x4-k16"
    model.sae_dir.value = sae if sae.is_dir() else None
    model.load()
    wait(lambda: state.session is not None)
    if not state.session.n_features:  # the first run: compute the slide and train from the panel
        model.train_output.value = sae
        model.train()
        wait(lambda: model.status.value.startswith("trained"))
    shoot(viewer, "explorer_model.png")

    browser, dashboard = panels["Feature browser"], panels["Feature dashboard"]
    spots = panels["Spots and genes"]
    docks["Spots and genes"].raise_()
    spots.correlate()
    wait(lambda: state.session.correlations is not None and spots.correlate_button.isEnabled())
    spots.gene.setText(GENE)
    spots.show_gene(GENE)
    ranked = [int(spots.ranked.item(r, 0).data(0x0100).removeprefix("f")) for r in range(3)]
    browser.refresh()
    browser.select_features(ranked)
    viewer.camera.center, viewer.camera.zoom = (0, 4300, 4000), 0.22
    shoot(viewer, "explorer_spots.png")

    docks["Feature dashboard"].raise_()
    browser.select_features(ranked[:1])
    wait(lambda: dashboard.gallery.count() > 0)
    dashboard.go_to_tile(int(dashboard.tiles[0]))
    shoot(viewer, "explorer_dashboard.png")

    docks["Spots and genes"].raise_()
    spots.predict()
    wait(lambda: spots.predict_button.isEnabled() and "held-out r" in spots.status.text())
    for feature in list(state.painter.heatmaps()):
        state.painter.heatmaps()[feature].visible = False  # the spots, coloured by the prediction, over the H&E
    viewer.reset_view()
    shoot(viewer, "explorer_predict.png")

    concepts = panels["Concepts"]
    docks["Concepts"].raise_()
    concepts.n_concepts.value = 6
    concepts.run_button.clicked()
    wait(lambda: concepts.layer is not None and concepts.legend.rowCount() == 6)
    concepts.gene.value = GENE
    concepts.importance_button.clicked()
    wait(lambda: "held-out r" in concepts.status.value)
    spots_layer = next(layer for layer in viewer.layers if layer.metadata.get("pathsae", {}).get("kind") == "spots")
    spots_layer.visible = False
    shoot(viewer, "explorer_concepts.png")

    region = panels["Region export"]
    docks["Region export"].raise_()
    concepts.layer.visible = False
    shapes = region.add_region_layer()
    shapes.add_rectangles(np.array([[3000.0, 2000.0], [5000.0, 4500.0]]))
    shapes.mode = "pan_zoom"
    for old in work.glob("region*.csv"):  # a rerun: the panel refuses to overwrite
        old.unlink()
    region.output.value = work / "region.csv"
    region.export_button.clicked()
    wait(lambda: "tiles →" in region.status.value)
    shoot(viewer, "explorer_region.png")
    viewer.window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
