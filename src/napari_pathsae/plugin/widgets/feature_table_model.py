"""The feature browser's table as a Qt model: the view asks only for the rows it shows.

Thousands of features cost what a screenful costs: cells are formatted when drawn, sorting is one
numpy argsort, and new statistics are a layout change (the selection and hidden rows follow their
features) rather than thousands of widget items rebuilt on the UI thread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal

from ...names import feature_name

COLUMNS = ["feature", "label", "frequency", "max", "mean_active", "top_gene", "top_gene_r", "top_gene_q", "stability_r"]
TEXT_COLUMNS = ("label", "top_gene")
LABEL_COLUMN = COLUMNS.index("label")


class FeatureTableModel(QAbstractTableModel):
    """One row per feature of a ``session.feature_table()`` frame, sorted by one column."""

    label_edited = Signal(int, str)  # feature, the text typed (the browser saves it, then calls set_label)

    def __init__(self, headers: list[str], tips: list[str]):
        super().__init__()
        self._headers, self._tips = headers, tips
        self._columns: dict[str, np.ndarray] = {name: np.empty(0) for name in COLUMNS}
        self._order = np.empty(0, np.int64)  # view row -> table row
        self._row_of = np.empty(0, np.int64)  # table row -> view row
        self._sort: tuple[int, Qt.SortOrder] = (0, Qt.SortOrder.AscendingOrder)

    # --- what the view asks -----------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        name = COLUMNS[index.column()]
        value = self._columns[name][self._order[index.row()]]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return _text(name, value)
        if role == Qt.ItemDataRole.UserRole:
            return value if name in TEXT_COLUMNS else float(value)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._headers[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tips[section]
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        return flags | Qt.ItemFlag.ItemIsEditable if index.column() == LABEL_COLUMN else flags

    def setData(self, index: QModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or index.column() != LABEL_COLUMN:
            return False
        self.label_edited.emit(self.feature_at(index.row()), str(value))
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort = (column, order)
        self._relayout()

    # --- what the browser asks and gives ----------------------------------------------------------
    @property
    def features(self) -> np.ndarray:
        """The features, in table (not view) order."""
        return self._columns["feature"]

    def column(self, name: str) -> np.ndarray:
        """A column in table order."""
        return self._columns[name]

    def feature_at(self, row: int) -> int:
        return int(self._columns["feature"][self._order[row]])

    def row_of(self, feature: int) -> int:
        """The view row of ``feature`` (StopIteration when the table does not list it)."""
        found = np.flatnonzero(self._columns["feature"] == feature)
        if not len(found):
            raise StopIteration(feature)
        return int(self._row_of[found[0]])

    def features_in_view_order(self) -> np.ndarray:
        return self._columns["feature"][self._order]

    def set_table(self, table: pd.DataFrame) -> bool:
        """Show this frame; True when its features differ from those shown (a reset: selection dropped)."""
        columns = {name: table[name].to_numpy() for name in COLUMNS}
        columns["feature"] = columns["feature"].astype(np.int64)
        if np.array_equal(columns["feature"], self._columns["feature"]):
            self._columns = columns
            self._relayout()
            return False
        self.beginResetModel()
        self._columns = columns
        self._order = self._sorted()
        self._row_of = _inverse(self._order)
        self.endResetModel()
        return True

    def set_label(self, feature: int, label: str) -> None:
        """Change one label cell (after the browser saved it)."""
        found = np.flatnonzero(self._columns["feature"] == feature)
        if len(found):
            self._columns["label"] = self._columns["label"].copy()
            self._columns["label"][found[0]] = label
            row = int(self._row_of[found[0]])
            self.dataChanged.emit(self.index(row, LABEL_COLUMN), self.index(row, LABEL_COLUMN))

    # --- sorting ---------------------------------------------------------------------------------
    def _sorted(self) -> np.ndarray:
        column, order = self._sort
        name = COLUMNS[column]
        values = self._columns[name]
        if name in TEXT_COLUMNS:
            keys = np.char.lower(values.astype(str))
        else:  # NaN (not known yet) sorts lowest, as before any value
            keys = np.nan_to_num(values.astype(np.float64), nan=-np.inf)
        ascending = np.argsort(keys, kind="stable")
        return ascending if order == Qt.SortOrder.AscendingOrder else ascending[::-1].copy()

    def _relayout(self) -> None:
        """Re-sort in place: the selection and hidden rows follow their features (persistent indices)."""
        self.layoutAboutToBeChanged.emit([], QAbstractTableModel.LayoutChangeHint.VerticalSortHint)
        order = self._sorted()
        row_of = _inverse(order)
        before = self.persistentIndexList()
        after = [
            self.index(int(row_of[self._order[index.row()]]), index.column()) if index.isValid() else index
            for index in before
        ]
        self._order, self._row_of = order, row_of
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit([], QAbstractTableModel.LayoutChangeHint.VerticalSortHint)


def _inverse(order: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse


def _text(name: str, value) -> str:
    if name == "feature":
        return feature_name(int(value))
    if name in TEXT_COLUMNS:
        return str(value)
    return "" if np.isnan(value) else f"{value:.3g}"
