"""Checked argument types for `pathsae`: every flag is validated while parsing, before any work starts.

A bad value (zero, negative, NaN, infinite, out of range) ends in one line naming the flag and a
non-zero exit; flags renamed since an earlier version end the same way with the new spelling.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from ..io.frames import PLAUSIBLE_MPP

#: Old spellings and what replaced them (one name, one meaning, in every command).
RENAMED = {
    "--mpp": "--mpp is gone: --slide-mpp is the slide's µm/px, --tile-um and --tile-px the tile's size",
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and whose old flags say their new names."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--mp` must not quietly mean --mpp or --min-tissue
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        for arg in sys.argv[1:] if args is None else args:
            flag = str(arg).split("=", 1)[0]
            if flag in RENAMED:
                self.error(RENAMED[flag])
        return super().parse_args(args, namespace)


def _number(kind: type, low: float | None, high: float | None, low_open: bool, what: str) -> Callable[[str], float]:
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"{text} must be {what}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} must be {what}")
        return value

    convert.__name__ = "int" if kind is int else "float"  # argparse names the type in its message
    return convert


def positive_int(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """An integer ≥ ``minimum`` (and ≤ ``maximum``)."""
    what = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
    return _number(int, minimum, maximum, False, what)


def positive_float(maximum: float | None = None) -> Callable[[str], float]:
    """A finite number > 0 (and ≤ ``maximum``)."""
    return _number(float, 0.0, maximum, True, "> 0" if maximum is None else f"> 0 and at most {maximum:g}")


def non_negative_float() -> Callable[[str], float]:
    return _number(float, 0.0, None, False, "≥ 0")


def fraction() -> Callable[[str], float]:
    """A number in [0, 1]."""
    return _number(float, 0.0, 1.0, False, "between 0 and 1")


def finite_float() -> Callable[[str], float]:
    return _number(float, None, None, False, "finite")


def microns_per_pixel() -> Callable[[str], float]:
    """A µm/px a microscope or Visium image could have."""
    low, high = PLAUSIBLE_MPP
    return _number(float, low, high, False, f"a µm/px between {low:g} and {high:g}")


def feature_number(text: str) -> int:
    """A feature as 12 or f12."""
    value = text.strip().lower().removeprefix("f")
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a feature (12 or f12)")
    return int(value)
