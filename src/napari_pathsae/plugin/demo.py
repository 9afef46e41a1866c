"""`pathsae demo`: the main job on the embedded sample, driven through the real panels.

Opens the CC0 skin slide, docks every panel, loads the encoder (a ViT-S with random weights: no
model hub here, and the panels say so), computes the slide, trains an SAE from the Model panel at
its defaults and paints three features that each mark a part of the tissue, with their legends.
The store and SAE are cached, so the second run starts from them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import PathsaeError
from .sample_data import SKIN_SLIDE

#: Features painted at the end: the most active of those that mark a part of the tissue.
PAINTED = 3
#: ... a part: active in this share of the computed tiles (a feature active nearly everywhere hides the tissue).
MARKING_SHARE = (0.02, 0.25)
#: ... and apart from each other: at most this overlap (tiles where both are active over tiles where either is).
MAX_OVERLAP = 0.25
DEMO_ENCODER = "vit_small_patch16_224"
#: Tiles of 56 µm: the 1.1 x 1.5 mm sample gives about 200 tissue tiles instead of 54 at 112 µm.
DEMO_TILE_UM = 56.0
#: Panels docked under the feature browser as tabs, in this order (the first is shown at the end).
TABBED = ["Feature dashboard", "Model and inference", "Spots and genes", "Concepts", "Region export",
          "Open slide / Visium"]  # fmt: skip
#: Heights of the feature browser and of the tabs below it (the dashboard's): rows of features above, the top
#: tiles and histogram of the current one below.
BROWSER_DASHBOARD_PX = [330, 620]


#: The cache's name: changed whenever stores of an earlier version are refused (2: edge-padded tile grids).
DEMO_CACHE = "demo-2"


def demo_folder() -> Path:
    """Where the demo keeps its store and SAE (the user's cache)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "napari-pathsae" / DEMO_CACHE


def marking_features(activations: np.ndarray, n: int = PAINTED) -> list[int]:
    """``n`` features to paint: by total activation, those active in MARKING_SHARE of the tiles and overlapping
    no feature already taken by more than MAX_OVERLAP; the most active others fill any places left."""
    values = np.nan_to_num(activations)
    active = values > 0
    share = active.mean(axis=0)
    by_total = [int(f) for f in np.argsort(-values.sum(axis=0), kind="stable")]
    low, high = MARKING_SHARE

    def apart(f: int, g: int) -> bool:
        either = np.count_nonzero(active[:, f] | active[:, g])
        return np.count_nonzero(active[:, f] & active[:, g]) <= MAX_OVERLAP * either

    taken: list[int] = []
    for f in by_total:
        if len(taken) < n and low <= share[f] <= high and all(apart(f, g) for g in taken):
            taken.append(f)
    return taken + [f for f in by_total if f not in taken][: n - len(taken)]


class Demo:
    """The demo's steps, each started when the previous one's result reaches the GUI thread."""

    def __init__(self, viewer, on_done: Callable[[], None] | None = None, folder: Path | None = None):
        from .state import state_for

        self.viewer, self.on_done = viewer, on_done
        self.folder = folder or demo_folder()
        self.state = state_for(viewer)
        self.docks, self.panels = dock_all_panels(viewer)
        self.done = False
        self.failed: str | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        opener = self.panels["Open slide / Visium"]
        opener.slide.value = SKIN_SLIDE
        opener.open(on_opened=self._opened)

    def _opened(self, _layers: list) -> None:
        model = self.panels["Model and inference"]
        model.encoder.value = DEMO_ENCODER
        model.tile_um.value = DEMO_TILE_UM
        model.store.value = self.folder / "skin.zarr"
        sae = self.folder / "sae"
        model.sae_dir.value = sae if sae.is_dir() else None
        model.train_output.value = None
        self.raise_panel("Model and inference")
        self.state.session_changed.connect(self._session_ready)
        model.load()

    def raise_panel(self, name: str) -> None:
        self.docks[name].raise_()

    def _session_ready(self) -> None:
        session = self.state.session
        model = self.panels["Model and inference"]
        if session is None:  # unloaded: the user removed the slide
            self.state.session_changed.disconnect(self._session_ready)
            return
        if not session.n_features:  # first run: compute the slide, then train from the panel
            model.train_output.value = self.folder / "sae"
            model.train()
            return
        self.state.session_changed.disconnect(self._session_ready)
        browser = self.panels["Feature browser"]
        browser.refresh_now()
        if not self.state.selected:  # a restored exploration keeps the user's own selection
            browser.select_features(marking_features(session.activations))
        self.raise_panel("Feature dashboard")
        self.label_the_encoder(session)
        self.done = True
        if self.on_done is not None:
            self.on_done()

    def label_the_encoder(self, session) -> None:
        """The canvas says what the demo's model is: the Model panel's notice sits in a tab."""
        overlay = self.viewer.text_overlay
        weights = "RANDOM weights" if session.encoder.random_init else "pretrained weights"
        spec = session.encoder.spec
        overlay.text = f"demo: {spec}, {weights}; SAE trained on this sample (mechanics, not biology)"
        overlay.position, overlay.font_size, overlay.visible = "bottom_left", 9, True

    def fail(self, message: str) -> None:
        self.failed = message


def dock_all_panels(viewer) -> tuple[dict, dict]:
    """Every panel of the plugin docked on the right: the feature browser above, the others as tabs below."""
    from .launch import PLUGIN

    docks, panels = {}, {}
    for name in ["Feature browser", *TABBED]:
        docks[name], shell = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=name in TABBED[1:])
        panels[name] = shell.panel_now()
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window  # the browser's table and the dashboard's tiles and histogram both show
    window.resizeDocks([docks["Feature browser"], docks[TABBED[0]]], BROWSER_DASHBOARD_PX, Qt.Orientation.Vertical)
    return docks, panels


def check_sample() -> None:
    if not SKIN_SLIDE.is_file():
        raise PathsaeError(f"the embedded sample is missing ({SKIN_SLIDE}); reinstall napari-pathsae")
