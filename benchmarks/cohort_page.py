"""The Cohort panel's feature page in a real napari window: time to load a cohort's index, and time from
asking for a feature page to its lists and tables filled (the tiles' pixels arrive after, from a worker).

usage: python benchmarks/cohort_page.py COHORT SAE_DIR [--pages 50] [--out DIR]   (needs a display: Xvfb)
The cohort is `cohort_scale.py`'s 1M-tile one (WORK_DIR/cohort_1000000) or any encoded cohort.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("sae", type=Path)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_pathsae.plugin.widgets.cohort_panel import CohortPanel

    viewer = napari.Viewer(show=True)
    panel = CohortPanel(viewer)
    viewer.window.add_dock_widget(panel)
    start = time.perf_counter()
    panel.load(args.cohort, args.sae)
    while panel.index is None:
        QApplication.processEvents()
        time.sleep(0.001)
    load_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    pages = []
    for feature in rng.choice(panel.index.n_features, args.pages, replace=False):
        begun = time.perf_counter()
        panel.show_page(int(feature))
        QApplication.processEvents()  # the page drawn: the event loop's next turn
        pages.append(time.perf_counter() - begun)
    viewer.close()
    save("cohort_page", {
        "cohort": str(args.cohort), "tiles": int(panel.index.n_tiles.sum()), "features": panel.index.n_features,
        "load_index_s": round(load_s, 3), "page_ms_median": round(1e3 * float(np.median(pages)), 1),
        "page_ms_max": round(1e3 * float(np.max(pages)), 1), "pages": args.pages,
    }, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
