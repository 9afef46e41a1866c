"""User errors in the viewer: one notification line, never a traceback dialog."""

from __future__ import annotations

from napari.utils.notifications import show_error, show_info

from ..errors import Cancelled


def report_error(exc: Exception) -> None:
    """One notification line: information for a cancellation the user asked for, an error otherwise."""
    (show_info if isinstance(exc, Cancelled) else show_error)(str(exc) or type(exc).__name__)
