"""Heights of the panels stacked in one dock column: each form shows its fields, tables take the rest.

Qt shares a dock column's height by its own rules: the Model panel docked first, then the Open panel and
the feature browser, was left two fields high (67 px for 629 px of fields) while the Open panel kept 70 px
of blank space under its button. As a panel lands, and when a form grows (a status line shows), the column
is shared again: each form gets its fields' height (at most FORM_SHARE of the column), tables and other
panels that take height share the rest, and docks of napari or other plugins keep theirs. A column with
tabs or side-by-side docks was arranged by someone (the user, ``pathsae demo``): it is left alone.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QDockWidget, QMainWindow, QScrollArea

#: The most of a column's height one form is given (its fields scroll beyond that).
FORM_SHARE = 0.45
#: The least a panel that takes height (a table) keeps, whatever its own least height.
TABLE_MIN_PX = 160


def column_of(dock: QDockWidget) -> list[QDockWidget]:
    """The docks shown in ``dock``'s dock area, top to bottom (empty when it is floating or not docked)."""
    window = dock.parentWidget()
    if not isinstance(window, QMainWindow) or dock.isFloating():
        return []
    area = window.dockWidgetArea(dock)
    docks = [
        other
        for other in window.findChildren(QDockWidget)
        if other.parentWidget() is window
        and other.isVisible()
        and not other.isFloating()
        and window.dockWidgetArea(other) == area
    ]
    return sorted(docks, key=lambda other: other.geometry().y())


def _whole_height(dock: QDockWidget, takes_height: bool) -> int | None:
    """``dock``'s height with its panel's whole size hint (docks.FullHeightScroll), when the panel is ours,
    built, and a table (``takes_height``) or a form; else None."""
    shell = dock.widget()
    scroll = getattr(shell, "scroll", None)
    if not isinstance(scroll, QScrollArea) or getattr(shell, "takes_height", None) is not takes_height:
        return None
    return dock.height() - shell.height() + shell.panel_height()  # its title bar, then the panel


def form_height(dock: QDockWidget) -> int | None:
    """The height ``dock`` needs to show all its fields, or None when it is not one of our forms (a table,
    a panel still importing, a dock of napari or another plugin)."""
    return _whole_height(dock, takes_height=False)


def table_minimum(dock: QDockWidget) -> int | None:
    """The height below which ``dock``'s table panel would scroll its own buttons away (None: not a table):
    its size hint (its least size hint is a few pixels short once a scroll bar takes width from it)."""
    height = _whole_height(dock, takes_height=True)
    return None if height is None else max(TABLE_MIN_PX, height)


def shared_heights(heights: list[int], forms: list[int | None], tables: list[int | None]) -> list[int] | None:
    """New heights for a column (top to bottom), or None when every form already shows its fields.

    ``heights``: now; ``forms``: each form's full height; ``tables``: each table panel's least height (None
    where the dock is not one). Other docks keep their height. While a table is there, a form or a table
    gets FORM_SHARE of the column at most, and tables half of it at most together. Tables keep their least
    height; in the rest, small forms are shown whole and the largest share what is left; tables share the
    remainder."""
    total = sum(heights)
    cap = int(FORM_SHARE * total) if any(least is not None for least in tables) else total
    tables = [None if least is None else min(least, cap) for least in tables]
    table_least = sum(least for least in tables if least is not None)
    if table_least > total // 2:  # a crowded column: tables keep half of it at most, forms the rest
        tables = [None if least is None else least * (total // 2) // table_least for least in tables]
        table_least = sum(least for least in tables if least is not None)
    kept = sum(now for now, form, table in zip(heights, forms, tables, strict=True) if form is None and table is None)
    wanted: list[int | None] = [None if form is None else min(form, cap) for form in forms]
    if all(need is None or now >= need for now, need in zip(heights, wanted, strict=True)):
        return None
    room = max(total - kept - table_least, 0)
    order = sorted((need, index) for index, need in enumerate(wanted) if need is not None)
    for left, (need, index) in enumerate(order):
        wanted[index] = min(need, room // (len(order) - left))  # the smallest first: whole if they fit
        room -= wanted[index]
    tables_count = sum(least is not None for least in tables)
    free = total - kept - sum(need for need in wanted if need is not None)
    return [
        need if need is not None else (free // tables_count if table is not None else now)
        for now, need, table in zip(heights, wanted, tables, strict=True)
    ]


def fit_column(dock: QDockWidget) -> None:
    """Share ``dock``'s column again so that each form shows its fields (see the module's docstring)."""
    docks = column_of(dock)
    window = dock.parentWidget()
    if len(docks) < 2 or any(window.tabifiedDockWidgets(other) for other in docks):
        return
    if len({other.geometry().x() for other in docks}) > 1:  # side by side: arranged by hand
        return
    heights = shared_heights(
        [other.height() for other in docks],
        [form_height(other) for other in docks],
        [table_minimum(other) for other in docks],
    )
    if heights is not None:
        window.resizeDocks(docks, heights, Qt.Orientation.Vertical)
