"""The shape of the house (../shared/ARCHITECTURE.md), read from the import graph rather than by hand.

Imports run one way: io ← data ← models ← analysis ← engine ← report ← plugin ← cli; imports inside
functions count. Only plugin/ touches napari, Qt or magicgui; analyses write no files.
"""

from __future__ import annotations

import re
from pathlib import Path

import grimp
import pytest

import napari_pathsae

PACKAGE = "napari_pathsae"
#: Highest first: a module may import from its own layer and the layers below it, never above.
LAYERS = ["cli", "plugin", "report", "engine", "analysis", "models", "data", "io"]
#: Shared by every layer (they import nothing of the package but each other).
BASE = {"errors", "names", "_version"}
GUI_PACKAGES = {"napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "superqt"}
SOURCE = Path(napari_pathsae.__file__).parent


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, include_external_packages=True)


def _routes(dependencies) -> list[str]:
    return sorted(f"{r.heads} → {r.tails}" for d in dependencies for r in d.routes)


def test_imports_run_one_way(graph):
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS, containers={PACKAGE})
    assert not illegal, "imports running back up the layers:\n" + "\n".join(_routes(illegal))


def test_every_module_lives_in_a_layer_or_the_base(graph):
    top = {m.split(".")[1] for m in graph.find_children(PACKAGE) for m in [m]}
    assert top <= set(LAYERS) | BASE, f"modules outside the layout: {sorted(top - set(LAYERS) - BASE)}"


def test_the_base_imports_nothing_of_the_package_but_itself(graph):
    for name in BASE:
        module = f"{PACKAGE}.{name}"
        if module not in graph.modules:
            continue
        inside = {m for m in graph.find_modules_directly_imported_by(module) if m.startswith(PACKAGE)}
        assert inside <= {f"{PACKAGE}.{b}" for b in BASE}, f"{module} imports {sorted(inside)}"


def test_no_module_imports_the_package_root(graph):
    """The root is the public API; a module importing it would import every layer."""
    importers = graph.find_modules_that_directly_import(PACKAGE)
    assert not importers, f"modules importing {PACKAGE} itself: {sorted(importers)}"


def test_only_the_plugin_touches_napari_qt_or_magicgui(graph):
    offenders = []
    for module in graph.modules:
        if not module.startswith(PACKAGE + ".") or module.startswith(f"{PACKAGE}.plugin"):
            continue
        gui = {m for m in graph.find_modules_directly_imported_by(module) if m.split(".")[0] in GUI_PACKAGES}
        # the CLI may start the viewer, but only through plugin/
        offenders += [f"{module} → {m}" for m in gui]
    assert not offenders, "\n".join(offenders)


WRITES = re.compile(r"\.to_csv\(|\.to_parquet\(|savefig\(|write_text\(|write_bytes\(|atomic_(output|folder)\(|np\.save")


def test_analyses_write_no_files():
    """Analyses take opened objects and return results; report/ writes."""
    writers = [
        f"{path.name}:{n}"
        for path in sorted((SOURCE / "analysis").glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if WRITES.search(line)
    ]
    assert not writers, f"analysis modules writing files: {writers}"


def test_every_panel_is_in_the_manifest_and_shares_the_panel_base():
    """A new panel is one file in plugin/widgets/ plus its napari.yaml entry; this test finds both."""
    import importlib

    import yaml
    from magicgui.widgets import Container
    from qtpy.QtWidgets import QWidget

    from napari_pathsae.plugin.widgets.docks import PanelShell
    from napari_pathsae.plugin.widgets.panel import Panel

    manifest = yaml.safe_load((SOURCE.parents[1] / "napari.yaml").read_text())
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    listed = set()
    for widget in manifest["contributions"]["widgets"]:  # napari docks a shell that builds the panel it names
        module, name = commands[widget["command"]].split(":")
        dock = getattr(importlib.import_module(module), name)
        assert issubclass(dock, PanelShell), name
        listed.add(dock.PANEL)
    found = set()
    for path in sorted(p for p in (SOURCE / "plugin" / "widgets").glob("*.py") if p.stem != "panel"):
        module = importlib.import_module(f"{PACKAGE}.plugin.widgets.{path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__ and issubclass(value, Panel):
                assert issubclass(value, (Container, QWidget)), name
                found.add(f"{module.__name__}:{name}")
    assert found == listed, (
        f"panels not in napari.yaml: {sorted(found - listed)}; listed, not panels: {sorted(listed - found)}"
    )
