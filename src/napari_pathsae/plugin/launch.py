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
#: Window (and virtual display) size: a full-HD screen.
WINDOW_PX = (1920, 1080)
#: The demo gives up (with its panel's last status) after this long.
DEMO_TIMEOUT_S = 600


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

    with Display(visible=False, size=WINDOW_PX):
        yield


def _settle(rounds: int = 20) -> None:
    """Let queued paints and layouts run before a screenshot."""
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()


def _wait(condition, timeout_s: float) -> bool:
    """Run the event loop until ``condition()`` holds; False after ``timeout_s``."""
    import time

    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        QApplication.processEvents()
        time.sleep(0.02)
    return True


def _capture(viewer, screenshot: Path) -> Path:
    _settle()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
    return screenshot


def run_demo(screenshot: Path | None = None) -> Path | None:
    """napari with every panel docked, running the main job on the embedded sample (see plugin/demo.py).

    With ``screenshot`` (or when no display exists) the window is captured once the features are
    painted and the view computed, then closed; otherwise napari runs until the user closes it.
    """
    from .demo import Demo, check_sample

    check_sample()
    headless = not has_display()
    if headless and screenshot is None:
        screenshot = Path("pathsae-screenshot.png")
    with display_for(headless):
        import napari

        viewer = napari.Viewer(title="napari-pathsae demo", show=True)
        viewer.window.resize(*WINDOW_PX)
        demo = Demo(viewer)
        demo.start()
        if screenshot is None:
            napari.run()
            return None
        try:
            model = demo.panels["Model and inference"]
            if not _wait(lambda: demo.done or model.last_error, DEMO_TIMEOUT_S) or model.last_error:
                status = model.status.value
                if model.last_error:
                    raise PathsaeError(f"the demo stopped: {status}")
                raise PathsaeError(f"the demo did not finish in {DEMO_TIMEOUT_S} s (last status: {status})")
            worker = demo.state.worker
            _wait(lambda: worker.pending == 0, 120)
            _wait(lambda: demo.state.painter.settled, 60)  # the features' layers and legends, one per turn
            demo.state.painter.refresh_now()
            return _capture(viewer, screenshot)
        finally:
            viewer.window.close()  # with its layers in place: the exploration is saved beside the store


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
        viewer.window.resize(*WINDOW_PX)
        viewer.reset_view()
        if screenshot is None:
            napari.run()
            return None
        shot = _capture(viewer, screenshot)
        viewer.close()
        return shot
