"""What napari docks when a panel is picked in the Plugins menu: a shell that shows at once, imports the panel's
module on a thread, then builds the panel inside itself, in a scroll area.

A panel's module pulls in torch, dask, anndata or matplotlib: 1-3.4 s on a fresh napari (first_panel.py), which
the menu click used to spend on the UI thread. This file imports only Qt, so the click returns at once.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import TYPE_CHECKING

from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from ..gc_freeze import freeze_imported_libraries
from ..notify import report_error
from .dock_heights import fit_column

if TYPE_CHECKING:
    import napari.viewer

#: How often the shell looks whether its panel's module is imported (a timer on the UI thread, no signal
#: from the thread: closing napari mid-import then finds no deleted Qt object).
POLL_MS = 50
#: Qt's largest widget size (QWIDGETSIZE_MAX, not exported by PyQt6).
QWIDGETSIZE_MAX = (1 << 24) - 1
#: Vertical size policies of a widget that takes the dock's free height (napari adds no stretch below it).
WANTS_HEIGHT = (QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding, QSizePolicy.Policy.Ignored)
#: The waiting line's width: napari's dock title ("Model and inference (napari-pathsae)") and its buttons fit
#: uncut (a bare line let napari elide the title to "Model and inference (napa").
WAITING_WIDTH_PX = 360


def wants_height(widget: QWidget) -> bool:
    """napari's rule for a docked widget: it or a widget directly in its layout takes free height (napari
    stretches the others at the bottom)."""
    layout = widget.layout()
    children = [layout.itemAt(i).widget() for i in range(layout.count())] if layout is not None else []
    return any(w is not None and w.sizePolicy().verticalPolicy() in WANTS_HEIGHT for w in [widget, *children])


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a scroll area that scrolls up and down: docked with others, a panel scrolls rather than
    grow napari past the screen (seven panels stacked made the window 2106 px high on a 1080 px screen)."""
    scroll = FullHeightScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(widget)
    widget.installEventFilter(FitWidth(scroll))  # parented: lives as long as the scroll area
    return scroll


class FullHeightScroll(QScrollArea):
    """A scroll area that asks for its widget's whole height: Qt's asks for 24 lines at most (336 px), so the
    Model panel's form showed 336 px of its 629 in a dock twice that high, blank below."""

    def sizeHint(self) -> QSize:
        hint, widget = super().sizeHint(), self.widget()
        if widget is None:
            return hint
        return QSize(hint.width(), whole_height(widget, self.viewport().width()) + 2 * self.frameWidth())


def _status_footer(panel) -> QWidget | None:
    """A magicgui form's status line, taken out of its scroll area to sit below it: what a click did stays in
    view however far the form scrolls (a journey found the Model panel's "trained …" line cut by the dock's
    edge and the region export's line out of sight). None for other panels (their status is in their table)."""
    status = getattr(panel, "status", None)
    if status is None or not hasattr(panel, "remove") or status not in panel:
        return None
    label = status.native
    label.setParent(None)  # out of its labelled row first: the row is deleted with its children
    panel.remove(status)
    label.setContentsMargins(4, 2, 4, 4)
    # as wide as the dock, as high as its wrapped lines there (magicgui's fixed size wrapped it at its own width)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return label


def fit_footer(footer: QLabel) -> None:
    """No blank line under the form while the status says nothing (kept shown, 0 px high: a hidden label's
    new text would ask for no layout, and magicgui's Label has no changed signal)."""
    footer.setMaximumHeight(QWIDGETSIZE_MAX if footer.text() else 0)


def whole_height(widget: QWidget, width: int) -> int:
    """The height ``widget`` needs at ``width``: its wrapped status lines included (a size hint wraps them at
    a width of Qt's choosing)."""
    fitted = widget.heightForWidth(width) if widget.hasHeightForWidth() else -1
    return fitted if fitted > 0 else widget.sizeHint().height()


class FitWidth(QObject):
    """Keeps a scroll area as wide as its widget and a scroll bar, whatever napari's style does to their widths:
    nothing is cut off at the right (seen on the Model panel before this filter)."""

    def eventFilter(self, _watched, event) -> bool:
        if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show, QEvent.Type.StyleChange):
            scroll = self.parent()
            fields = scroll.widget().minimumSizeHint().width()
            scroll.setMinimumWidth(fields + scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth())
        return False


def fully_imported(module_name: str) -> bool:
    """True when ``module_name`` is imported and done (not half-way through on another thread)."""
    module = sys.modules.get(module_name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


class ModuleImport:
    """A module imported on a plain thread; only this object is shared with it (never a Qt object)."""

    def __init__(self, module_name: str):
        self.module_name, self.error = module_name, None
        self.done = threading.Event()
        threading.Thread(target=self._run, name=f"pathsae-import-{module_name}").start()

    def _run(self) -> None:
        try:
            importlib.import_module(self.module_name)
        except BaseException as exc:  # reported on the UI thread by the shell
            self.error = exc
        finally:
            self.done.set()


class PanelShell(QWidget):
    """A dock that holds its panel (``self.panel``, in ``self.scroll``) once built, on a later event-loop turn
    than the click (building the Model panel's 78 widgets and docking it took 66-220 ms in one turn); until
    then, a line counting the seconds of the import (a static line: napari filters every Qt event in Python,
    so an animated busy bar slowed the import thread 1.6-2x)."""

    PANEL = ""  # "module:Class" of the panel it holds
    TITLE = ""
    FREEZES_LIBRARIES = False  # the Model panel: no session exists before it (gc_freeze.py)
    takes_height: bool | None = None  # once built: a table that takes the free height (True) or a form (False)
    footer: QWidget | None = None  # once built: the form's status line, shown below its scroll area

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self.panel = None
        self._module_name, self._class_name = self.PANEL.split(":")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)  # (the status line's margins space it from the form)
        imported = fully_imported(self._module_name)  # then built on the next turn: the click returns once docked
        self._waiting = QLabel(f"opening {self.TITLE}" + ("…" if imported else ": importing its libraries…"))
        self._waiting.setWordWrap(True)
        self._waiting.setMinimumWidth(WAITING_WIDTH_PX)
        self._waiting.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._layout.addWidget(self._waiting)
        self._started = time.monotonic()
        self._import = None if imported else ModuleImport(self._module_name)
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._check_import)
        self._poll.start(0 if imported else POLL_MS)

    def _check_import(self) -> None:
        if self._import is not None and not self._import.done.is_set():
            seconds = int(time.monotonic() - self._started)
            self._waiting.setText(f"opening {self.TITLE}: importing its libraries… {seconds} s")
            return
        self._poll.stop()
        if self._import is not None and self._import.error is not None:
            self._failed(self._import.error)
        else:
            self._build()

    def panel_now(self):
        """The panel, imported and built on this thread if it is not yet (scripts and tests)."""
        if self.panel is None:
            importlib.import_module(self._module_name)
            self._build(fit=False)  # (the script arranges its docks itself)
        return self.panel

    def _build(self, fit: bool = True) -> None:
        """The panel in its scroll area; with ``fit``, the dock column is shared again once it has landed
        (dock_heights.py: each form shows its fields)."""
        if self.panel is not None:
            return
        if self.FREEZES_LIBRARIES:
            freeze_imported_libraries()
        try:
            panel = getattr(sys.modules[self._module_name], self._class_name)(self._viewer)
        except Exception as exc:
            self._failed(exc)
            return
        self._layout.removeWidget(self._waiting)  # (a hidden label's item would still take half the height)
        self._waiting.deleteLater()
        widget = getattr(panel, "native", panel)  # magicgui panels dock their Qt widget
        self.scroll = scrolling(widget)
        self._layout.insertWidget(0, self.scroll)
        self.footer = _status_footer(panel)
        if self.footer is not None:
            self._layout.insertWidget(1, self.footer)
            fit_footer(self.footer)
        self.takes_height = wants_height(widget)
        if self.takes_height:  # a table, a list: it takes the dock's height, as it would docked directly
            self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)  # napari adds no stretch
            self._drop_stretch()  # (or drops the one it added below the waiting line)
        else:  # a form: its fields at the top, napari's stretch below (as docked directly)
            self.scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.panel = panel
        if fit:
            self._fit_soon = QTimer(self)  # next turn: napari has docked this shell by then (a child: dies with it)
            self._fit_soon.setSingleShot(True)
            self._fit_soon.timeout.connect(self._fit_column)
            self._fit_soon.start(0)
            self._fitted_height = self.panel_height()
            widget.installEventFilter(self)  # a form that grows (a status line) is given the height again
            self.installEventFilter(self)  # (the status line is in the shell, below the scroll area)

    def panel_height(self) -> int:
        """The height the built panel needs to show whole: its form, then its status line."""
        height = self.scroll.sizeHint().height()
        if self.footer is not None and self.footer.text():
            height += whole_height(self.footer, self.scroll.width())
        return height

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest and watched in (self.scroll.widget(), self):
            if self.footer is not None:
                fit_footer(self.footer)
            height = self.panel_height()
            if height > self._fitted_height:
                self._fitted_height = height
                self.scroll.updateGeometry()  # its size hint follows its widget's (Qt's layout caches it)
                self._fit_soon.start(0)
        return False

    def _fit_column(self) -> None:
        dock = self.parentWidget()
        if isinstance(dock, QDockWidget):
            fit_column(dock)

    def _drop_stretch(self) -> None:
        for index in reversed(range(self._layout.count())):
            if self._layout.itemAt(index).spacerItem() is not None:
                self._layout.takeAt(index)

    def _failed(self, exc: BaseException) -> None:
        self._waiting.setText(f"{self.TITLE} could not open: {exc}")
        report_error(exc)


def shell_for(panel: str, title: str, freezes_libraries: bool = False) -> type[PanelShell]:
    """The dock class napari.yaml names for ``panel`` ("module:Class"); napari passes it the viewer."""
    attributes = {"PANEL": panel, "TITLE": title, "FREEZES_LIBRARIES": freezes_libraries, "__module__": __name__}
    return type(f"{panel.rsplit(':', 1)[1]}Dock", (PanelShell,), attributes)


_WIDGETS = "napari_pathsae.plugin.widgets."
OpenSampleDock = shell_for(_WIDGETS + "open_sample:OpenSampleWidget", "the Open panel")
ModelPanelDock = shell_for(_WIDGETS + "model_panel:ModelPanel", "the Model panel", freezes_libraries=True)
FeatureBrowserDock = shell_for(_WIDGETS + "feature_browser:FeatureBrowser", "the feature browser")
FeatureDashboardDock = shell_for(_WIDGETS + "feature_dashboard:FeatureDashboard", "the feature dashboard")
SpotsPanelDock = shell_for(_WIDGETS + "spots_panel:SpotsPanel", "the spots panel")
ConceptsPanelDock = shell_for(_WIDGETS + "concepts_panel:ConceptsPanel", "the concepts panel")
RegionExportDock = shell_for(_WIDGETS + "region_export:RegionExport", "the region export")
CohortPanelDock = shell_for(_WIDGETS + "cohort_panel:CohortPanel", "the cohort panel")
