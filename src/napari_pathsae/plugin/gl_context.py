"""Removing a layer must not crash napari: its canvas's GL context is made current first.

napari 0.9 deletes a removed layer's GL objects at once (``context.finish()`` in its scene-graph
clean-up), outside a paint event. When the layer ever showed an overlay (a name, a colorbar, a
bounding box) and another layer remains, those deletions ran against whatever GL context was
current, and the next frame segfaulted (napari 0.9.2, vispy 0.17, PyQt6 6.11, Mesa; reproduced
with a bare viewer: add an image, show its name overlay, remove it, pan). Making the canvas's
context current when a layer is about to go removes the crash (tests/test_gl_context.py).
"""

from __future__ import annotations

import contextlib
import weakref

from qtpy.QtWidgets import QOpenGLWidget

_GUARDED: weakref.WeakSet = weakref.WeakSet()


def canvas_gl_widget(viewer) -> QOpenGLWidget | None:
    """The viewer's OpenGL canvas widget (None without a window)."""
    from .state import main_window

    window = main_window(viewer)
    return window.findChild(QOpenGLWidget) if window is not None else None


def guard_layer_removal(viewer) -> None:
    """Make the canvas's GL context current whenever a layer is about to be removed (once per viewer)."""
    if viewer in _GUARDED:
        return
    _GUARDED.add(viewer)
    ref = weakref.ref(viewer)

    def make_current(_event=None) -> None:
        viewer = ref()
        widget = canvas_gl_widget(viewer) if viewer is not None else None
        with contextlib.suppress(RuntimeError):  # the window is being deleted
            if widget is not None and widget.isValid():
                widget.makeCurrent()

    viewer.layers.events.removing.connect(make_current)
