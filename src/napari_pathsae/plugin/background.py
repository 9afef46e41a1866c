"""Run engine calls off the UI thread; their errors come back as one notification line."""

from __future__ import annotations

import logging
from collections.abc import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from ..errors import PathsaeError
from .notify import report_error

log = logging.getLogger(__name__)


def run_in_background(function: Callable, *args, on_done: Callable | None = None, on_error=None, **kwargs):
    """Start ``function(*args, **kwargs)`` on a worker thread; ``on_done(result)`` runs on the UI thread."""
    worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True, **kwargs)
    if on_done is not None:
        worker.returned.connect(on_done)

    def failed(exc: Exception) -> None:
        if not isinstance(exc, PathsaeError):  # a bug, not a user error: keep the traceback in the log
            log.error("pathsae: %s failed", getattr(function, "__name__", function), exc_info=exc)
        report_error(exc)
        if on_error is not None:
            on_error(exc)

    worker.errored.connect(failed)
    worker.start()
    return worker


class _Relay(QObject):
    """Lives on the GUI thread: a signal emitted from any thread runs ``slot`` there (a queued call)."""

    fired = Signal(tuple)

    def __init__(self, slot: Callable):
        super().__init__()
        self._slot = slot
        self.fired.connect(self._deliver)

    def _deliver(self, args: tuple) -> None:
        self._slot(*args)


def on_gui_thread(slot: Callable) -> Callable:
    """A function that, called from any thread, runs ``slot(*args)`` on the GUI thread (create it there).

    Engine callbacks (training progress) run on worker threads; touching a Qt widget from one aborts
    napari ("Cannot make QOpenGLContext current in a different thread")."""
    relay = _Relay(slot)

    def call(*args) -> None:
        relay.fired.emit(args)

    call.relay = relay  # keeps the QObject alive as long as the callback
    return call
