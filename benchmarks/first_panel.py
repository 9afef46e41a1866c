"""A panel picked first in the Plugins menu of a fresh napari (Xvfb): the click, the wait until the panel is built,
and the longest UI-thread stall meanwhile; beside the same panel built as before (its module imported on the UI
thread). Each measurement runs in a fresh interpreter, so no library is imported yet.

usage: python benchmarks/first_panel.py [--panels NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from measure import save

PANELS = ("Open slide / Visium", "Model and inference", "Feature browser", "Feature dashboard")

#: One measurement in a fresh interpreter; argv: the panel's menu name, "plugins_menu" or "ui_thread_import".
CHILD = """
import importlib, json, sys, time
import napari
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

name, way = sys.argv[1], sys.argv[2]
viewer = napari.Viewer(show=True)
viewer.window._qt_window.resize(1600, 1000)
settle = time.perf_counter() + 1.0
while time.perf_counter() < settle:
    QApplication.processEvents()
gaps, last = [], [time.perf_counter()]

def beat():
    now = time.perf_counter()
    gaps.append(now - last[0])
    last[0] = now

heartbeat = QTimer()
heartbeat.timeout.connect(beat)
heartbeat.start(10)
turned, start = [], time.perf_counter()
if way == "plugins_menu":
    _, shell = viewer.window.add_plugin_dock_widget("napari-pathsae", name)
else:  # as before the shell: the panel's module imported and the panel built in the click
    from napari.plugins._npe2 import get_widget_contribution

    module, cls = get_widget_contribution("napari-pathsae", name)[0].PANEL.split(":")
    panel = getattr(importlib.import_module(module), cls)(viewer)
    viewer.window.add_dock_widget(panel, name=name)
    shell = type("Built", (), {"panel": panel})
QTimer.singleShot(0, lambda: turned.append(time.perf_counter()))
loop, poll = QEventLoop(), QTimer()
poll.timeout.connect(lambda: turned and shell.panel is not None and loop.quit())
poll.start(10)
loop.exec()
ready = time.perf_counter()
print(json.dumps({"click_ms": round((turned[0] - start) * 1000, 1), "ready_s": round(ready - start, 2),
                  "longest_stall_ms": round(max(gaps, default=0) * 1000, 1)}))
viewer.close()
"""


def measure(name: str, way: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, name, way], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{name} ({way}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(panels: tuple[str, ...] = PANELS) -> dict:
    """Per panel: through the Plugins menu (the shell) and as before (its module imported on the UI thread)."""
    return {name: {way: measure(name, way) for way in ("plugins_menu", "ui_thread_import")} for name in panels}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", nargs="+", default=list(PANELS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save("first_panel", {"panels": main(tuple(args.panels))}, args.out)
