"""Start napari with the plugin docked, on a real display or a virtual one (Xvfb) when headless."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import PathsaeError

PLUGIN = "napari-pathsae"
OPEN_PANEL = "Open slide / Visium"


def has_display() -> bool:
    """False on a Linux machine with neither X nor Wayland (servers, CI)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@contextmanager
def display_for(headless: bool) -> Iterator[None]:
    """A virtual X display for the duration when ``headless``; nothing otherwise."""
    if not headless:
        yield
        return
    if shutil.which("Xvfb") is None:
        raise PathsaeError("no display and no Xvfb: install Xvfb (apt-get install xvfb) or run with a display")
    from pyvirtualdisplay import Display

    with Display(visible=False, size=(1600, 1000)):
        yield


def _settle(viewer, rounds: int = 20) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()


def run_viewer(
    layers: list[tuple],
    sample: str | None = None,
    screenshot: Path | None = None,
) -> Path | None:
    """Open napari with the Open panel docked, ``layers`` added and ``sample`` loaded.

    With ``screenshot`` (or when no display exists) the window is captured to a PNG and
    closed; otherwise napari runs until the user closes it.
    """
    headless = not has_display()
    if headless and screenshot is None:
        screenshot = Path("pathsae-screenshot.png")
    with display_for(headless):
        import napari

        viewer = napari.Viewer(title="napari-pathsae", show=True)
        viewer.window.add_plugin_dock_widget(PLUGIN, OPEN_PANEL)
        if sample:
            viewer.open_sample(PLUGIN, sample)
        for data, kwargs, kind in layers:
            getattr(viewer, f"add_{kind}")(data, **kwargs)
        viewer.scale_bar.visible = True  # shows µm when the resolution is known
        viewer.window.resize(1400, 900)
        viewer.reset_view()
        if screenshot is None:
            napari.run()
            return None
        _settle(viewer)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
        viewer.close()
        return screenshot
