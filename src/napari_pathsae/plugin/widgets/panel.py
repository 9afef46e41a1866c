"""What every panel shares: one status line, one error guard, one background runner.

A panel (a magicgui Container or a QWidget) mixes in ``Panel`` and keeps its status widget in
``self.status``; user errors then read the same everywhere: the status line and one notification.
"""

from __future__ import annotations

from collections.abc import Callable

from magicgui.widgets import Label

from ..background import run_in_background
from ..notify import report_error


def status_label(tooltip: str) -> Label:
    """A word-wrapped status line for a magicgui panel."""
    label = Label(value="", tooltip=tooltip)
    label.native.setWordWrap(True)
    return label


class Panel:
    """Mixin: ``say`` a line, ``fail`` with a user error, ``in_background`` runs slow work off the UI thread."""

    status: object  # a magicgui Label or a QLabel

    def say(self, text: str) -> None:
        if hasattr(self.status, "setText"):
            self.status.setText(text)
        else:
            self.status.value = text

    def fail(self, exc: Exception) -> None:
        """The error on the status line and as one notification (never a traceback dialog)."""
        self.say(str(exc))
        report_error(exc)

    def in_background(self, function: Callable, *args, on_done: Callable | None = None, on_error=None, **kwargs):
        """``function`` on a worker thread; its error is notified once and said on the status line."""

        def failed(exc: Exception) -> None:
            self.say(str(exc))
            if on_error is not None:
                on_error(exc)

        return run_in_background(function, *args, on_done=on_done, on_error=failed, **kwargs)
