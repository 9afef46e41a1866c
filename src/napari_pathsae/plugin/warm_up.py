"""Work the user's first clicks would otherwise do on the UI thread, done once on a thread as the plugin opens."""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

#: torch, timm and the engine take 2-4 s to import, which the Model panel would spend on the UI thread as it is added.
ENGINE_MODULES = ("napari_pathsae.engine.session", "napari_pathsae.models.sae.train", "napari_pathsae.models.encoders")
_started = False


def warm_up_once() -> None:
    """Start the warm-up (once per process): the first panel made or the first slide opened calls it. A plain
    thread, not a Qt worker: it emits nothing, so closing napari mid-way finds no deleted Qt object (the
    interpreter waits the few seconds it has left)."""
    global _started
    if not _started:
        _started = True
        threading.Thread(target=warm_up, name="pathsae-warm-up").start()


def warm_up() -> None:
    import_engine()
    compile_region_drawing()


def import_engine() -> None:
    for name in ENGINE_MODULES:
        importlib.import_module(name)
    importlib.import_module("napari_pathsae.models.torch_compat").import_timm()


def compile_region_drawing() -> None:
    """Compile napari's Shapes triangulation (numba): on a fresh install the first region layer otherwise holds
    the UI thread while it compiles (4.7 s measured; viewer_responsiveness.py)."""
    try:  # a private napari module: a napari without it, or a failed compile, just compiles at the first region
        from napari.layers.shapes._accelerated_triangulate_dispatch import warmup_numba_cache

        warmup_numba_cache()
    except Exception:  # an optimisation only: logged, never a notification
        log.warning("pathsae: napari's Shapes warm-up failed; the first region layer will compile it", exc_info=True)
