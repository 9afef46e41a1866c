"""What every benchmark needs: timing a child process with its peak RSS, the machine, saving results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
#: Results committed beside the write-up (docs/benchmarks.md).
RESULTS = BENCHMARKS.parent / "docs" / "benchmark-results"


@dataclass(frozen=True)
class ProcessRun:
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_process(command: list[str], env: dict | None = None) -> ProcessRun:
    """Run a command to its end: wall seconds from launch to exit, its own peak RSS (wait4), its output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{stderr[-2000:]}")
    return ProcessRun(wall, usage.ru_maxrss / 1024, stdout, stderr)


def python(*args: str) -> list[str]:
    """A command running this interpreter (the project's environment)."""
    return [sys.executable, *args]


def machine() -> dict:
    """The machine a result was measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def save(name: str, result: dict, out_dir: Path | None) -> Path:
    """Write ``result`` (with the machine and time) as JSON; print it too."""
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path
