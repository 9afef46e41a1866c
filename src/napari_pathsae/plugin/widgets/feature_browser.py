"""Dock panel: the SAE's features as a sortable, searchable table; selecting rows paints them.

The statistics are computed off the UI thread and shown through a model (feature_table_model.py):
with thousands of features a refresh costs the UI thread what a screenful of rows costs.
"""

import contextlib
import re

import napari.viewer
import numpy as np
import pandas as pd
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ...analysis.features import argmax_feature
from ...analysis.sae_report import STABLE_R
from ...errors import PathsaeError
from ...names import LayerKind
from ..background import run_in_background
from ..heatmap_layers import show_legend, tile_labels_layer
from ..notify import report_error
from ..state import state_for
from .feature_table_model import COLUMNS, FeatureTableModel
from .label_legend import fill_legend, legend_table
from .panel import Panel

HEADERS = ["feature", "label", "active in", "max", "mean when active", "top gene", "r (gene)", "q spatial", "seed r"]
HEADER_TIPS = [
    "SAE feature number (click to paint it; Ctrl/Shift-click for several; PageDown/PageUp: next/previous)",
    "your name for the feature (double-click to edit; saved beside the SAE)",
    "fraction of computed tiles where the feature is active (> 0)",
    "largest activation over the computed tiles (SAE activation, arbitrary units)",
    "mean activation over the tiles where it is active",
    "gene most associated with the feature over the Visium spots by the spatial test (after Correlate in the "
    "Spots panel): Spearman r's 95% bound over the effective spots",
    "Spearman r between the feature (spot mean) and that gene over the spots",
    "its q under the spatial test (effective spots from both variables' autocorrelation; BH over every pair)",
    "best-matched activation r of the feature in another seed's SAE (pathsae report --other-sae): "
    f"r ≥ {STABLE_R} replicates",
]
#: While tiles arrive, the statistics are recomputed at most this often.
STATS_REFRESH_MS = 2000
#: A search that names a feature ("f12", "12") shows that feature alone; other text matches labels and genes.
FEATURE_NAME = re.compile(r"f?\d+")
#: The table keeps room for about eight rows however the docks are arranged.
TABLE_MIN_PX = 180
#: Rows of the argmax map's legend (the features that win the most tiles).
ARGMAX_LEGEND_ROWS = 12


NO_MODEL = "load a model in the Model panel"
NO_SAE = "encoder loaded, no SAE yet: choose an SAE folder or train one in the Model panel"
ARGMAX_LAYER = "pathsae argmax feature"


class FeatureBrowser(Panel, QWidget):
    """Search by feature number, label or gene; edit the label column to name a feature (saved)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.state = state_for(viewer)
        self.viewer = viewer
        self.search = QLineEdit(placeholderText="search: feature number, label or gene")
        self.model = FeatureTableModel(HEADERS, HEADER_TIPS)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setResizeContentsPrecision(200)  # column widths from a screenful of rows
        self.table.horizontalHeader().setResizeContentsPrecision(200)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # f0, f1, … until the user sorts
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(TABLE_MIN_PX)
        self.search.setToolTip("type a feature number (f12), a label or a gene to filter the rows")
        self.hide_dead = QCheckBox("Hide never active")
        self.hide_dead.setToolTip("hide features that fire on none of the computed tiles (dead latents)")
        self.hide_dead.setChecked(True)
        self.stable_only = QCheckBox("Only replicating")
        self.stable_only.setToolTip(
            f"only features whose best match in another seed's SAE has activation r ≥ {STABLE_R}; needs "
            "stability.csv beside the SAE: pathsae report SAE --store STORE --other-sae SEED2 -o REPORT"
        )
        self.refresh_button = QPushButton("Refresh statistics")
        self.refresh_button.setToolTip("recompute the columns now (they also follow the computed tiles)")
        self.argmax_button = QPushButton("Argmax feature map")
        self.argmax_button.setToolTip("a map of each tile's strongest feature, with its legend below")
        self.summary = QLabel(NO_MODEL)
        self.summary.setWordWrap(True)
        self.argmax_legend = legend_table(
            ["argmax feature", "tiles"], ["colour of the feature in the argmax map", "tiles it wins"]
        )
        self.argmax_legend.setVisible(False)
        self.argmax_legend.setMaximumHeight(160)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.argmax_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        filters = QHBoxLayout()  # one row: the demo's docks fill a full-HD screen exactly
        filters.addWidget(self.hide_dead)
        filters.addWidget(self.stable_only)
        layout.addLayout(filters)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        layout.addWidget(self.argmax_legend)
        self._filling = False
        self._hidden: set[int] = set()  # features whose row is hidden now
        self._refreshing = None  # the background statistics in flight
        self._refresh_again = False
        self._session_shown = None  # the session whose statistics the table shows
        self._stats_timer = QTimer(self)
        self._stats_timer.setSingleShot(True)
        self._stats_timer.setInterval(STATS_REFRESH_MS)
        self._stats_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(self.apply_filter)
        self.hide_dead.toggled.connect(lambda _: self.apply_filter(self.search.text()))
        self.stable_only.toggled.connect(lambda _: self.apply_filter(self.search.text()))
        self.state.tiles_computed.connect(self._tiles_computed)
        self.state.current_changed.connect(self._current_changed)
        viewer.bind_key("PageDown", lambda _viewer: self.step(1), overwrite=True)
        viewer.bind_key("PageUp", lambda _viewer: self.step(-1), overwrite=True)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.label_edited.connect(self._label_edited)
        self.refresh_button.clicked.connect(self.refresh)
        self.argmax_button.clicked.connect(self.add_argmax_layer)
        self.state.session_changed.connect(self.refresh)
        self.state.selection_changed.connect(self._follow_selection)
        self.state.correlations_changed.connect(self.refresh)
        if self.state.session is not None:
            self.refresh_now()

    def refresh(self) -> None:
        """Recompute the statistics over the tiles computed so far (off the UI thread), then show them."""
        session = self.state.session
        if session is None or not session.n_features:
            self._show(session, None)
            return
        if self._refreshing is not None:  # one at a time; the last request is served after it
            self._refresh_again = True
            return

        def done(table) -> None:
            self._refreshing = None
            if self.state.session is session:
                self._show(session, table)
            if self._refresh_again:
                self._refresh_again = False
                self.refresh()

        def failed(_exc) -> None:
            self._refreshing = None

        self._refreshing = run_in_background(session.feature_table, on_done=done, on_error=failed)

    def refresh_now(self) -> None:
        """Recompute and show the statistics at once, on this thread (tests, scripts, the demo)."""
        session = self.state.session
        has_features = session is not None and session.n_features
        self._show(session, session.feature_table() if has_features else None)

    def _show(self, session, table) -> None:
        """Fill the table from ``table`` (None: no model or no SAE); selection, sort and filters kept."""
        if table is None:
            self._session_shown = session
            self.model.set_table(_EMPTY)
            self._hidden = set()
            self.summary.setText(NO_MODEL if session is None else NO_SAE)
            return
        self.stable_only.setEnabled(session.stability is not None)
        if session.stability is None:
            self.stable_only.setChecked(False)
        self._filling = True
        reset = self.model.set_table(table)  # other features: a reset, rows and widths anew
        if reset:
            self._hidden = set()
            self.table.resizeColumnsToContents()
        if reset or session is not self._session_shown:  # the same SAE loaded again: its selection starts anew
            self._reselect(set(self.state.selected))
        self._session_shown = session
        self._filling = False
        self.apply_filter(self.search.text())  # and the summary line

    def _summarise(self) -> None:
        session = self.state.session
        computed = int(session.activated().sum())
        frequency = self.model.column("frequency")
        dead = f"; {int((frequency <= 0).sum())} never active" + (" (hidden)" if self.hide_dead.isChecked() else "")
        if not (frequency > 0).any():  # statistics of no computed tile yet: nothing is known to be dead
            dead = ""
        self.summary.setText(f"{session.n_features} features over {computed}/{session.n_tiles} computed tiles{dead}")

    def _tiles_computed(self, _indices=None) -> None:
        """The count moves at once; the statistics follow, at most every STATS_REFRESH_MS."""
        session = self.state.session
        if session is None or not session.n_features:
            return
        self._summarise()
        if not self._stats_timer.isActive():
            self._stats_timer.start()

    def feature_at(self, row: int) -> int:
        return self.model.feature_at(row)

    def row_of(self, feature: int) -> int:
        """The row showing ``feature`` (StopIteration when the table does not list it)."""
        return self.model.row_of(feature)

    def apply_filter(self, text: str) -> None:
        """Hide the rows the search and the check boxes leave out (only rows whose state changes are touched)."""
        model, text = self.model, text.strip().lower()
        features = model.features
        hidden = np.zeros(len(features), bool)
        frequency = model.column("frequency")
        if self.hide_dead.isChecked() and (frequency > 0).any():  # none active: nothing computed yet, hide none
            hidden |= frequency <= 0
        if self.stable_only.isChecked():
            hidden |= ~(np.nan_to_num(model.column("stability_r").astype(float), nan=-1.0) >= STABLE_R)
        if FEATURE_NAME.fullmatch(text):  # "f12" or "12": that feature, not f120-f129 too
            hidden |= features != int(text.lstrip("f"))
        elif text:
            names = np.char.add("f", features.astype(str))
            haystack = np.char.add(np.char.add(names, " "), model.column("label").astype(str))
            haystack = np.char.lower(np.char.add(np.char.add(haystack, " "), model.column("top_gene").astype(str)))
            hidden |= np.char.find(haystack, text) < 0
        wanted = set(features[hidden].tolist())
        for feature in wanted ^ self._hidden:
            self.table.setRowHidden(model.row_of(feature), feature in wanted)
        self._hidden = wanted
        if self.state.session is not None and self.state.session.n_features:
            self._summarise()

    def visible_features(self) -> list[int]:
        """Features of the rows shown, in the table's order."""
        return [f for f in self.model.features_in_view_order().tolist() if f not in self._hidden]

    def step(self, direction: int) -> None:
        """Paint the next (+1) or previous (-1) shown feature after the current one, alone."""
        shown = self.visible_features()
        if not shown:
            return
        current = self.state.current
        position = shown.index(current) + direction if current in shown else (0 if direction > 0 else -1)
        self.select_features([shown[position % len(shown)]])

    def _current_changed(self, feature: int | None) -> None:
        if feature is None or self._filling:
            return
        try:
            row = self.row_of(feature)
        except StopIteration:
            return
        self.table.scrollTo(self.model.index(row, 0))

    def select_features(self, features: list[int]) -> None:
        """Select these rows (as a click would); their heatmaps are painted."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for feature in features:
            with contextlib.suppress(StopIteration):  # a feature of another SAE, or not listed yet
                self.table.selectRow(self.row_of(feature))
        self.table.setSelectionMode(mode)

    def _reselect(self, features: set[int]) -> None:
        """Select these rows without telling the state (it already has them)."""
        filling, self._filling = self._filling, True
        try:
            self.select_features(sorted(features))
        finally:
            self._filling = filling

    def _selection_changed(self, *_args) -> None:
        if self._filling:
            return
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        current = self.table.currentIndex().row()
        features = [self.feature_at(r) for r in rows]
        clicked = self.feature_at(current) if current in rows else None
        self.state.select(features, current=clicked)

    def _follow_selection(self, features: list[int]) -> None:
        """Selections made elsewhere (ranked genes, predictions, restored sessions) show as selected rows."""
        if sorted(features) != sorted(self._selected_rows_features()):
            self._reselect(set(features))

    def _selected_rows_features(self) -> list[int]:
        return [self.feature_at(i.row()) for i in self.table.selectionModel().selectedRows()]

    def set_label(self, feature: int, label: str) -> None:
        """Name a feature (what typing in the label column does): saved beside the SAE, shown everywhere."""
        self._label_edited(feature, label)

    def _label_edited(self, feature: int, label: str) -> None:
        try:
            self.state.session.set_label(feature, label)
        except PathsaeError as exc:
            report_error(exc)
            return
        self.model.set_label(feature, label.strip())
        self.state.labels_changed.emit()

    def add_argmax_layer(self):
        """A Labels layer of each tile's strongest feature (computed off the UI thread); hovering names it, the
        legend lists the largest. Returns the background worker."""
        session = self.state.session
        if session is None or not session.n_features:
            report_error(PathsaeError(NO_SAE if session is not None else NO_MODEL))
            return None
        self.argmax_button.setEnabled(False)

        def done(layer_data) -> None:
            self.argmax_button.setEnabled(True)
            self._show_argmax(*layer_data)

        return run_in_background(
            argmax_layer_data, session, on_done=done, on_error=lambda _: self.argmax_button.setEnabled(True)
        )

    def _show_argmax(self, data, kwargs: dict) -> None:
        if ARGMAX_LAYER in self.viewer.layers:
            self.viewer.layers.remove(ARGMAX_LAYER)
        layer = self.viewer.add_labels(data, **kwargs)
        show_legend(layer, colorbar=False, position="top_left")
        counts = kwargs["features"].sort_values("tiles", ascending=False).head(ARGMAX_LEGEND_ROWS)
        rows = [(int(r.index), [r.feature, str(r.tiles)]) for r in counts.itertuples(index=False)]
        fill_legend(self.argmax_legend, layer, rows)
        self.argmax_legend.setVisible(True)


_EMPTY = pd.DataFrame({name: [] for name in COLUMNS})


def argmax_layer_data(session) -> tuple:
    """Each tile's strongest feature as Labels layer data and keyword arguments (any thread)."""
    labels = argmax_feature(session.activations)
    names = {int(v): session.feature_name(int(v) - 1) for v in np.unique(labels[labels > 0])}
    data, kwargs, _ = tile_labels_layer(session, labels, ARGMAX_LAYER, LayerKind.ARGMAX, "feature", names)
    return data, kwargs
