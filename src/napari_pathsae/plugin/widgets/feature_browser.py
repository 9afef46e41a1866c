"""Dock panel: the SAE's features as a sortable, searchable table; selecting rows paints them."""

import napari.viewer
import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...analysis.features import argmax_feature
from ...errors import PathsaeError
from ..heatmap_layers import tile_labels_layer
from ..notify import report_error
from ..state import state_for

COLUMNS = ["feature", "label", "frequency", "max", "mean_active", "top_gene", "top_gene_r"]
HEADERS = ["feature", "label", "freq", "max", "mean (active)", "top gene", "r"]
LABEL_COLUMN = COLUMNS.index("label")


class NumericItem(QTableWidgetItem):
    """A cell that sorts by its number, not its text."""

    def __init__(self, value: float, text: str):
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, float(value))
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other) -> bool:
        mine, theirs = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if mine is None or theirs is None:
            return super().__lt__(other)
        return bool(np.nan_to_num(mine, nan=-np.inf) < np.nan_to_num(theirs, nan=-np.inf))


class FeatureBrowser(QWidget):
    """Search by feature number, label or gene; edit the label column to name a feature (saved)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.state = state_for(viewer)
        self.viewer = viewer
        self.search = QLineEdit(placeholderText="search: feature number, label or gene")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        self.refresh_button = QPushButton("Refresh statistics")
        self.argmax_button = QPushButton("Argmax feature map")
        self.summary = QLabel("load a model in the Model panel")
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.argmax_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        self._filling = False
        self.search.textChanged.connect(self.apply_filter)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemChanged.connect(self._item_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.argmax_button.clicked.connect(self.add_argmax_layer)
        self.state.session_changed.connect(self.refresh)
        self.state.correlations_changed.connect(self.refresh)
        if self.state.session is not None:
            self.refresh()

    def refresh(self) -> None:
        """Recompute the statistics over the tiles computed so far and refill the table."""
        session = self.state.session
        if session is None or not session.n_features:
            return
        table = session.feature_table()
        selected = set(self.state.selected)
        self._filling = True
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(table))
        for row, record in enumerate(table.itertuples(index=False)):
            values = record._asdict()
            for column, name in enumerate(COLUMNS):
                value = values[name]
                if name == "label":
                    item = QTableWidgetItem(str(value))
                elif name == "top_gene":
                    item = NumericItem(np.nan, str(value))
                    item.setData(Qt.ItemDataRole.UserRole, None)
                elif name == "feature":
                    item = NumericItem(value, f"f{value}")
                else:
                    item = NumericItem(value, "" if np.isnan(value) else f"{value:.3g}")
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self._filling = False
        self.apply_filter(self.search.text())
        self._reselect(selected)
        computed = int(session.computer.activated().sum())
        self.summary.setText(f"{session.n_features} features over {computed}/{session.computer.n_tiles} computed tiles")

    def feature_at(self, row: int) -> int:
        return int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))

    def row_of(self, feature: int) -> int:
        return next(r for r in range(self.table.rowCount()) if self.feature_at(r) == feature)

    def apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for row in range(self.table.rowCount()):
            haystack = " ".join(
                self.table.item(row, c).text().lower() for c in (0, LABEL_COLUMN, COLUMNS.index("top_gene"))
            )
            self.table.setRowHidden(row, bool(text) and text not in haystack)

    def select_features(self, features: list[int]) -> None:
        """Select these rows (as a click would); their heatmaps are painted."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for feature in features:
            self.table.selectRow(self.row_of(feature))
        self.table.setSelectionMode(mode)

    def _reselect(self, features: set[int]) -> None:
        self.table.blockSignals(True)
        self.select_features(sorted(features))
        self.table.blockSignals(False)

    def _selection_changed(self) -> None:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        self.state.select([self.feature_at(r) for r in rows])

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != LABEL_COLUMN:
            return
        try:
            self.state.session.set_label(self.feature_at(item.row()), item.text())
        except PathsaeError as exc:
            report_error(exc)
            return
        self.state.labels_changed.emit()

    def add_argmax_layer(self):
        """A Labels layer: each tile's strongest feature (label = feature + 1)."""
        session = self.state.session
        if session is None or not session.n_features:
            report_error(PathsaeError("load a model with an SAE first"))
            return None
        data, kwargs, _ = tile_labels_layer(
            session, argmax_feature(session.activations), "pathsae argmax feature", "argmax"
        )
        return self.viewer.add_labels(data, **kwargs)
