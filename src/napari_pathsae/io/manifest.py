"""A cohort's manifest: a CSV naming each slide, its Visium sample and its slide-level variables.

Columns: ``slide`` (the slide or full-resolution image, required), ``visium`` (outs/ folder or .h5ad),
``slide_mpp`` (µm/px where the file does not say), ``name`` (default: the slide's file name without
suffixes); every other column is a slide-level variable (diagnosis, a biomarker…). Relative paths resolve
against the manifest's folder. Every problem is refused in one line naming the row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import PathsaeError

#: Columns with a meaning of their own; the rest are slide-level variables.
RESERVED = ("slide", "visium", "slide_mpp", "name")


@dataclass(frozen=True)
class CohortSlide:
    """One row of the manifest, paths resolved."""

    name: str
    slide: Path
    visium: Path | None = None
    slide_mpp: float | None = None
    line: int | None = field(default=None, compare=False)  # in the manifest it came from (None: from a cohort)


@dataclass
class Manifest:
    path: Path
    slides: list[CohortSlide]
    variables: pd.DataFrame = field(default_factory=pd.DataFrame)  # index: slide name

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slides]


def slide_name(path: Path) -> str:
    """A slide's short name: its file name without suffixes (``B4_HE.ome.tif`` → ``B4_HE``)."""
    return path.name.split(".")[0] or path.name


def read_manifest(path: str | Path) -> Manifest:
    """The manifest at ``path``, every slide and Visium path checked to exist."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PathsaeError(f"no such manifest: {path}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PathsaeError(f"{path}: not a readable CSV manifest ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "slide" not in table.columns:
        raise PathsaeError(f"{path}: a manifest needs a 'slide' column (has {', '.join(table.columns) or 'none'})")
    if table.empty:
        raise PathsaeError(f"{path}: the manifest lists no slides")
    base = path.resolve().parent
    slides = [_row(path, base, i + 2, row) for i, row in table.iterrows()]
    names = [s.name for s in slides]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        lines = [str(s.line) for s in slides if s.name == repeated[0]]
        remedy = "give each its own name in the 'name' column" if "name" in table.columns else (
            "add a 'name' column to tell them apart")  # fmt: skip
        raise PathsaeError(f"{path.name} lines {' and '.join(lines)} share the name {repeated[0]!r}; {remedy}")
    variables = table[[c for c in table.columns if c not in RESERVED]].copy()
    variables.index = pd.Index(names, name="slide")
    return Manifest(path, slides, variables.apply(_numeric_if_possible))


def _row(manifest: Path, base: Path, line: int, row: pd.Series) -> CohortSlide:
    where = f"{manifest.name} line {line}"
    slide = _existing(base, row["slide"], where, "slide")
    visium = _existing(base, row.get("visium", ""), where, "visium") if row.get("visium", "").strip() else None
    mpp_text = row.get("slide_mpp", "").strip()
    slide_mpp = None
    if mpp_text:
        try:
            slide_mpp = float(mpp_text)
        except ValueError:
            raise PathsaeError(f"{where}: slide_mpp {mpp_text!r} is not a number") from None
        if not (math.isfinite(slide_mpp) and 0.01 <= slide_mpp <= 100):
            raise PathsaeError(f"{where}: slide_mpp {mpp_text} must be a µm/px between 0.01 and 100")
    name = row.get("name", "").strip() or slide_name(slide)
    return CohortSlide(name, slide, visium, slide_mpp, line)


def _existing(base: Path, text: str, where: str, column: str) -> Path:
    text = str(text).strip()
    if not text:
        raise PathsaeError(f"{where}: empty {column}")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise PathsaeError(f"{where}: no such {column} {path}")
    return path


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """A variable column as numbers when every non-empty value is one, else as text (categories)."""
    values = pd.to_numeric(column.replace("", None), errors="coerce")
    filled = column.str.strip() != ""
    return values if bool(values[filled].notna().all()) and bool(filled.any()) else column
