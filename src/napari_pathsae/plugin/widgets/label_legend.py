"""A legend table for Labels layers (argmax map, concepts): one row per label, its colour as the swatch."""

from __future__ import annotations

from qtpy.QtGui import QColor
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem


def legend_table(headers: list[str], tooltips: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    for column, tip in enumerate(tooltips):
        table.horizontalHeaderItem(column).setToolTip(tip)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    return table


def fill_legend(table: QTableWidget, layer, rows: list[tuple[int, list[str]]]) -> None:
    """Row per (label, cells): the first cell is coloured as ``layer`` paints ``label``."""
    table.setRowCount(len(rows))
    for row, (label, cells) in enumerate(rows):
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if column == 0:
                r, g, b, _ = map(float, layer.get_color(label))
                item.setBackground(QColor.fromRgbF(r, g, b))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # text readable on its swatch
                item.setForeground(QColor("white" if dark else "black"))
            table.setItem(row, column, item)
    table.resizeColumnsToContents()
