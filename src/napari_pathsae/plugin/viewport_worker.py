"""Viewport inference: tiles in view are requested from a worker thread, nearest to the centre first.

The thread hands each batch to the session, whose tiles are computed in the viewer's worker process
(engine/worker_process.py) when the session has one: the thread then only waits on the pipe that
brings the activations back (no store reads here), so neither the GIL nor the cores are taken from napari's drawing.

The view queue is replaced (stale tiles dropped) each time the camera settles; at most the batch
in flight finishes after the view moves. The whole-slide queue runs behind it. Results reach the
UI thread as ``tiles_computed`` signals; the UI thread only copies small grids.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from ..data.viewport import tiles_in_view
from ..engine.worker_process import WorkerStopped, leave_a_core_free
from .notify import report_error

#: Tiles per batch on CPU; the encoder's batch when on a GPU.
CPU_BATCH = 16
#: Camera events are coalesced: inference requests go out this long after the camera stops.
DEBOUNCE_MS = 150
#: Prefetch this fraction of the view size around it.
VIEW_MARGIN = 0.25


class ViewportWorker(QObject):
    """A thread computing requested tiles; ``follow_view`` ties its queue to the camera."""

    computed = Signal(object)  # indices
    failed = Signal(object)  # exception
    stopped = Signal(object)  # WorkerStopped: the worker process is gone; the panel offers a restart
    whole_slide_progress = Signal(int, int)  # done, total

    def __init__(self, state):
        super().__init__()
        self.state = state
        self.session = state.session
        encoder = self.session.encoder  # None on imported features: only the SAE runs, here, on the CPU
        on_cpu = encoder is None or encoder.device.type == "cpu"
        if on_cpu and self.session.computer.remote is None:
            leave_a_core_free()  # computing in this process (the worker process leaves a core itself)
        self.batch_size = CPU_BATCH if on_cpu else max(CPU_BATCH, self.session.batch_size)
        self._view: list[int] = []
        self._slide: list[int] = []
        self._slide_total = 0
        self._condition = threading.Condition()
        self._stopped = False
        self._busy = False
        self.history: list[np.ndarray] = []  # batches computed, for tests and benchmarks
        self.computed.connect(state.notify_computed)
        self.failed.connect(report_error)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.request_view)
        self._following = False
        self._thread = threading.Thread(target=self._run, name="pathsae-viewport", daemon=True)
        self._thread.start()

    # --- requests (UI thread) -----------------------------------------------------------------
    def follow_view(self, on: bool) -> None:
        """Compute what the camera shows whenever it settles (and now)."""
        camera = camera_of(self.state.viewer)
        if on and not self._following:
            camera.events.center.connect(self._camera_moved)
            camera.events.zoom.connect(self._camera_moved)
            self._following = True
            self.request_view()
        elif not on and self._following:
            camera.events.center.disconnect(self._camera_moved)
            camera.events.zoom.disconnect(self._camera_moved)
            self._following = False
            self.set_view_queue(np.empty(0, int))

    def _camera_moved(self, _event=None) -> None:
        self._timer.start()  # restarts: the request goes out DEBOUNCE_MS after the last move

    def request_view(self, box: np.ndarray | None = None) -> np.ndarray:
        """Queue the tiles of ``box`` (the visible world box by default) not yet computed; returns them."""
        box = visible_world_box(self.state.viewer) if box is None else box
        session = self.session
        wanted = tiles_in_view(session.grid_index, session.placement, box, VIEW_MARGIN)
        missing = session.missing(wanted)
        self.set_view_queue(missing)
        return missing

    def set_view_queue(self, indices: np.ndarray) -> None:
        with self._condition:
            self._view = [int(i) for i in indices]
            self._condition.notify()

    def compute_whole_slide(self) -> int:
        """Queue every tile not computed yet (behind the view); returns how many."""
        missing = self.session.missing()
        with self._condition:
            self._slide = [int(i) for i in missing]
            self._slide_total = len(missing)
            self._condition.notify()
        return len(missing)

    def cancel_whole_slide(self) -> None:
        with self._condition:
            self._slide = []

    @property
    def pending(self) -> int:
        with self._condition:
            return len(self._view) + len(self._slide) + int(self._busy)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until the queues are empty (tests, scripts); True when they are."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.pending == 0:
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 60.0) -> None:
        """Drop the queues and end the thread once the batch in flight is written (the store stays whole)."""
        self.follow_view(False)
        with self._condition:
            self._stopped = True
            self._view, self._slide = [], []
            self._condition.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # --- the thread -------------------------------------------------------------------------
    def _next_batch(self) -> tuple[list[int], bool] | None:
        with self._condition:
            while not self._stopped and not self._view and not self._slide:
                self._condition.wait()
            if self._stopped:
                return None
            from_slide = not self._view
            queue = self._slide if from_slide else self._view
            batch, queue[:] = queue[: self.batch_size], queue[self.batch_size :]
            self._busy = True
            return batch, from_slide

    def _run(self) -> None:
        while (taken := self._next_batch()) is not None:
            batch, from_slide = taken
            try:
                indices = self.session.missing(np.asarray(batch))
                if len(indices):
                    self.session.compute(indices)
                    self.history.append(indices)
                    self.computed.emit(indices)
                if from_slide or self._slide_total:
                    with self._condition:
                        left = len(self._slide)
                    self.whole_slide_progress.emit(self._slide_total - left, self._slide_total)
                    if left == 0:
                        self._slide_total = 0
            except Exception as exc:
                with self._condition:
                    self._view, self._slide = [], []
                (self.stopped if isinstance(exc, WorkerStopped) else self.failed).emit(exc)
            finally:
                with self._condition:
                    self._busy = False


def camera_of(viewer):
    """napari ≥ 0.9 keeps the camera in ``viewer.scene``; older versions on the viewer."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


#: Canvas size assumed when napari does not expose it (screen px).
FALLBACK_CANVAS_PX = (1200, 1600)


def visible_world_box(viewer) -> np.ndarray:
    """World ((row0, col0), (row1, col1)) the canvas shows, for the two displayed axes.

    napari has no public accessor for the canvas corners yet; the private one is read without its
    deprecation warning, and where it is gone the box is the camera centre ± an assumed canvas.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        canvas = getattr(getattr(viewer.window, "_qt_viewer", None), "canvas", None)
        corners = getattr(canvas, "_viewbox_corners_in_world", None)
    if corners is not None:
        return np.asarray(corners)[:, list(viewer.dims.displayed)]
    camera = camera_of(viewer)
    centre = np.asarray(camera.center)[-2:]
    half = np.asarray(FALLBACK_CANVAS_PX) / camera.zoom / 2
    return np.stack([centre - half, centre + half])
