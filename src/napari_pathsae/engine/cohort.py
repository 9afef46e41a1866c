"""A cohort end to end: every slide of a manifest embedded into the cohort folder (resumable, on
dask.distributed), encoded by an SAE, and its feature index built in one streaming pass."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..analysis.feature_index import FeatureIndexBuilder
from ..analysis.slide_association import slide_associations
from ..data.cohort import Cohort, is_cohort, open_cohort, write_cohort
from ..data.feature_index import FeatureIndex, save_index
from ..data.identity import visium_fingerprint
from ..data.store import TileStore
from ..errors import Cancelled, PathsaeError
from ..io.manifest import CohortSlide, Manifest
from .progress import Progress

if TYPE_CHECKING:  # embedding and encoding load torch; building or reading an index does not
    from .embed import EmbedOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortProgress(Progress):
    """Across the whole cohort (``slide`` is the cohort folder's name): tiles done read from the stores'
    done flags, and whole slides done."""

    slides_done: int = 0
    slides: int = 0


def slide_options(entry: CohortSlide, base: EmbedOptions) -> tuple[EmbedOptions, list[str]]:
    """One slide's embedding options: its own µm/px (the manifest's, the file's or its Visium sample's), and its
    Visium sample (opened, so checked, and recorded)."""
    from ..io.slides import open_slide

    options = replace(base, slide_mpp=entry.slide_mpp or base.slide_mpp, visium=None, visium_fingerprint=None)
    sample, notes = None, []
    if entry.visium is not None:
        from ..io.visium import open_visium

        sample = open_visium(entry.visium, fullres_image=entry.slide, mpp=options.slide_mpp)
        notes = [f"{entry.name}: {note}" for note in sample.notes]
        options = replace(options, visium=str(entry.visium.resolve()), visium_fingerprint=visium_fingerprint(sample))
    if options.slide_mpp is None:
        opened = open_slide(entry.slide, backend=options.slide_backend)
        opened.close()
        if opened.mpp is None and sample is not None and sample.frame.mpp:
            options = replace(options, slide_mpp=sample.frame.mpp)
            notes.append(f"{entry.name}: slide µm/px {sample.frame.mpp:.4f} taken from the Visium sample")
        elif opened.mpp is None:
            raise PathsaeError(f"{entry.slide.name}: resolution unknown; give its µm/px in the slide_mpp column")
    return options, notes


@contextmanager
def _named_by_row(manifest: Manifest, entry: CohortSlide) -> Iterator[None]:
    """A slide's problem named by its manifest row (``cohort.csv line 4: …``)."""
    try:
        yield
    except Cancelled:
        raise
    except PathsaeError as exc:
        where = f"{manifest.path.name} line {entry.line}" if entry.line else entry.name
        raise PathsaeError(f"{where}: {exc}") from None


def embed_cohort(
    manifest: Manifest,
    folder: str | Path,
    request,
    base: EmbedOptions,
    scheduler: str | None = None,
    workers: int | None = None,
    on_slide: Callable[[dict], None] | None = None,
    on_progress: Callable[[CohortProgress], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> tuple[Cohort, list[dict]]:
    """Embed every slide of ``manifest`` into ``folder``/stores; finished slides are skipped, killed ones resume.

    Every slide is opened and tiled before any model loads (a blank or unreadable slide is refused first).
    Slides run largest first so that the last one to finish is a small one."""
    from .embed import open_tiles
    from .scale_out import embed_many

    plans, expected = [], {}
    for entry in manifest.slides:
        with _named_by_row(manifest, entry):
            options, notes = slide_options(entry, base)
            slide, grid = open_tiles(entry.slide, options)
            slide.close()
        for note in notes:
            (on_note or log.info)(note)
        plans.append((entry, options, len(grid)))
        expected[entry.name] = {"encoder_spec": request.spec, "geometry": options.geometry.to_dict(),
                                "slide_mpp": slide.mpp}  # fmt: skip
    before = _variables_digest(open_cohort(folder).variables) if is_cohort(folder) else None
    cohort = write_cohort(folder, manifest)
    if before is not None and before != _variables_digest(cohort.variables):
        (on_note or log.info)(
            f"{cohort.folder.name}: slide-level variables updated from {manifest.path.name}; "
            "the atlas and the Cohort panel test the new values"
        )
    pending = [p for p in plans if not _finished(cohort.store_path(p[0].name), expected[p[0].name])]
    for entry, _, _ in plans:
        if all(entry is not p[0] for p in pending) and on_slide:
            on_slide({"slide": str(entry.slide), "store": str(cohort.store_path(entry.name)), "skipped": True})
    pending.sort(key=lambda p: -p[2])
    if not pending:
        return cohort, []
    total = sum(p[2] for p in plans)
    start = time.perf_counter()
    at_start = sum(_tiles_done(cohort.store_path(p[0].name)) for p in plans)
    finished: list[dict] = []

    def tick() -> None:
        if on_progress is None:
            return
        done = sum(_tiles_done(cohort.store_path(p[0].name)) for p in plans)
        elapsed = time.perf_counter() - start
        slides_done = len(plans) - len(pending) + len(finished)
        rate = (done - at_start) / max(elapsed, 1e-9)
        on_progress(CohortProgress(cohort.folder.name, done, total, elapsed, rate, slides_done, len(plans)))

    def slide_done(summary: dict) -> None:
        finished.append(summary)
        if on_slide:
            on_slide(summary)

    results = embed_many(
        [str(p[0].slide) for p in pending], [str(cohort.store_path(p[0].name)) for p in pending], request,
        [p[1] for p in pending], scheduler, workers, slide_done, tick,
    )  # fmt: skip
    return cohort, results


def _finished(store: Path, expected: dict) -> bool:
    """Whether the slide's store is complete; one made with another encoder, geometry or µm/px is refused
    (as embedding it again would be)."""
    if not store.exists():
        return False
    opened = TileStore.open(store)
    opened.refuse_other_identity(expected, "embed into a new cohort folder")
    return opened.complete


def _tiles_done(store: Path) -> int:
    """Tiles whose chunk is flagged done; 0 for a store not yet created (or being created)."""
    try:
        opened = TileStore.open(store)
        slices = opened.chunk_slices()
        return opened.n_tiles - sum(slices[i].stop - slices[i].start for i in opened.pending_chunks())
    except Exception:
        return 0


def encode_cohort(
    cohort: Cohort, sae_dir: str | Path, name: str | None = None, on_slide: Callable[[str, bool], None] | None = None
) -> str:
    """SAE activations of every store (stores already encoded by these weights are skipped)."""
    from .encode import encode_store, encoded_by

    name = name or Path(sae_dir).name
    for slide, store in zip(cohort.names, cohort.store_paths, strict=True):
        skipped = encoded_by(store, sae_dir, name)
        if not skipped:
            encode_store(store, sae_dir, name)
        if on_slide:
            on_slide(slide, skipped)
    return name


def build_index(
    cohort: Cohort, sae: str, top: int = 32, samples: int = 200, seed: int = 0, block_rows: int = 4096
) -> tuple[FeatureIndex, list[str]]:
    """The feature index of activations ``sae`` over every store of the cohort, written to ``index/<sae>.npz``;
    returns it with notes (variables not tested)."""
    start = time.perf_counter()
    stores = [TileStore.open(p) for p in cohort.store_paths]
    arrays = [s.activations(sae) for s in stores]
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise PathsaeError(
            f"the cohort's activations {sae!r} differ in width ({sorted(widths)}): re-encode every slide"
        )
    builder = FeatureIndexBuilder(cohort.names, widths.pop(), top, samples, seed)
    for slide, (store, array) in enumerate(zip(stores, arrays, strict=True)):
        rows = max(1, block_rows // array.chunks[0]) * array.chunks[0]  # whole zarr chunks per read
        coords = store.coords
        for begin in range(0, array.shape[0], rows):
            stop = min(begin + rows, array.shape[0])
            values = np.asarray(array[begin:stop], dtype=np.float32)
            builder.add(slide, np.arange(begin, stop), coords[begin:stop], values)
    sae_record = dict(arrays[0].attrs.get("sae", {}))
    meta = {
        "sae": sae, "sae_record": sae_record, "encoder": stores[0].provenance.get("encoder", {}).get("spec"),
        "tile_side0": [s.tile_side0 for s in stores], "stores": [str(p) for p in cohort.store_paths],
    }  # fmt: skip
    index = builder.finish(meta)
    notes = _test_variables(index, cohort)
    index.meta["seconds"] = round(time.perf_counter() - start, 2)
    save_index(index, cohort.index_path(sae))
    return index, notes


def cohort_index(cohort: Cohort, sae_dir: str | Path, name: str | None = None) -> tuple[FeatureIndex, list[str]]:
    """The cohort's feature index of the SAE in ``sae_dir`` (activations ``name``, default the folder's name),
    answering the cohort as it is now: refused if built on other slides or other weights; its slide-level tests
    redone (and said) if the variables changed since."""
    from ..data.feature_index import load_index
    from ..models.sae.formats import read_cfg, sae_weights_sha256

    sae_dir = Path(sae_dir)
    read_cfg(sae_dir)  # "not an SAE folder" before "no index"
    path = cohort.index_path(name or sae_dir.name)
    index = load_index(path)
    again = f"run `pathsae encode {cohort.folder} --sae {sae_dir}` again"
    if list(index.slides) != cohort.names:
        raise PathsaeError(f"{path} was built on other slides than {cohort.folder.name} now lists; {again}")
    built_by = index.meta.get("sae_record", {}).get("weights_sha256")
    if built_by and built_by != sae_weights_sha256(sae_dir):
        raise PathsaeError(f"{path} was built from other weights than those now in {sae_dir}; {again}")
    tested = index.meta.get("variables_sha256")
    if tested == _variables_digest(cohort.variables):
        return index, []
    notes = _test_variables(index, cohort)  # cheap: slide means are in the index
    if tested is None:  # an index from before the digest was recorded
        return index, notes
    return index, ["the slide-level variables changed since the index was built: associations re-tested", *notes]


def _test_variables(index: FeatureIndex, cohort: Cohort) -> list[str]:
    """Each slide-level variable tested against each feature's per-slide mean (slides as the unit), into ``index``."""
    names, kinds, stat, p, q, notes = slide_associations(index.slide_means(), cohort.variables)
    index.variables, index.assoc_kind = np.array(names, dtype=str), np.array(kinds, dtype=str)
    index.assoc_stat, index.assoc_p, index.assoc_q = stat, p, q
    index.meta["variables_sha256"] = _variables_digest(cohort.variables)
    return notes


def _variables_digest(variables) -> str:
    return hashlib.sha256(variables.to_csv().encode()).hexdigest()


def slide_session(cohort: Cohort, name: str, sae_dir: str | Path, worker_process: bool = True):
    """An explorer session on one slide of the cohort, with its store, the SAE and its Visium sample (if any)."""
    from ..data.tiles import TileGeometry
    from .embed import EmbedOptions
    from .session import ExplorerSession

    entry = cohort.slide(name)
    store = TileStore.open(cohort.store_path(name))
    g = store.provenance["geometry"]
    options = EmbedOptions(
        geometry=TileGeometry(int(g["tile_px"]), float(g["mpp"]), float(g["min_tissue"])),
        slide_mpp=entry.slide_mpp, visium=str(entry.visium) if entry.visium else None,
        visium_fingerprint=store.provenance.get("visium_fingerprint"),
        slide_backend=store.provenance.get("slide_backend"),
    )  # fmt: skip
    session = ExplorerSession.load(
        entry.slide, store.path, store.provenance["encoder"]["spec"], sae_dir, options,
        worker_process=worker_process, allow_random=True,
    )  # fmt: skip
    if entry.visium is not None:
        from ..io.visium import open_visium

        try:
            session.attach_sample(open_visium(entry.visium, fullres_image=entry.slide, mpp=entry.slide_mpp))
        except BaseException:
            session.close()
            raise
    return session
