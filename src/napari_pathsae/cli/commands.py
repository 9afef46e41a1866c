"""`pathsae`: the command line. Thin: parse, call the API, print one clear line on error."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import traceback
from pathlib import Path

from ..errors import PathsaeError
from ..names import embedding_name
from .parser import build_parser


def _progress_printer(label: str):
    from .progress import throttled_printer

    return throttled_printer(lambda event: (
        f"{label} {event.slide}: {event.done}/{event.total} tiles, {event.tiles_per_s:.1f} tiles/s, "
        f"{event.eta_text}", event.done == event.total))  # fmt: skip


def _embed(args: argparse.Namespace) -> None:
    from ..data.identity import visium_fingerprint
    from ..data.store import refuse_a_file
    from ..data.tiles import TileGeometry
    from ..engine.embed import EmbedOptions, open_tiles, summary_line

    geometry = TileGeometry.from_options(args.tile_um, args.tile_px, args.min_tissue)
    allow_random = args.random_init or None  # None: presets need their weights, timm names may run random
    if args.manifest:
        from ..engine.scale_out import EncoderRequest
        from .cohort_commands import embed_manifest

        options = EmbedOptions(
            geometry, args.batch_size, tuple(args.layers), args.patch_tokens, args.slide_mpp, None, args.chunk_tiles,
            args.readers, None, args.backend,
        )  # fmt: skip
        request = EncoderRequest(args.encoder, args.arch, args.device, args.dtype, args.seed, allow_random)
        return embed_manifest(args, options, request)
    if not args.slides:
        raise PathsaeError("give the slides to embed, or --manifest COHORT.csv")
    for slide in args.slides:
        if not slide.exists():
            raise PathsaeError(f"no such slide: {slide}")
    if args.visium and len(args.slides) > 1:
        raise PathsaeError("--visium belongs to one section: embed its slide alone")
    if len(args.slides) == 1 and not args.scheduler:
        if not args.output.parent.is_dir():
            raise PathsaeError(f"no folder {args.output.parent} for the store")
        refuse_a_file(args.output)  # before the model loads (its notes would come first)
    slide_mpp = args.slide_mpp
    if args.visium:  # opened (and so checked) whether or not its µm/px is needed
        from ..io.visium import open_visium

        sample = open_visium(args.visium, fullres_image=args.slides[0], mpp=slide_mpp)
        _print_notes(sample.notes)
        if slide_mpp is None and not _slide_knows_mpp(args.slides[0]) and sample.frame.mpp:
            slide_mpp = sample.frame.mpp
            print(
                f"pathsae: note: slide µm/px {slide_mpp:.4f} taken from the Visium sample ({sample.mpp_source})",
                file=sys.stderr,
            )
    options = EmbedOptions(
        geometry,
        args.batch_size,
        tuple(args.layers),
        args.patch_tokens,
        slide_mpp,
        str(args.visium.resolve()) if args.visium else None,
        args.chunk_tiles,
        args.readers,
        visium_fingerprint(sample) if args.visium else None,
        args.backend,
    )
    tiles = None  # each slide's tissue grid, so a blank slide is refused before the model loads
    for slide in args.slides:
        checked = open_tiles(slide, options)
        if len(args.slides) == 1 and not args.scheduler:
            tiles = checked  # reused by the run
        else:
            checked[0].close()
    if tiles is not None:
        from ..engine.embed import embed_slide
        from ..models.encoders import load_encoder

        try:
            encoder = load_encoder(args.encoder, args.arch, args.device, args.dtype, args.seed, allow_random)
        except BaseException:
            tiles[0].close()
            raise
        summary = embed_slide(args.slides[0], args.output, encoder, options, _progress_printer("embed"), tiles)
        print(summary_line(summary))
        return
    from ..engine.scale_out import EncoderRequest, embed_many

    args.output.mkdir(parents=True, exist_ok=True)
    stems = [s.name.split(".")[0] for s in args.slides]
    if len(set(stems)) != len(stems):
        raise PathsaeError("several slides share a file name; embed them into separate output folders")
    stores = [str(args.output / f"{stem}.zarr") for stem in stems]
    request = EncoderRequest(args.encoder, args.arch, args.device, args.dtype, args.seed, allow_random)
    embed_many(
        [str(s) for s in args.slides],
        stores,
        request,
        options,
        args.scheduler,
        args.workers,
        lambda s: print(summary_line(s)),
    )


def _import(args: argparse.Namespace) -> None:
    from ..engine.import_embeddings import import_embeddings

    files, slides, coords = args.files, args.slide, args.coords or [None] * len(args.files)
    if len(slides) != len(files) or len(coords) != len(files):
        raise PathsaeError(f"{len(files)} files need as many --slide (got {len(slides)}) and --coords, in order")
    if len(files) == 1:
        stores = [args.output]
    else:
        stems = [f.name.split(".")[0] for f in files]
        if len(set(stems)) != len(stems):
            raise PathsaeError("several files share a name; import them into separate output folders")
        args.output.mkdir(parents=True, exist_ok=True)
        stores = [args.output / f"{stem}.zarr" for stem in stems]
    for file, slide, coord, store in zip(files, slides, coords, stores, strict=True):
        summary = import_embeddings(
            file, slide, store, args.format, coord, args.slide_mpp, args.encoder, slide_backend=args.backend
        )
        _print_notes(summary["notes"])
        print(
            f"{store}: {summary['tiles']} tiles x {summary['width']} features of {summary['encoder']} "
            f"from {summary['format']} ({file.name}) in {summary['seconds']:.1f} s"
        )


def _slide_knows_mpp(path: Path) -> bool:
    from ..io.slides import open_slide

    slide = open_slide(path)
    slide.close()
    return slide.mpp is not None


def _print_notes(notes: list[str]) -> None:
    """What an input's reader dropped or assumed, one line each on stderr."""
    for note in notes:
        print(f"pathsae: note: {note}", file=sys.stderr)


def _train(args: argparse.Namespace) -> None:
    from ..engine.encode import train_to_folder
    from ..models.encoders import choose_device
    from ..models.sae.train import TrainOptions

    layer = embedding_name(args.layer)
    options = TrainOptions(
        args.arch, args.expansion, args.k, args.l1, args.l0, layer, args.seed, args.batch_size, args.samples, args.lr,
        str(choose_device(args.device)),
    )  # fmt: skip

    from .progress import throttled_printer

    def describe(event: tuple) -> tuple[str, bool]:
        step, steps, parts = event
        return f"train: step {step}/{steps}, mse {parts.get('mse', float('nan')):.4f}", step == steps

    printer = throttled_printer(describe)  # a line every 10 s in a log, rewritten every 0.5 s on a terminal

    def show(step: int, steps: int, parts: dict) -> None:
        printer((step, steps, parts))

    from ..data.cohort import expand_stores

    stores, _ = expand_stores(args.stores)
    metrics = train_to_folder(stores, args.output, options, show, args.overwrite)
    print(
        f"{args.output}: {args.arch} SAE, {metrics['d_sae']} features "
        f"({metrics['never_fired_removed']} of {metrics['trained_width']} never fired: removed, so none is dead); "
        f"FVU {metrics['fvu']:.4f}, L0 {metrics['l0']:.1f}, "
        f"dead {metrics['dead_fraction']:.1%}, dense {metrics['dense_fraction']:.1%}, "
        f"{metrics['inputs_per_s']:.0f} inputs/s"
    )


def _encode(args: argparse.Namespace) -> None:
    from ..data.cohort import is_cohort
    from ..engine.encode import encode_store

    if is_cohort(args.store):
        from .cohort_commands import encode_cohort_command

        return encode_cohort_command(args)
    name = encode_store(args.store, args.sae, args.name)
    print(f"{args.store}: activations/{name} written")


#: The q columns a correlation summary counts (over every pair tested, not only the pairs written), naive first.
DISCOVERY_COLUMNS = (("q", "naive Pearson"), ("spearman_q", "naive Spearman"), ("q_spatial", "spatial"))


def _correlate(args: argparse.Namespace) -> None:
    from ..analysis.annotations import correlate_annotations
    from ..data.outputs import writable_target
    from ..engine.encode import correlate_store

    if args.null and not args.visium and not _cohort_of(args.store):
        raise PathsaeError("--null moves Visium spots: it needs --visium")
    if args.null != "shuffle-blocks" and (args.block_um is not None or args.seed is not None):
        raise PathsaeError("--block-um and --seed belong to --null shuffle-blocks: give that null or drop them")
    writable_target(args.output, args.overwrite)  # refused before the work, not after it
    cohort = _cohort_of(args.store)
    if cohort is not None:
        from .cohort_commands import per_slide_table

        if args.visium or args.annotations or args.null:
            raise PathsaeError("a cohort's slides are correlated with their own Visium (its manifest): "
                               "drop --visium/--annotations/--null, or give one store")  # fmt: skip
        table, slides = per_slide_table(cohort, lambda store, sample: correlate_store(
            store, sample, args.genes, args.top_genes, args.sae, args.all))  # fmt: skip
        _write_csv(table, args.output, args.overwrite)
        print(f"{args.output}: {len(table)} feature-gene pairs written from {slides} slide(s) of {args.store}")
        return
    if (args.visium is None) == (args.annotations is None):
        raise PathsaeError("give --visium (genes at spots) or --annotations (a per-tile table), one of them")
    if args.visium:
        table = correlate_store(
            args.store, _visium(args.visium), args.genes, args.top_genes, args.sae, args.all,
            args.null, args.block_um, args.seed,
        )  # fmt: skip
        what, unit = "feature-gene", "spots"
    else:
        table = correlate_annotations(args.store, args.annotations, args.sae, args.all)
        what, unit = "feature-annotation", "tiles"
    _write_csv(table, args.output, args.overwrite)
    n = int(table[f"n_{unit}"].iloc[0]) if len(table) else 0
    found = ", ".join(f"{label} {table.attrs['discoveries'][column]}" for column, label in DISCOVERY_COLUMNS)
    null = f"null {args.null}: " if args.null else ""
    false = " (on a null, every discovery is false)" if args.null else ""
    tested = table.attrs["tested"]
    print(f"{null}{args.output}: {len(table)} of {tested} {what} pairs written, over {n} {unit}; "
          f"at q ≤ 0.05: {found}{false}")  # fmt: skip


def _write_csv(table, path: Path, overwrite: bool) -> None:
    from ..data.outputs import atomic_output

    with atomic_output(path, overwrite) as temp:
        table.to_csv(temp, index=False)


def _match(args: argparse.Namespace) -> None:
    from ..analysis.matching import match_saes, match_summary
    from ..data.store import TileStore

    store = TileStore.open(args.store) if args.store else None
    table = match_saes(args.sae_a, args.sae_b, store)
    _write_csv(table, args.output, args.overwrite)
    print(
        f"{args.output}: {len(table)} features of {args.sae_a.name} matched in {args.sae_b.name}; "
        f"{match_summary(table)}"
    )


def _report(args: argparse.Namespace) -> None:
    from ..analysis.sae_report import sae_report
    from ..data.outputs import writable_target
    from ..data.store import TileStore
    from ..report.sae_report import write_report

    writable_target(args.output, args.overwrite)  # refused before the work, not after it
    stores = [TileStore.open(s) for s in args.store]
    sample = _visium(args.visium) if args.visium else None
    report = sae_report(args.sae, stores, sample, args.other_sae)
    _print_notes(write_report(report, args.output, args.sae, args.overwrite))
    s = report.summary
    parts = [
        f"{s['n_features']} features over {s['n_tiles']} tiles: explained variance {s['explained_variance']:.4f}, "
        f"L0 {s['l0']:.1f}, dead {s['dead_fraction']:.1%}, dense {s['dense_fraction']:.1%}"
    ]
    if "stability" in s:
        parts.append(f"{s['stability']['stable_features']} of {s['stability']['features_compared']} stable")
    if "biology" in s:
        b = s["biology"]
        parts.append(f"{b['features_with_spatial_gene']} with a gene at spatial q ≤ 0.05")
    print(f"{args.output}: " + "; ".join(parts))


def _concepts(args: argparse.Namespace) -> None:
    from ..analysis.concept_study import find_concepts
    from ..data.outputs import atomic_folder, writable_target
    from ..data.store import TileStore
    from ..report.concepts import write_concepts

    if args.visium and len(args.stores) > 1:
        raise PathsaeError("--visium belongs to one section: give one store with it")
    if args.visium and args.slide_targets:
        raise PathsaeError("give --visium (spot targets) or --slide-targets (slide targets), not both")
    from ..data.cohort import expand_stores

    writable_target(args.output, args.overwrite)  # refused before the work, not after it
    paths, cohort = expand_stores(args.stores)
    stores = [TileStore.open(s) for s in paths]
    names = [s.name.removesuffix(".zarr") for s in paths]
    if len(set(names)) != len(names):
        raise PathsaeError("several stores share a name; rename them so their rows can be told apart")
    for store in stores:
        _slide_for_figures(store)
    found = find_concepts(stores, args.n_concepts, args.method, args.sae, args.seed)
    importance = _concept_importance(args, stores, names, found, cohort)
    with atomic_folder(args.output, args.overwrite) as folder:
        write_concepts(folder, names, stores, found, importance, seed=args.seed)
    extra = ", importance.csv" if importance is not None else ""
    print(
        f"{args.output}: {args.n_concepts} {args.method} concepts over {len(stores)} slide(s): "
        f"tiles.csv, concepts.csv{extra}, maps, neighbourhoods"
    )


def _concept_importance(args, stores, names, found, cohort=None):
    from ..analysis.concept_study import slide_importance, spot_importance

    if args.visium:
        return spot_importance(stores[0], _visium(args.visium), found.weights[0], args.genes)
    if cohort is not None and not args.slide_targets:
        numeric = cohort.variables.select_dtypes("number")
        return slide_importance(names, found.weights, numeric) if len(numeric.columns) else None
    if args.slide_targets:
        import pandas as pd

        try:
            targets = pd.read_csv(args.slide_targets, index_col=0)
        except (OSError, ValueError) as exc:
            raise PathsaeError(f"{args.slide_targets}: not a readable CSV ({exc})") from None
        targets.index = targets.index.astype(str)
        return slide_importance(names, found.weights, targets)
    return None


def _predict_genes(args: argparse.Namespace) -> None:
    from ..analysis.gene_prediction import predict_genes
    from ..data.outputs import writable_target
    from ..data.store import TileStore

    outputs = [p.resolve() for p in (args.output, args.features_table, args.spots_table, args.figures) if p]
    if len(set(outputs)) < len(outputs):
        raise PathsaeError("two of -o, --features-table, --spots-table and --figures name the same path")
    for path in outputs:  # refused before the work, not after it
        writable_target(path, args.overwrite)
    cohort = _cohort_of(args.store)
    if cohort is not None:
        return _predict_genes_cohort(args, cohort)
    if args.visium is None:
        raise PathsaeError("give --visium (the store's Space Ranger outs/ or .h5ad)")
    store, sample = TileStore.open(args.store), _visium(args.visium)
    if args.figures:
        _slide_for_figures(store)
    result = predict_genes(
        store, sample, args.genes, args.top_genes, model=args.model, n_folds=args.folds, block_um=args.block_um,
        sae=args.sae, top_features=args.top_features, seed=args.seed,
    )  # fmt: skip
    if args.figures:
        from ..data.outputs import atomic_folder
        from ..report.figures import gene_prediction_figure

        with atomic_folder(args.figures, args.overwrite) as folder:
            for gene in args.genes or result.table["gene"][:12]:
                gene_prediction_figure(store, sample, result, gene, folder / f"{gene}.png")
    for table, path in ((result.features, args.features_table), (result.spots, args.spots_table)):
        if path:
            _write_csv(table, path, args.overwrite)
    _write_csv(result.table, args.output, args.overwrite)
    best = result.table.iloc[0]
    print(
        f"{args.output}: {len(result.table)} genes, held-out r over {int(best['n_spots'])} spots "
        f"({args.folds} folds of {result.block_um:g} µm squares); best {best['gene']} r = {best['r']:.3f}"
    )


def _predict_genes_cohort(args: argparse.Namespace, cohort) -> None:
    from ..analysis.gene_prediction import predict_genes
    from ..data.store import TileStore
    from .cohort_commands import per_slide_table

    extra = [flag for flag, value in (("--visium", args.visium), ("--features-table", args.features_table),
             ("--spots-table", args.spots_table), ("--figures", args.figures)) if value]  # fmt: skip
    if extra:
        raise PathsaeError(f"{extra[0]} belongs to one store; over a cohort, predict-genes writes one table per gene "
                           "and slide (each slide with its manifest's Visium)")  # fmt: skip

    def run(store, sample):
        return predict_genes(
            TileStore.open(store), sample, args.genes, args.top_genes, model=args.model, n_folds=args.folds,
            block_um=args.block_um, sae=args.sae, top_features=args.top_features, seed=args.seed,
        ).table  # fmt: skip

    table, slides = per_slide_table(cohort, run)
    _write_csv(table, args.output, args.overwrite)
    print(f"{args.output}: {len(table)} gene rows from {slides} slide(s), held-out within each slide")


def _cohort_of(path: Path):
    from ..data.cohort import is_cohort, open_cohort

    return open_cohort(path) if is_cohort(path) else None


def _export(args: argparse.Namespace) -> None:
    from ..data.store import TileStore
    from ..report.export import export_spots, export_tiles

    store = TileStore.open(args.store)
    if args.region_class and not args.geojson:
        raise PathsaeError("--region-class picks annotations of --geojson: give the GeoJSON file too")
    geojson_only = [name for name in ("features", "concepts") if getattr(args, name)]
    if geojson_only and args.output.suffix.lower() != ".geojson":
        raise PathsaeError(f"--{geojson_only[0]} belongs to a QuPath .geojson output")
    if args.image_side is not None and args.output.suffix.lower() != ".zarr":
        raise PathsaeError("--image-side belongs to a SpatialData .zarr output")
    if args.output.suffix.lower() == ".zarr":
        from ..report.export import export_spatialdata

        sample = _visium(args.visium) if args.visium else None
        tiles, spots, notes = export_spatialdata(
            store, args.output, sample, args.bbox, args.geojson, args.sae, args.overwrite,
            region_class=args.region_class, image_side=args.image_side,
        )  # fmt: skip
        _print_notes(notes)
        print(f"{args.output}: SpatialData with {tiles} tiles" + (f" and {spots} spots" if sample else ""))
    elif args.visium:
        rows = export_spots(
            store, _visium(args.visium), args.output, args.genes, args.sae, args.overwrite,
            bbox=args.bbox, geojson=args.geojson, region_class=args.region_class,
        )  # fmt: skip
        print(f"{args.output}: {rows} spots")
    else:
        if args.genes:
            raise PathsaeError("--genes belongs to a spot table: give --visium with it")
        concepts = _store_concepts(args.concepts, args.store) if args.concepts else None
        rows = export_tiles(
            store, args.output, args.bbox, args.geojson, args.sae, args.overwrite,
            region_class=args.region_class, features=args.features, concepts=concepts,
        )  # fmt: skip
        print(f"{args.output}: {rows} tiles")


def _store_concepts(path: Path, store: Path):
    """tile → concept for this store, from `pathsae concepts`' tiles.csv (or its folder)."""
    import pandas as pd

    table_path = path / "tiles.csv" if path.is_dir() else path
    try:
        table = pd.read_csv(table_path)
    except (OSError, ValueError) as exc:
        raise PathsaeError(f"{table_path}: not a readable concept table ({exc})") from None
    if not {"store", "tile", "concept"} <= set(table.columns):
        raise PathsaeError(f"{table_path}: expected the tiles.csv of `pathsae concepts` (store, tile, concept)")
    name = store.name.removesuffix(".zarr")
    rows = table[table["store"] == name] if table["store"].nunique() > 1 else table
    if rows.empty:
        raise PathsaeError(f"{table_path} has no tiles of {name} (it has {', '.join(table['store'].unique())})")
    return rows.set_index("tile")["concept"]


def _visium(path: Path):
    """A Visium sample for an analysis, its reader's notes (dropped barcodes, assumptions) on stderr."""
    from ..io.visium import open_visium

    sample = open_visium(path)
    _print_notes(sample.notes)
    return sample


def _slide_for_figures(store) -> None:
    """Before the work: the store's slide is the one embedded (refused if replaced), or maps go without it."""
    from ..data.identity import verified_slide_path

    if verified_slide_path(store) is None:
        _print_notes([f"{store.provenance['slide_path']} is gone; maps are drawn without the tissue under them"])


def _info(args: argparse.Namespace) -> None:
    from ..io.slides import is_slide_folder

    visium_folder = args.path.is_dir() and not is_slide_folder(args.path) and not args.backend
    if args.path.suffix.lower() == ".h5ad" or visium_folder:
        from ..io.visium import open_visium

        sample = open_visium(args.path, fullres_image=args.fullres, mpp=args.slide_mpp)
        print(f"{sample.library_id}: {sample.adata.n_obs} spots x {sample.adata.n_vars} genes")
        print(f"image: {sample.image_kind}" + (f" {sample.image.level_shapes}" if sample.image else ""))
        mpp = f"{sample.frame.mpp:.4f} µm/px ({sample.mpp_source})" if sample.frame.mpp else "unknown"
        print(f"full-resolution µm/px: {mpp}; spot diameter {sample.spot_diameter_world:.1f} {sample.frame.units}")
        for note in sample.notes:
            print(f"note: {note}")
        return
    from ..io.slides import open_slide

    slide = open_slide(args.path, mpp=args.slide_mpp, backend=args.backend)
    mpp = f"{slide.mpp:.4f} µm/px ({slide.mpp_source})" if slide.mpp else "unknown µm/px"
    print(f"{args.path.name}: {slide.backend}, axes {slide.axes}, {mpp}, pyramid {slide.pyramid}")
    for i, shape in enumerate(slide.level_shapes):
        print(f"  level {i}: {shape}")
    for note in slide.notes:
        print(f"note: {note}")
    if slide.mpp is None:
        print("note: µm/px unknown; give it with --slide-mpp (info, view and embed all take it)")


def _view(args: argparse.Namespace) -> None:
    from ..plugin.launch import run_viewer
    from ..plugin.reader import layers_for

    layers = []
    if args.visium:
        fullres = str(args.paths[0]) if args.paths else None
        layers += layers_for(fullres, str(args.visium), args.slide_mpp, args.genes)
        rest = args.paths[1:]
    else:
        rest = args.paths
    for path in rest:
        layers += layers_for(str(path), None, args.slide_mpp, [], args.backend)
    shot = run_viewer(layers, screenshot=args.screenshot)
    if shot:
        print(f"screenshot: {shot}")


def _demo(args: argparse.Namespace) -> None:
    from ..plugin.launch import run_demo, run_viewer

    if args.sample == "skin_slide":
        shot = run_demo(screenshot=args.screenshot)
    else:
        shot = run_viewer([], sample=args.sample, screenshot=args.screenshot)
    if shot:
        print(f"screenshot: {shot}")


def _atlas(args: argparse.Namespace) -> None:
    from .cohort_commands import atlas

    atlas(args)


def _refuse_output_over_an_input(args: argparse.Namespace) -> None:
    """``-o`` may not be or contain any input of the command, nor lie inside an input store or SAE folder: with
    --overwrite, writing it would delete that input (a store replaced by an SAE folder, an SAE by its report)."""
    output = getattr(args, "output", None)
    if output is None:
        return
    target = Path(output).resolve()
    for name, value in vars(args).items():
        if name == "output":
            continue
        for path in value if isinstance(value, list) else [value]:
            if not isinstance(path, Path):
                continue
            source = path.resolve()
            ours = source.suffix == ".zarr" or (source / "cfg.json").is_file()  # a store or an SAE folder
            if target == source or target in source.parents or (ours and source in target.parents):
                raise PathsaeError(f"-o {output} would overwrite or sit inside the input {path}: choose another -o")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        format="pathsae: %(levelname)s: %(message)s", level=logging.DEBUG if args.debug else logging.WARNING
    )
    if not args.debug:  # a damaged file's reader warnings would come before the one error line
        for library in ("tifffile", "pydicom", "wsidicom"):
            logging.getLogger(library).setLevel(logging.ERROR)
        for handler in logging.root.handlers:  # dask.distributed sets its own loggers to INFO: workers, nannies…
            handler.addFilter(lambda r: r.levelno >= logging.WARNING or not r.name.startswith("distributed"))
    try:
        _refuse_output_over_an_input(args)
        commands = {"info": _info, "view": _view, "demo": _demo, "embed": _embed, "train": _train}
        commands.update(encode=_encode, correlate=_correlate, export=_export, match=_match, concepts=_concepts)
        commands["report"] = _report
        commands["import"] = _import
        commands["predict-genes"] = _predict_genes
        commands["atlas"] = _atlas
        commands[args.command](args)
    except PathsaeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"pathsae: error: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return 1
    except OSError as exc:  # disk full, permission denied, read-only folder: the OS's words, and where
        if args.debug:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        hint = "; free space and rerun (a store resumes where it stopped)" if exc.errno == errno.ENOSPC else ""
        print(f"pathsae: error: {exc.strerror or exc}{where}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(("\n" if sys.stderr.isatty() else "") + "pathsae: interrupted", file=sys.stderr)  # after ^C
        return 130
    return 0
