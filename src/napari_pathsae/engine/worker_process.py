"""The viewer's tile computation in a separate process: the encoder and its GPU or cores live there.

The UI process sends tile indices over a pipe; the worker embeds and SAE-encodes them into the
slide's store (the same zarr store the CLI writes, under its writer lock) and answers with the
indices done; the UI process then reads those rows back. A crash in the worker (out of memory, a
codec segfault) ends the worker only: ``compute`` raises ``WorkerStopped`` and a new worker can be
started on the same store. The worker exits when its parent does, after the batch in flight.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PathsaeError
from .cores import usable_cores

if TYPE_CHECKING:  # the engine (torch) loads when a model does, not when a panel opens
    from .embed import EmbedOptions

log = logging.getLogger(__name__)

#: Seconds the worker may take to load the encoder and open the store (hub weights on a slow disk).
START_TIMEOUT_S = 600.0
#: A worker told to stop gets this long to finish its batch before it is killed.
STOP_TIMEOUT_S = 30.0


class WorkerStopped(PathsaeError):
    """The worker process is gone (crashed or killed); tiles it wrote are kept."""


@dataclass(frozen=True)
class WorkerSpec:
    """What the worker needs to rebuild the viewer's tile computer on its side."""

    slide_path: str
    store_path: str
    encoder_spec: str
    options: EmbedOptions
    architecture: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    allow_random: bool | None = None


@dataclass(frozen=True)
class RemoteEncoder:
    """What the UI process knows of the worker's encoder (describe, batch sizes)."""

    spec: str
    device: object  # torch.device
    dtype: object  # torch.dtype
    random_init: bool


class TileWorkerProcess:
    """A started worker: ``compute(indices)`` blocks (releasing the GIL) until the worker has written them."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        context = multiprocessing.get_context("spawn")  # never fork a process holding Qt and OpenGL
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()  # one request at a time on the pipe
        self.process = context.Process(target=_serve, args=(spec, child), name="pathsae-tiles", daemon=True)
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.encoder = self._ready()

    def _ready(self) -> RemoteEncoder:
        import torch

        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._conn.poll(0.5):
            if not self.process.is_alive():  # died while starting: say so now, not after the timeout
                self.process.join(5)
                raise PathsaeError(f"the inference worker exited while starting (code {self.process.exitcode})")
            if time.monotonic() > deadline:
                self.stop()
                raise PathsaeError(f"the inference worker did not start within {START_TIMEOUT_S:.0f} s")
        kind, payload = self._receive()
        if kind != "ready":
            self.stop()
            raise _error(payload)
        return RemoteEncoder(
            payload["spec"], torch.device(payload["device"]), getattr(torch, payload["dtype"]), payload["random_init"]
        )

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def compute(self, indices: np.ndarray) -> np.ndarray:
        """Embed and encode these tiles in the worker (their rows are in the store when this returns); their
        SAE activations, (n, F) in the order of ``np.unique(indices)``, come back over the pipe, so this
        process reads nothing from the store (no zarr decoding beside napari's drawing)."""
        return self._request("compute", np.asarray(indices, dtype=np.int64))

    def set_sae(self, sae_dir: str | Path) -> None:
        self._request("set_sae", str(sae_dir))

    def _request(self, kind: str, payload):
        with self._lock:
            try:
                self._conn.send((kind, payload))
                answer, detail = self._receive()
            except (OSError, EOFError):
                raise self._stopped() from None
        if answer == "error":
            raise _error(detail)
        return detail

    def _receive(self):
        try:
            return self._conn.recv()
        except (OSError, EOFError):
            raise self._stopped() from None

    def _stopped(self) -> WorkerStopped:
        self.process.join(5)
        code = self.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited (code {code})"
        return WorkerStopped(f"the inference worker {how}; tiles computed so far are kept in the store")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Ask the worker to finish its batch and exit; killed if it does not within ``timeout``."""
        if self.process.is_alive():
            with contextlib.suppress(OSError, EOFError):  # already gone
                self._conn.send(("stop", None))
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        self._conn.close()


@contextlib.contextmanager
def _main_module_hidden():
    """The spawned worker does not re-run the caller's script: it needs nothing from ``__main__`` (its target
    and arguments live in this package), and a script driving napari without an ``if __name__ ==
    "__main__":`` guard would otherwise open a second viewer in the worker and never answer."""
    main = sys.modules.get("__main__")
    saved = {name: main.__dict__[name] for name in ("__spec__", "__file__") if main and name in main.__dict__}
    try:
        if main is not None:
            main.__spec__ = None
            main.__dict__.pop("__file__", None)
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


def _error(detail: dict) -> Exception:
    return PathsaeError(detail["message"]) if detail["user_error"] else RuntimeError(detail["message"])


# --- the worker's side ---------------------------------------------------------------------------
def _serve(spec: WorkerSpec, conn) -> None:
    """The worker's main loop (runs in the spawned process)."""
    stopping = threading.Event()
    threading.Thread(target=_exit_with_parent, args=(stopping,), daemon=True).start()
    yield_to_the_viewer()
    try:
        computer = _build(spec)
    except BaseException as exc:
        conn.send(("error", _describe(exc)))
        return
    encoder = computer.encoder
    dtype = str(encoder.dtype).removeprefix("torch.")
    ready = {"spec": encoder.spec, "device": str(encoder.device), "dtype": dtype, "random_init": encoder.random_init}
    conn.send(("ready", ready))
    while not stopping.is_set():
        try:
            if not conn.poll(0.5):
                continue
            kind, payload = conn.recv()
        except (OSError, EOFError):
            break  # the parent is gone
        if kind == "stop":
            break
        try:
            result = None
            if kind == "compute":
                result = computer.compute(payload)
            elif kind == "set_sae":
                _attach(computer, payload)
            conn.send(("done", result))
        except BaseException as exc:
            conn.send(("error", _describe(exc)))
    computer.close()


def _build(spec: WorkerSpec):
    import torch

    from ..models.encoders import load_encoder
    from .tile_computer import TileComputer

    if spec.device == "cpu" or not torch.cuda.is_available():
        leave_a_core_free()
    encoder = load_encoder(spec.encoder_spec, spec.architecture, spec.device, spec.dtype, 0, spec.allow_random)
    return TileComputer(spec.slide_path, spec.store_path, encoder, spec.options)


def _attach(computer, sae_dir: str) -> None:
    from ..models.sae.formats import load_sae, sae_provenance

    sae, cfg = load_sae(sae_dir)
    computer.set_sae(sae, Path(sae_dir).name, sae_provenance(sae_dir, cfg))


#: The worker's CPU priority below napari's (POSIX nice): drawing and clicks are served first, and
#: inference takes what they leave (measured in benchmarks/viewer_responsiveness.py).
WORKER_NICENESS = 10


def yield_to_the_viewer() -> None:
    """Lower this process's CPU priority (no-op where the OS has no nice)."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(WORKER_NICENESS)


def leave_a_core_free() -> None:
    """CPU inference uses every core but one: napari keeps one to draw with (torch threads are process-wide)."""
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), usable_cores() - 1)))


def _exit_with_parent(stopping: threading.Event) -> None:
    """No orphan: when the viewer's process dies, the worker ends its batch and exits (killed after a grace)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    parent.join()
    stopping.set()
    time.sleep(STOP_TIMEOUT_S)
    os._exit(1)


def _describe(exc: BaseException) -> dict:
    user_error = isinstance(exc, PathsaeError)
    if not user_error:
        log.error("pathsae worker: %s", "".join(traceback.format_exception(exc)))
    message = str(exc) if user_error else f"{type(exc).__name__}: {exc}"
    return {"message": message, "user_error": user_error}
