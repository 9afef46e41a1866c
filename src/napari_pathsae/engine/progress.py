"""Progress events of long jobs (a slide embedded, a cohort embedded): the CLI prints them, widgets show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Tiles done of ``total`` for ``slide`` (a slide's or a cohort's name), and the rate so far."""

    slide: str
    done: int
    total: int
    elapsed_s: float
    tiles_per_s: float

    @property
    def eta_s(self) -> float:
        return (self.total - self.done) / self.tiles_per_s if self.tiles_per_s > 0 else float("nan")

    @property
    def eta_text(self) -> str:
        """``ETA 12 s``, or ``ETA –`` before the first tiles give a rate."""
        return f"ETA {self.eta_s:.0f} s" if self.eta_s == self.eta_s else "ETA –"


ProgressCallback = Callable[[Progress], None]
