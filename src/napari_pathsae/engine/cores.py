"""The CPU cores this process may run on (its affinity: taskset, a container's cpuset), not the machine's."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process is allowed to use; ``os.cpu_count()`` where the OS has no affinity call."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
