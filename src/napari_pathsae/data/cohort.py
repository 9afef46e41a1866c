"""A cohort folder: one store per slide, the slide-level variables, and the feature indexes of its SAEs.

Layout::

    COHORT/cohort.json         format, the manifest it came from, one entry per slide (name, slide, visium,
                               slide_mpp, store), the variable columns
    COHORT/variables.csv       slide-level variables, one row per slide (index: name)
    COHORT/stores/<name>.zarr  the slide's store (data/store.py)
    COHORT/index/<sae>.npz     the feature index of the activations named <sae> (data/feature_index.py)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import PathsaeError
from ..io.manifest import CohortSlide, Manifest
from .outputs import atomic_output

FORMAT = "napari-pathsae/cohort-v1"
FILE = "cohort.json"
VARIABLES = "variables.csv"


@dataclass
class Cohort:
    folder: Path
    slides: list[CohortSlide]
    variables: pd.DataFrame  # index: slide name; numeric columns are numbers, the rest categories

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slides]

    def store_path(self, name: str) -> Path:
        return self.folder / "stores" / f"{name}.zarr"

    @property
    def store_paths(self) -> list[Path]:
        return [self.store_path(n) for n in self.names]

    def index_path(self, sae: str) -> Path:
        return self.folder / "index" / f"{sae}.npz"

    def slide(self, name: str) -> CohortSlide:
        for entry in self.slides:
            if entry.name == name:
                return entry
        raise PathsaeError(f"{self.folder.name} has no slide {name!r}")


def is_cohort(path: str | Path) -> bool:
    return (Path(path) / FILE).is_file()


def write_cohort(folder: str | Path, manifest: Manifest) -> Cohort:
    """Create (or update to ``manifest``) the cohort folder's description; its stores are left as they are."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PathsaeError(f"{folder} is a file; a cohort is a folder")
    if folder.is_dir() and any(folder.iterdir()) and not is_cohort(folder):
        raise PathsaeError(f"{folder} holds other files; give a new or existing cohort folder")
    (folder / "stores").mkdir(parents=True, exist_ok=True)
    entries = [
        {"name": s.name, "slide": str(s.slide), "visium": str(s.visium) if s.visium else None,
         "slide_mpp": s.slide_mpp, "store": f"stores/{s.name}.zarr"}
        for s in manifest.slides
    ]  # fmt: skip
    description = {
        "format": FORMAT, "manifest": str(manifest.path.resolve()), "slides": entries,
        "variables": list(manifest.variables.columns),
    }  # fmt: skip
    with atomic_output(folder / VARIABLES, overwrite=True) as temp:
        manifest.variables.to_csv(temp)
    with atomic_output(folder / FILE, overwrite=True) as temp:
        temp.write_text(json.dumps(description, indent=1))
    return open_cohort(folder)


def open_cohort(folder: str | Path) -> Cohort:
    """The cohort in ``folder`` (made by ``pathsae embed --manifest``)."""
    folder = Path(folder)
    try:
        description = json.loads((folder / FILE).read_text())
    except FileNotFoundError:
        raise PathsaeError(f"{folder} is not a cohort (no {FILE}; make one with `pathsae embed --manifest`)") from None
    except (OSError, ValueError) as exc:
        raise PathsaeError(f"{folder / FILE}: unreadable ({exc})") from None
    if description.get("format") != FORMAT:
        raise PathsaeError(f"{folder / FILE}: not a napari-pathsae cohort ({description.get('format')!r})")
    slides = [
        CohortSlide(e["name"], Path(e["slide"]), Path(e["visium"]) if e.get("visium") else None, e.get("slide_mpp"))
        for e in description["slides"]
    ]
    variables = pd.read_csv(folder / VARIABLES, index_col=0, keep_default_na=True)
    variables.index = variables.index.astype(str)
    return Cohort(folder, slides, variables.reindex([s.name for s in slides]))


def expand_stores(paths: list[Path]) -> tuple[list[Path], Cohort | None]:
    """Store paths from a command's arguments: a cohort folder stands for its stores (in manifest order)."""
    if len(paths) == 1 and is_cohort(paths[0]):
        cohort = open_cohort(paths[0])
        missing = [p.parent.parent.name + "/" + p.name for p in cohort.store_paths if not p.exists()]
        if missing:
            raise PathsaeError(
                f"{paths[0]}: {len(missing)} slide(s) not embedded yet ({missing[0]}…); "
                "rerun `pathsae embed --manifest` to finish the cohort"
            )
        return cohort.store_paths, cohort
    for path in paths:
        if is_cohort(path):
            raise PathsaeError(f"{path} is a cohort: give it alone, not with other stores")
    return paths, None
