"""The viewer's inference process: same tiles as the CLI, survives its own crash, never outlives the viewer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import HER2ST_HE, TINY_ENCODER
from napari_pathsae.data.store import TileStore
from napari_pathsae.data.tiles import TileGeometry
from napari_pathsae.engine.embed import EmbedOptions
from napari_pathsae.engine.session import ExplorerSession
from napari_pathsae.engine.worker_process import RemoteEncoder, WorkerStopped
from napari_pathsae.errors import PathsaeError

OPTIONS = EmbedOptions(geometry=TileGeometry.from_options(tile_um=112), slide_mpp=0.69, batch_size=64)


def remote_session(store: Path, sae: Path | None) -> ExplorerSession:
    return ExplorerSession.load(HER2ST_HE, store, TINY_ENCODER, sae, OPTIONS, dtype="fp32", worker_process=True)


def test_tiles_computed_in_the_worker_match_the_cli_and_it_survives_being_killed(her2st_model, tmp_path):
    reference = TileStore.open(her2st_model / "b4.zarr")
    session = remote_session(tmp_path / "lazy.zarr", her2st_model / "sae")
    remote = session.computer.remote
    try:
        assert isinstance(session.encoder, RemoteEncoder) and session.encoder.device.type == "cpu"
        assert remote.alive and remote.process.pid != os.getpid()
        chosen = np.array([5, 17, 300, 301, 900])
        values = session.compute(chosen)
        np.testing.assert_allclose(values, reference.activations()[:][chosen], rtol=1e-2, atol=1e-2)
        assert session.activated().sum() == 5 and session.embedded[chosen].all()
        # the activations came back over the pipe: they are the rows the worker wrote to the store
        np.testing.assert_array_equal(values, TileStore.open(tmp_path / "lazy.zarr").activations()[:][chosen])

        # killed mid-run (a segfault, the OOM killer): one line, the session and the tiles written survive
        batch = np.arange(400, 1000)
        killer = threading.Timer(1.5, os.kill, (remote.process.pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(WorkerStopped, match=r"^the inference worker was killed by signal 9; tiles computed"):
            session.compute(batch)
        killer.join()
        store = TileStore.open(tmp_path / "lazy.zarr")
        written = store.embedded_tiles()
        assert written[chosen].all()
        done = np.flatnonzero(written)  # whatever the worker finished before the kill is whole and right
        np.testing.assert_allclose(store.embeddings()[:][done], reference.embeddings()[:][done], rtol=1e-2, atol=1e-2)

        session.restart_worker()
        assert session.computer.remote.alive and session.computer.remote is not remote
        again = session.compute(np.array([5, 640]))
        np.testing.assert_allclose(again, reference.activations()[:][[5, 640]], rtol=1e-2, atol=1e-2)
    finally:
        session.close()
    assert not session.computer.remote.alive  # closing the session ends its worker


def test_a_script_without_a_main_guard_gets_its_worker_and_is_not_run_twice(tmp_path):
    """The worker is spawned: without care it re-runs the caller's script (a second viewer, a Load that never
    answers). A plain script with no ``if __name__ == "__main__":`` computes its tiles, its top level run once."""
    script = tmp_path / "plain.py"
    script.write_text(
        "from napari_pathsae.engine.session import ExplorerSession\n"
        "from napari_pathsae.engine.embed import EmbedOptions\n"
        "from napari_pathsae.data.tiles import TileGeometry\n"
        "print('top level', flush=True)\n"
        f"options = EmbedOptions(geometry=TileGeometry.from_options(tile_um=112), slide_mpp=0.69)\n"
        f"s = ExplorerSession.load({str(HER2ST_HE)!r}, {str(tmp_path / 's.zarr')!r}, {TINY_ENCODER!r}, None, options,"
        " dtype='fp32', worker_process=True)\n"
        "s.compute([1, 2]); print('computed', int(s.embedded.sum()), flush=True); s.close()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["top level", "computed 2"]


def test_a_bad_encoder_fails_in_one_line_and_leaves_no_worker(tmp_path):
    import multiprocessing

    with pytest.raises(PathsaeError) as raised:
        ExplorerSession.load(HER2ST_HE, tmp_path / "x.zarr", "no_such_model_xyz", None, OPTIONS, worker_process=True)
    assert "\n" not in str(raised.value) and "no_such_model_xyz" in str(raised.value)
    assert not multiprocessing.active_children()
    assert not (tmp_path / "x.zarr").exists()


ORPHAN_SCRIPT = """
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_worker_process import remote_session
if __name__ == "__main__":
    session = remote_session(Path({store!r}), None)
    print(session.computer.remote.process.pid, flush=True)
    os._exit(0)  # the viewer dies without closing anything
"""


def test_the_worker_exits_when_the_viewer_process_dies(tmp_path):
    script = tmp_path / "viewer.py"
    script.write_text(ORPHAN_SCRIPT.format(tests=str(Path(__file__).parent), store=str(tmp_path / "o.zarr")))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    pid = int(run.stdout.split()[-1])
    end = time.monotonic() + 60
    while time.monotonic() < end and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    status = Path(f"/proc/{pid}/status")
    alive = status.exists() and "zombie" not in status.read_text()
    assert not alive, "the inference worker outlived its viewer"
