"""User errors in the viewer: one notification line, never a traceback dialog."""

from __future__ import annotations

from napari.utils.notifications import show_error


def report_error(exc: Exception) -> None:
    show_error(str(exc) or type(exc).__name__)
