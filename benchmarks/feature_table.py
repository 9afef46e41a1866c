"""The feature browser with a real-size SAE: what a statistics refresh, a sort and a search cost the UI thread.

A session stand-in holds FEATURES features over TILES computed tiles (sparse random activations, a
TopK-like 2 % active). The statistics (``session.feature_table``) run on a worker thread in the
viewer; the UI thread only shows them (``_show``), sorts and filters. Each is timed REPEATS times;
the table used to be thousands of QTableWidgetItems rebuilt on the UI thread at every refresh.

usage: python benchmarks/feature_table.py [--features N] [--tiles N] [--out DIR]   (needs a display)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import numpy as np
import pandas as pd
from measure import save
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_pathsae.analysis.features import feature_table
from napari_pathsae.plugin.state import state_for
from napari_pathsae.plugin.widgets.feature_browser import FeatureBrowser

REPEATS = 5


class StandInSession:
    """What the browser reads of a session, with ``features`` SAE features over ``tiles`` computed tiles."""

    stability = None
    correlations = None

    def __init__(self, features: int, tiles: int, seed: int = 0):
        self.labels: dict[int, str] = {}
        rng = np.random.default_rng(seed)
        self.activations = np.where(rng.random((tiles, features), np.float32) < 0.02, rng.random(1, np.float32), 0)
        self.activations = self.activations.astype(np.float32)
        self.n_features, self.n_tiles = features, tiles

    def activated(self) -> np.ndarray:
        return np.ones(self.n_tiles, bool)

    def feature_table(self) -> pd.DataFrame:
        table = feature_table(self.activations)
        table["label"], table["top_gene"] = "", ""
        table["top_gene_r"] = table["top_gene_q"] = table["stability_r"] = np.nan
        return table


def ms(action) -> float:
    """Milliseconds from ``action`` starting to the event loop having drawn its result."""
    start = time.perf_counter()
    action()
    QApplication.processEvents()
    return round((time.perf_counter() - start) * 1000, 1)


def main(features: int = 3072, tiles: int = 20_000) -> dict:
    viewer = napari.Viewer(show=True)
    state = state_for(viewer)
    session = state.session = StandInSession(features, tiles)
    browser = FeatureBrowser(viewer)
    viewer.window.add_dock_widget(browser)
    timings: dict[str, list[float]] = {"statistics_worker_thread": [], "show_ui_thread": [], "sort": [], "search": []}
    for repeat in range(REPEATS):
        session.activations[:, repeat] *= 3  # new statistics: rows move under a value sort
        start = time.perf_counter()
        table = session.feature_table()
        timings["statistics_worker_thread"].append(round((time.perf_counter() - start) * 1000, 1))
        timings["show_ui_thread"].append(ms(lambda table=table: browser._show(session, table)))
        order = Qt.SortOrder.DescendingOrder if repeat % 2 else Qt.SortOrder.AscendingOrder
        timings["sort"].append(ms(lambda order=order: browser.table.sortByColumn(3, order)))
        timings["search"].append(ms(lambda repeat=repeat: browser.search.setText("f1" if repeat % 2 else "")))
    viewer.close()
    return {
        "features": features,
        "tiles": tiles,
        "median_ms": {key: float(np.median(values)) for key, values in timings.items()},
        "runs_ms": timings,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=3072)
    parser.add_argument("--tiles", type=int, default=20_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save("feature_table", main(args.features, args.tiles), args.out)
