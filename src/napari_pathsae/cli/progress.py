"""One progress line on stderr, rewritten in place on a terminal (every 0.5 s), a new line every 10 s in a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def throttled_printer(describe: Callable[[object], tuple[str, bool]]) -> Callable[[object], None]:
    """A progress callback printing ``describe(event)`` = (line, final); the final line is always printed."""
    interactive = sys.stderr.isatty()
    last = [0.0]

    def show(event) -> None:
        line, final = describe(event)
        now = time.monotonic()
        if not final and now - last[0] < (0.5 if interactive else 10):
            return
        last[0] = now
        print(("\r" + line) if interactive else line, end="\n" if final or not interactive else "", file=sys.stderr)

    return show
