"""Keeps the imported libraries out of napari's garbage collections while features are painted.

napari runs a full garbage collection (``gc.collect``) for every layer it removes. With torch, timm, dask
and anndata imported, that walks some 800,000 objects: 0.4-0.6 s on the UI thread per layer (2-core
Xeon), so going from five painted features to one froze the window for about two seconds.
``gc.freeze`` taken just before the first Model panel is built moves everything alive then (the
libraries, napari) out of every later collection: a feature's layer is then removed in 110-170 ms.

Nothing frozen is ever collected, so the freeze is taken before any session exists (sessions come
from the Model panel) and given up for good (``gc.unfreeze``) before something alive then can become
garbage: a layer that no session made is removed (a slide read into memory), or the window closes.
"""

from __future__ import annotations

import gc

from ..names import LayerKind, layer_kind

#: Layers made from a session, so after the freeze: removing them never frees a frozen object.
MADE_AFTER_THE_FREEZE = (LayerKind.HEATMAP, LayerKind.HEATMAPS, LayerKind.PATCH_HEATMAP, LayerKind.CONCEPTS,
                         LayerKind.ARGMAX)  # fmt: skip

_taken = False  # once per process
_frozen = False


def freeze_imported_libraries() -> None:
    """Freeze what is alive now (the first call in a process only; call it before any session exists)."""
    global _taken, _frozen
    if not _taken:
        _taken = _frozen = True
        gc.freeze()


def thaw() -> None:
    """Give the freeze up for good: what was frozen is collected again as it becomes garbage."""
    global _frozen
    if _frozen:
        _frozen = False
        gc.unfreeze()


def thaw_before_removals(viewer) -> None:
    """Thaw as a layer that may predate the freeze is about to be removed from ``viewer`` (once per viewer)."""
    layers = viewer.layers

    def about_to_remove(event) -> None:
        if _frozen and layer_kind(layers[event.index]) not in MADE_AFTER_THE_FREEZE:
            thaw()

    layers.events.removing.connect(about_to_remove)
