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
    """Run a command to its end: wall seconds from launch to exit, its own peak RSS, its output.

    The peak is the child's VmHWM, sampled every 20 ms: wait4's ru_maxrss is not used because Linux
    carries it across fork and exec, so a child of a large benchmark process reports the parent's peak.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _high_water_kb(child.pid))
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{stderr[-2000:]}")
    return ProcessRun(wall, peak_kb / 1024, stdout, stderr)


def _high_water_kb(pid: int) -> int:
    """A running process's peak resident memory (kB) so far; 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


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
