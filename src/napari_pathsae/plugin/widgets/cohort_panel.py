"""Dock panel: a cohort's slides and feature pages (top tiles across slides, quantile samples, per-slide
density, slide-level associations), read from the cohort's feature index; clicking a tile of another slide
opens that slide at that tile, with the selected features and their legends kept."""

from __future__ import annotations

import time
from pathlib import Path

import napari.viewer
import numpy as np
from magicgui.widgets import FileEdit
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...errors import PathsaeError
from ...names import LayerKind, feature_index, feature_name, layer_kind
from ..background import run_in_background
from ..heatmap_layers import show_legend
from ..state import state_for
from ..tile_focus import go_to_tile
from .feature_dashboard import pixmap_of
from .fields import chosen_path
from .panel import Panel

THUMB_PX = 80
#: Layers that belong to the open slide and go when another slide of the cohort is opened.
SLIDE_KINDS = {LayerKind.SLIDE, LayerKind.SPOTS, LayerKind.PATCH_HEATMAP, LayerKind.TARGET, LayerKind.ARGMAX}


def _gallery(tooltip: str) -> QListWidget:
    gallery = QListWidget()
    gallery.setToolTip(tooltip)
    gallery.setViewMode(QListWidget.ViewMode.IconMode)
    gallery.setIconSize(QSize(THUMB_PX, THUMB_PX))
    gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
    gallery.setMinimumHeight(2 * (THUMB_PX + 44))
    return gallery


def _table(columns: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setMinimumHeight(180)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()


class CohortPanel(Panel, QWidget):
    """Load a cohort folder and its SAE; browse feature pages across its slides."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = state_for(viewer)
        self.cohort_field = FileEdit(mode="d", nullable=True, tooltip="a cohort folder (pathsae embed --manifest)")
        self.sae_field = FileEdit(mode="d", nullable=True, tooltip="the SAE folder the cohort was encoded with")
        self.load_button = QPushButton("Load cohort")
        self.status = QLabel("a cohort folder and its SAE (the cohort is encoded with it: pathsae encode COHORT)")
        self.status.setWordWrap(True)
        self.slides = QListWidget()
        self.slides.setToolTip("the cohort's slides; double-click one to open it")
        self.slides.setMaximumHeight(140)
        self.feature_box = QLineEdit()
        self.feature_box.setPlaceholderText("feature: 12, f12 or a label")
        self.show_button = QPushButton("Show page")
        self.paint_button = QPushButton("Paint on this slide")
        self.paint_button.setToolTip("add the page's feature to the heatmaps of the open slide")
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.top = _gallery("the feature's strongest tiles across all slides; click one to go there")
        self.samples = _gallery("samples of the feature's activations, weakest quantile first")
        self.density = _table(["slide", "fires on", "mean"])
        self.associations = _table(["variable", "test", "statistic", "p", "q (slides as unit)"])
        layout = QVBoxLayout(self)
        for label, widget in (("Cohort", self.cohort_field.native), ("SAE", self.sae_field.native)):
            row = QHBoxLayout()
            row.addWidget(QLabel(label))
            row.addWidget(widget)
            layout.addLayout(row)
        layout.addWidget(self.load_button)
        layout.addWidget(self.status)
        layout.addWidget(self.slides)
        row = QHBoxLayout()
        row.addWidget(self.feature_box)
        row.addWidget(self.show_button)
        row.addWidget(self.paint_button)
        layout.addLayout(row)
        page = QWidget()  # the feature page scrolls; the fields above it stay
        page_layout = QVBoxLayout(page)
        page_layout.addWidget(self.title)
        for heading, widget in (
            ("Top tiles across slides (click to open that slide there)", self.top),
            ("Samples by activation quantile (weakest first)", self.samples),
            ("Density per slide", self.density),
            ("Slide-level associations", self.associations),
        ):
            label = QLabel(heading)
            label.setWordWrap(True)  # an unwrapped line would make the page wider than a narrow dock
            page_layout.addWidget(label)
            page_layout.addWidget(widget)
        self.page_scroll = QScrollArea()
        self.page_scroll.setWidgetResizable(True)
        self.page_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # galleries wrap
        self.page_scroll.setWidget(page)
        layout.addWidget(self.page_scroll, stretch=1)
        self.cohort = None
        self.index = None
        self.sae_dir: Path | None = None
        self.labels: dict[int, str] = {}
        self.feature: int | None = None
        self.page_seconds = float("nan")  # how long the last page took to fill from the index (tests, benchmarks)
        self._thumbs: dict[tuple[str, int], np.ndarray] = {}
        self._opening = False
        self.load_button.clicked.connect(lambda _=None: self.load())
        self.show_button.clicked.connect(lambda _=None: self.show_typed())
        self.feature_box.returnPressed.connect(self.show_typed)
        self.paint_button.clicked.connect(lambda _=None: self.paint_here())
        self.slides.itemDoubleClicked.connect(lambda item: self.open_slide(item.data(Qt.ItemDataRole.UserRole)))
        self.top.itemClicked.connect(self._tile_clicked)
        self.samples.itemClicked.connect(self._tile_clicked)
        self.state.current_changed.connect(self._follow_current)

    # --- loading -------------------------------------------------------------------------------
    def load(self, cohort: str | Path | None = None, sae: str | Path | None = None):
        """Open the cohort and its feature index (a worker thread); returns the worker."""
        if cohort is not None:
            self.cohort_field.value, self.sae_field.value = cohort, sae
        folder, sae_dir = chosen_path(self.cohort_field), chosen_path(self.sae_field)
        if not folder or not sae_dir:
            self.fail(PathsaeError("choose a cohort folder and the SAE folder it was encoded with"))
            return None
        self.say(f"loading {Path(folder).name}…")
        return self.in_background(_open, Path(folder), Path(sae_dir), on_done=self._loaded)

    def _loaded(self, loaded) -> None:
        self.cohort, self.index, self.sae_dir, self.labels, notes = loaded
        self._thumbs.clear()
        self.slides.clear()
        variables = self.cohort.variables
        for s, name in enumerate(self.cohort.names):
            values = ", ".join(f"{c} {variables.loc[name, c]}" for c in variables.columns)
            item = QListWidgetItem(f"{name}: {int(self.index.n_tiles[s]):,} tiles" + (f"; {values}" if values else ""))
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.slides.addItem(item)
        best = self.index.strongest()
        self.say(
            f"{len(self.cohort.names)} slides, {int(self.index.n_tiles.sum()):,} tiles, "
            f"{self.index.n_features} features"
            + (f"; most associated with {best[1]}: {feature_name(best[0])} (q {best[3]:.3g})" if best else "")
            + "".join(f"; {note}" for note in notes)
        )
        self.show_page(best[0] if best else int(np.argmax(self.index.overall_density())))

    # --- the page ------------------------------------------------------------------------------
    def show_typed(self) -> None:
        text = self.feature_box.text().strip()
        try:
            if self.index is None:
                raise PathsaeError("load a cohort first")
            feature = self._find(text)
        except PathsaeError as exc:
            self.fail(exc)
            return
        self.show_page(feature)
        self.say(f"page of {feature_name(feature)}" + (f" ({self.labels[feature]})" if feature in self.labels else ""))

    def _find(self, text: str) -> int:
        if text.lower().removeprefix("f").isdigit():
            feature = feature_index(text if text.startswith("f") else f"f{text}")
            if not 0 <= feature < self.index.n_features:
                raise PathsaeError(f"no feature {text}: the SAE has f0–f{self.index.n_features - 1}")
            return feature
        for f, label in sorted(self.labels.items()):
            if text.lower() in label.lower():
                return f
        raise PathsaeError(f"no feature numbered or labelled {text!r}")

    def _follow_current(self, feature) -> None:
        if self.index is not None and feature is not None and 0 <= feature < self.index.n_features:
            self.show_page(int(feature))

    def show_page(self, feature: int) -> None:
        """Fill the page from the index (on the GUI thread: it is arrays only); tiles come in from a worker."""
        start = time.perf_counter()
        index, self.feature = self.index, int(feature)
        label = self.labels.get(self.feature, "")
        density = index.overall_density()[self.feature]
        self.title.setText(
            f"<b>{feature_name(self.feature)}</b>{': ' + label if label else ''}: fires on {density:.2%} of "
            f"{int(index.n_tiles.sum()):,} tiles; strongest {index.top_value[self.feature, 0]:.3g}"
        )
        top = index.top(self.feature)[:12]
        samples = [(i, row) for i, band in enumerate(index.quantile_samples(self.feature, 5, 3)) for row in band]
        self._gallery_items(self.top, [(f"{s}\n{v:.2f}", (s, t)) for s, t, v, _ in top])
        self._gallery_items(self.samples, [(f"q{i + 1} {s}\n{v:.2f}", (s, t)) for i, (s, t, v, _) in samples])
        per_slide, means = index.density()[:, self.feature], index.slide_means()[:, self.feature]
        order = np.argsort(-per_slide)[:20]
        _fill(self.density, [[str(index.slides[s]), f"{per_slide[s]:.1%}", f"{means[s]:.3g}"] for s in order])
        _fill(self.associations, [[a["variable"], a["kind"], f"{a['statistic']:.3g}", f"{a['p']:.3g}",
                                   f"{a['q']:.3g}"] for a in index.associations(self.feature)])  # fmt: skip
        self.page_seconds = time.perf_counter() - start
        wanted = [(s, t) for s, t, _, _ in top] + [(s, t) for _, (s, t, _, _) in samples]
        missing = [key for key in dict.fromkeys(wanted) if key not in self._thumbs]
        if missing:
            run_in_background(_read_thumbs, self.cohort, missing, on_done=self._thumbs_read)
        else:
            self._thumbs_read({})

    def _gallery_items(self, gallery: QListWidget, entries: list[tuple[str, tuple[str, int]]]) -> None:
        gallery.clear()
        for text, key in entries:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, key)
            gallery.addItem(item)

    def _thumbs_read(self, thumbs: dict) -> None:
        self._thumbs.update(thumbs)
        for gallery in (self.top, self.samples):
            for i in range(gallery.count()):
                item = gallery.item(i)
                key = tuple(item.data(Qt.ItemDataRole.UserRole))
                if key in self._thumbs:
                    item.setIcon(QIcon(pixmap_of(self._thumbs[key])))

    # --- going to a tile -----------------------------------------------------------------------
    def _tile_clicked(self, item: QListWidgetItem) -> None:
        slide, tile = item.data(Qt.ItemDataRole.UserRole)
        self.open_slide(str(slide), int(tile))

    def current_slide(self) -> str | None:
        session = self.state.session
        if session is None or self.cohort is None:
            return None
        for name, path in zip(self.cohort.names, self.cohort.store_paths, strict=True):
            if Path(session.store.path).resolve() == path.resolve():
                return name
        return None

    def open_slide(self, name: str, tile: int | None = None):
        """Go to ``tile`` of slide ``name``: on the open slide at once; another slide is opened first (its
        layers and session read on a worker thread, then swapped in with the selection kept)."""
        if self.cohort is None:
            return None
        if name == self.current_slide():
            if tile is not None:
                go_to_tile(self.viewer, self.state.session, tile)
            return None
        if self._opening:
            self.say("still opening the previous slide…")
            return None
        self._opening = True
        self.say(f"opening {name}…")

        def failed(_exc) -> None:
            self._opening = False

        return self.in_background(_open_slide, self.cohort, name, self.sae_dir, on_error=failed,
                                  on_done=lambda opened: self._swap(name, tile, *opened))  # fmt: skip

    def _swap(self, name: str, tile: int | None, layers: list, session) -> None:
        self._opening = False
        selected, current = list(self.state.selected), self.state.current
        self.state.set_session(session)  # the previous slide's heatmaps go with its session
        for layer in [layer for layer in self.viewer.layers if layer_kind(layer) in SLIDE_KINDS]:
            self.viewer.layers.remove(layer)
        for data, kwargs, kind in layers:
            layer = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
            if kind == "points":
                show_legend(layer, position="bottom_left")
        self.viewer.reset_view()
        self.state.select([f for f in selected if f < session.n_features], current)
        if tile is not None:
            go_to_tile(self.viewer, session, tile)
        self.slides.setCurrentRow(self.cohort.names.index(name))  # the list marks the slide on screen
        self.say(f"{name} open" + (f" at tile {tile}" if tile is not None else ""))

    def paint_here(self) -> None:
        """The page's feature painted on the open slide (added to the selection)."""
        if self.feature is None or self.state.session is None:
            self.fail(PathsaeError("show a feature page and open one of the cohort's slides first"))
            return
        self.state.select(list(dict.fromkeys([*self.state.selected, self.feature])), self.feature)


def _open(folder: Path, sae_dir: Path):
    from ...data.cohort import open_cohort
    from ...engine.cohort import cohort_index
    from ...engine.session import read_labels

    cohort = open_cohort(folder)
    index, notes = cohort_index(cohort, sae_dir)
    return cohort, index, sae_dir, read_labels(sae_dir), notes


def _read_thumbs(cohort, keys: list[tuple[str, int]]) -> dict:
    from ...data.store import TileStore
    from ...report.atlas.images import store_tile_pixels

    out, notes = {}, []
    for slide in dict.fromkeys(s for s, _ in keys):
        tiles = np.array([t for s, t in keys if s == slide])
        pixels = store_tile_pixels(TileStore.open(cohort.store_path(slide)), tiles, slide, notes)
        out.update({(slide, int(t)): p for t, p in zip(tiles, pixels, strict=True)})
    return out


def _open_slide(cohort, name: str, sae_dir: Path):
    from ...engine.cohort import slide_session
    from ..reader import layers_for

    entry = cohort.slide(name)
    layers = layers_for(str(entry.slide), str(entry.visium) if entry.visium else None, entry.slide_mpp, [])
    return layers, slide_session(cohort, name, sae_dir)
