"""The cohort's commands: embed a manifest, encode a cohort (and index its features), write its atlas, and
the per-slide analyses (correlate, predict-genes) run over every slide with a Visium sample."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import PathsaeError
from .progress import throttled_printer


def embed_manifest(args: argparse.Namespace, options, request) -> None:
    """`pathsae embed --manifest M -o COHORT`: one progress line across slides, one line per slide."""
    from ..engine.cohort import embed_cohort
    from ..engine.embed import summary_line
    from ..io.manifest import read_manifest

    if args.slides:
        raise PathsaeError("give slides or --manifest, not both")
    if args.visium:
        raise PathsaeError("--visium belongs to one slide; in a manifest, give each slide's in its 'visium' column")
    manifest = read_manifest(args.manifest)
    interactive = sys.stderr.isatty()
    progress = throttled_printer(lambda event: (
        f"cohort: {event.slides_done}/{event.slides} slides, {event.done:,}/{event.total:,} tiles, "
        f"{event.tiles_per_s:.1f} tiles/s, {event.eta_text}", event.done == event.total))  # fmt: skip

    def slide_done(summary: dict) -> None:
        if summary.get("skipped"):
            print(f"{Path(summary['slide']).name}: finished before, skipped")
        else:
            print(("\n" if interactive else "") + summary_line(summary))

    def note(text: str) -> None:
        print(f"pathsae: note: {text}", file=sys.stderr)

    cohort, _ = embed_cohort(
        manifest, args.output, request, options, args.scheduler, args.workers, slide_done, progress, note
    )
    print(
        f"{args.output}: cohort of {len(cohort.names)} slides "
        f"(variables: {', '.join(cohort.variables.columns) or 'none'})"
    )


def encode_cohort_command(args: argparse.Namespace) -> None:
    """`pathsae encode COHORT --sae SAE`: every store encoded, then the feature index built."""
    from ..data.cohort import expand_stores
    from ..engine.cohort import build_index, encode_cohort

    _, cohort = expand_stores([args.store])

    def slide_done(name: str, skipped: bool) -> None:
        print(f"encode {name}: " + ("encoded by this SAE before, skipped" if skipped else "done"), file=sys.stderr)

    name = encode_cohort(cohort, args.sae, args.name, slide_done)
    index, notes = build_index(cohort, name, args.top_tiles)
    for text in notes:
        print(f"pathsae: note: {text}", file=sys.stderr)
    tested = f", {len(index.variables)} slide-level variable(s) tested" if len(index.variables) else ""
    print(
        f"{cohort.index_path(name)}: index of {index.n_features} features over {int(index.n_tiles.sum()):,} tiles "
        f"of {len(cohort.names)} slides in {index.meta['seconds']:.2f} s{tested}"
    )
    for variable, kind in zip(index.variables, index.assoc_kind, strict=True):
        best = index.strongest(str(variable))
        if best is not None:
            statistic = "rho" if kind == "spearman" else "H"
            print(
                f"  {variable}: strongest f{best[0]} ({statistic} {best[2]:.3f}, q {best[3]:.3g}, slides as the unit)"
            )


def atlas(args: argparse.Namespace) -> None:
    """`pathsae atlas --cohort C --sae SAE -o ATLAS`: the static site."""
    from ..data.cohort import open_cohort
    from ..engine.cohort import cohort_index
    from ..report.atlas import write_atlas

    cohort = open_cohort(args.cohort)
    index, notes = cohort_index(cohort, args.sae, args.name)
    for text in notes:
        print(f"pathsae: note: {text}", file=sys.stderr)
    summary = write_atlas(cohort, index, args.sae, args.output, args.overwrite, args.features, args.genes_table)
    print(
        f"{args.output}: atlas of {summary['features']} features ({summary['tiles']} tile images, "
        f"{summary['maps']} maps) in {summary['seconds']:.1f} s; open {args.output / 'index.html'}"
    )


def per_slide_table(cohort, run) -> tuple:
    """``run(store, sample)`` for every slide of the cohort with a Visium sample; tables stacked with a slide column."""
    import pandas as pd

    from ..io.visium import open_visium

    tables = []
    for entry, store in zip(cohort.slides, cohort.store_paths, strict=True):
        if entry.visium is None:
            continue
        sample = open_visium(entry.visium)
        for note in sample.notes:
            print(f"pathsae: note: {entry.name}: {note}", file=sys.stderr)
        table = run(store, sample)
        tables.append(table.assign(slide=entry.name)[["slide", *table.columns]])
    if not tables:
        raise PathsaeError(
            f"{cohort.folder}: no slide of the cohort has a Visium sample (the manifest's 'visium' column)"
        )
    return pd.concat(tables, ignore_index=True), len(tables)
