"""`pathsae`'s commands and flags, in one place: types check every value while parsing (arguments.py),
choice lists are read from the registries (SAE architectures, nulls, concept methods, probe models)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.features import CONCEPT_METHODS
from ..analysis.gene_prediction import MODELS
from ..analysis.spatial_null import NULLS
from ..data.tiles import MIN_TISSUE_DEFAULT
from ..models.encoders.device import DEVICES, DTYPES
from .arguments import (
    Parser,
    feature_number,
    finite_float,
    fraction,
    microns_per_pixel,
    non_negative_float,
    positive_float,
    positive_int,
)


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; choice lists come from the registries that define them."""
    parser = Parser(
        prog="pathsae", description="the command line of napari-pathsae: tiles, encoders, SAEs, spots and tables"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="describe a slide or Visium sample (levels, µm/px, spots)")
    info.add_argument("path", type=Path, help="slide, image, Space Ranger outs/ folder or .h5ad")
    info.add_argument("--fullres", type=Path, help="full-resolution slide of a Visium sample")
    info.add_argument("--slide-mpp", type=microns_per_pixel(), help="µm/px of the (full-resolution) slide")
    _backend_option(info)

    view = commands.add_parser("view", help="open slides/samples in napari with the plugin docked")
    view.add_argument("paths", type=Path, nargs="*", help="slides or images")
    view.add_argument("--visium", type=Path, help="Space Ranger outs/ folder or .h5ad")
    view.add_argument("--slide-mpp", type=microns_per_pixel(), help="µm/px of the slide when its metadata lacks it")
    view.add_argument("--genes", nargs="*", default=[], help="genes to colour spots by")
    view.add_argument("--screenshot", type=Path, help="write a PNG of the window and exit")
    _backend_option(view)

    _engine_commands(commands)
    _analysis_commands(commands)

    demo = commands.add_parser(
        "demo", help="the main job on the embedded sample: encoder, SAE trained on it, features painted"
    )
    demo.add_argument("--screenshot", type=Path, help="write a PNG of the window and exit")
    demo.add_argument("--sample", default="skin_slide", choices=["skin_slide", "visium_heart"])
    return parser


def _backend_option(command) -> None:
    from ..io.backends import backends

    command.add_argument(
        "--backend", choices=[b.name for b in backends()],
        help="the slide reader (default: tifffile for the TIFF family, else the one that recognises the file)",
    )  # fmt: skip


def _engine_commands(commands) -> None:
    embed = commands.add_parser("embed", help="tile slides and store encoder embeddings (resumable)")
    embed.add_argument("slides", type=Path, nargs="*", help="slides (or give --manifest)")
    embed.add_argument(
        "--manifest", type=Path, help="cohort CSV (slide, optional visium, slide_mpp, name, slide-level variables)"
    )
    embed.add_argument(
        "-o", "--output", type=Path, required=True, help="store (one slide), folder of stores, or cohort folder"
    )
    embed.add_argument(
        "--encoder", default="vit_small_patch16_224", help="preset, timm name, hf-hub:ORG/NAME or checkpoint"
    )
    embed.add_argument("--arch", help="timm architecture of a checkpoint (or a preset name)")
    embed.add_argument("--tile-um", type=positive_float(), default=112.0, help="tile side in µm (default 112)")
    embed.add_argument(
        "--tile-px", type=positive_int(16, 4096), default=224, help="pixels across a tile fed to the encoder"
    )
    embed.add_argument(
        "--min-tissue", type=fraction(), default=MIN_TISSUE_DEFAULT, help="minimum tissue share of a kept tile"
    )
    embed.add_argument("--slide-mpp", type=microns_per_pixel(), help="µm/px of the slide when its metadata lacks it")
    _backend_option(embed)
    embed.add_argument("--device", default="auto", choices=DEVICES)
    embed.add_argument("--dtype", default="auto", choices=["auto", *DTYPES])
    embed.add_argument("--batch-size", type=positive_int(), default=32)
    embed.add_argument(
        "--layers", type=positive_int(), nargs="*", default=[], help="also store these blocks' CLS tokens (1-based)"
    )
    embed.add_argument("--patch-tokens", action="store_true", help="also store patch tokens (float16)")
    embed.add_argument("--visium", type=Path, help="Space Ranger outs/ of the same section")
    embed.add_argument(
        "--scheduler", help="dask.distributed scheduler address (default: a LocalCluster for several slides)"
    )
    embed.add_argument("--workers", type=positive_int(), help="LocalCluster workers")
    embed.add_argument("--seed", type=positive_int(0), default=0, help="seed of a random-init encoder")
    embed.add_argument(
        "--random-init", action="store_true", help="run a preset's architecture with random weights when offline"
    )
    embed.add_argument("--chunk-tiles", type=positive_int(), default=512, help="tiles written together")
    embed.add_argument("--readers", type=positive_int(), help="tile-reading threads (1 on CPU, up to 8 on GPU)")

    from ..io.importers import importer_names

    imports = commands.add_parser(
        "import", help="embeddings from TRIDENT, CLAM or STAMP into a store of their slide (then train/encode/view)"
    )
    imports.add_argument("files", type=Path, nargs="+", help="embedding files (.h5, or CLAM/TRIDENT .pt)")
    imports.add_argument("--slide", type=Path, nargs="+", required=True, help="the slide of each file, in order")
    imports.add_argument("-o", "--output", type=Path, required=True, help="store (one file) or folder of stores")
    imports.add_argument("--format", choices=importer_names(), help="the file's format (default: recognised)")
    imports.add_argument(
        "--coords", type=Path, nargs="+", help="patching h5 of each file (.pt features, or CLAM's patch size)"
    )
    imports.add_argument("--slide-mpp", type=microns_per_pixel(), help="µm/px of the slide when its metadata lacks it")
    imports.add_argument("--encoder", help="the encoder's name when the file does not record it (CLAM)")
    _backend_option(imports)

    train = commands.add_parser("train", help="train an SAE on stored embeddings")
    train.add_argument("stores", type=Path, nargs="+", help="stores, or one cohort folder (slides drawn in balance)")
    train.add_argument(
        "-o", "--output", type=Path, required=True, help="SAE folder (cfg.json + sae_weights.safetensors)"
    )
    from ..models.sae import architectures, descriptions  # the SAE registry (imports torch)

    train.add_argument(
        "--arch", default="topk", choices=architectures(),
        help="; ".join(f"{name}: {text}" for name, text in descriptions().items()),
    )  # fmt: skip
    train.add_argument(
        "--expansion", type=positive_int(1, 256),
        help="SAE width / embedding width (default: from the data, 3 latents per tile, x1 to x8); "
        "latents that never fire are removed",
    )  # fmt: skip
    train.add_argument("--k", type=positive_int(), default=32, help="active features per input (topk, batchtopk)")
    train.add_argument("--l1", type=non_negative_float(), default=1e-2, help="L1 coefficient (relu)")
    train.add_argument("--l0", type=non_negative_float(), default=3e-3, help="L0 coefficient (jumprelu)")
    train.add_argument("--layer", default="pooled", help="pooled, or a block number stored with --layers")
    train.add_argument("--seed", type=positive_int(0), default=0)
    train.add_argument(
        "--samples", type=positive_int(), help="inputs seen in training (default: 100 per tile, at most 300,000)"
    )
    train.add_argument("--batch-size", type=positive_int(), default=1024)
    train.add_argument("--lr", type=positive_float(1.0), default=4e-4)
    train.add_argument("--overwrite", action="store_true", help="replace an existing SAE folder")
    train.add_argument("--device", default="auto", choices=DEVICES)

    encode = commands.add_parser("encode", help="SAE activations of a store's embeddings")
    encode.add_argument("store", type=Path, help="a store, or a cohort folder (then its feature index is built)")
    encode.add_argument("--sae", type=Path, required=True)
    encode.add_argument("--name", help="name of the activations in the store (default: the SAE folder's)")
    encode.add_argument(
        "--top-tiles", type=positive_int(1, 1000), default=32, help="cohort: top tiles kept per feature in the index"
    )

    atlas = commands.add_parser("atlas", help="a cohort's feature atlas: a static HTML site, one page per feature")
    atlas.add_argument("--cohort", type=Path, required=True, help="cohort folder (encoded with the SAE)")
    atlas.add_argument("--sae", type=Path, required=True, help="the SAE folder (labels, stability)")
    atlas.add_argument("--name", help="the activations' name in the stores (default: the SAE folder's)")
    atlas.add_argument("-o", "--output", type=Path, required=True, help="a new folder")
    atlas.add_argument("--features", type=feature_number, nargs="+", help="only these features' pages (default: all)")
    atlas.add_argument("--genes-table", type=Path, help="a `pathsae correlate` table: each feature's genes")
    atlas.add_argument("--overwrite", action="store_true")

    correlate = commands.add_parser("correlate", help="correlate SAE features with Visium genes over spots")
    correlate.add_argument("store", type=Path, help="a store, or a cohort folder (each slide with its Visium)")
    correlate.add_argument("--visium", type=Path, help="Space Ranger outs/ or .h5ad: correlate with genes at spots")
    correlate.add_argument(
        "--annotations", type=Path, help="CSV per tile (column tile, or x and y): its numeric columns"
    )
    correlate.add_argument("-o", "--output", type=Path, required=True)
    correlate.add_argument("--genes", nargs="*", help="genes to test (default: the most variable)")
    correlate.add_argument("--top-genes", type=positive_int(), help="only the N most variable detected genes")
    correlate.add_argument("--sae", help="activations name when the store holds several")
    correlate.add_argument(
        "--all", action="store_true", help="write every pair, not only q_spatial ≤ 0.05 and the top 10 each way"
    )
    correlate.add_argument(
        "--null", choices=NULLS,
        help="run on a spatial null (spots moved off their own tissue): every discovery it makes is false",
    )  # fmt: skip
    correlate.add_argument(
        "--block-um", type=positive_float(), help="--null shuffle-blocks: side of the squares (default 1000)"
    )
    correlate.add_argument("--seed", type=positive_int(0), help="--null shuffle-blocks: its permutation (default 0)")
    correlate.add_argument("--overwrite", action="store_true")

    export = commands.add_parser("export", help="tile (or Visium spot) table of a region")
    export.add_argument("store", type=Path)
    export.add_argument(
        "-o", "--output", type=Path, required=True,
        help=".csv, .parquet, .h5ad; tiles also .h5 (TRIDENT-style) or .geojson (QuPath detections); "
        ".zarr: SpatialData (slide, tiles, spots with --visium)",
    )  # fmt: skip
    export.add_argument("--bbox", type=finite_float(), nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="level-0 pixels")
    export.add_argument("--geojson", type=Path, help="polygon(s) in level-0 pixels (a QuPath annotation export too)")
    export.add_argument("--region-class", help="only the --geojson annotations QuPath classified so (e.g. Tumor)")
    export.add_argument(
        "--features", type=feature_number, nargs="+", help=".geojson: the features written as measurements "
        "(12 or f12; default: the ten strongest on average)",
    )  # fmt: skip
    export.add_argument("--concepts", type=Path, help=".geojson: tiles.csv of `pathsae concepts`: classes")
    export.add_argument(
        "--image-side", type=positive_int(0), help=".zarr: the slide's level written is the finest at most this "
        "many px a side (default 8192; 0: level 0, the full slide)",
    )  # fmt: skip
    export.add_argument("--visium", type=Path, help="write the spot table (genes + aggregated features)")
    export.add_argument("--genes", nargs="*")
    export.add_argument("--sae", help="activations name when the store holds several")
    export.add_argument("--overwrite", action="store_true")


def _analysis_commands(commands) -> None:
    match = commands.add_parser("match", help="match two SAEs' features: decoder cosine, activation correlation")
    match.add_argument("sae_a", type=Path)
    match.add_argument("sae_b", type=Path)
    match.add_argument("-o", "--output", type=Path, required=True, help="CSV, one row per feature of SAE_A")
    match.add_argument("--store", type=Path, help="a store both SAEs can read: adds activation correlation")
    match.add_argument("--overwrite", action="store_true")

    report = commands.add_parser("report", help="an SAE's report card: SAELens metrics, stability, biology")
    report.add_argument("sae", type=Path)
    report.add_argument("--store", type=Path, nargs="+", required=True, help="stores the SAE's layer was embedded in")
    report.add_argument("--visium", type=Path, help="the first store's Visium sample: features' genes, spatial test")
    report.add_argument("--other-sae", type=Path, help="another seed's SAE: each feature's best-matched activation r")
    report.add_argument("-o", "--output", type=Path, required=True, help="a new folder")
    report.add_argument("--overwrite", action="store_true")

    concepts = commands.add_parser("concepts", help="concepts (clustered activations), maps and importance")
    concepts.add_argument("stores", type=Path, nargs="+", help="stores, or one cohort folder")
    concepts.add_argument("-n", "--n-concepts", type=positive_int(2), default=8)
    concepts.add_argument("-o", "--output", type=Path, required=True, help="folder for tables and maps")
    concepts.add_argument("--method", default="kmeans", choices=CONCEPT_METHODS)
    concepts.add_argument("--sae", help="activations name when the stores hold several")
    concepts.add_argument("--visium", type=Path, help="Space Ranger outs/ of the (one) store: importance per gene")
    concepts.add_argument("--genes", nargs="*", help="genes for importance (default: the 20 most variable)")
    concepts.add_argument(
        "--slide-targets", type=Path, help="CSV: store name, then numeric slide-level targets (a cohort: its variables)"
    )
    concepts.add_argument("--seed", type=positive_int(0), default=0)
    concepts.add_argument("--overwrite", action="store_true")

    predict = commands.add_parser("predict-genes", help="held-out prediction of spot gene expression from features")
    predict.add_argument("store", type=Path, help="a store, or a cohort folder (each slide with its Visium)")
    predict.add_argument("--visium", type=Path, help="Space Ranger outs/ or .h5ad (a cohort: from its manifest)")
    predict.add_argument("-o", "--output", type=Path, required=True, help="CSV: gene, r (held-out Pearson), ...")
    predict.add_argument("--genes", nargs="*", help="genes to predict (default: every gene detected in enough spots)")
    predict.add_argument("--top-genes", type=positive_int(), help="only the N most variable detected genes")
    predict.add_argument("--model", default="ridge", choices=MODELS, help="linear probe or attention MIL")
    predict.add_argument("--folds", type=positive_int(2), default=5)
    predict.add_argument("--block-um", type=positive_float(), default=1000.0, help="side of the held-out squares")
    predict.add_argument("--sae", help="activations name when the store holds several")
    predict.add_argument("--top-features", type=positive_int(), default=10, help="features listed per gene")
    predict.add_argument("--features-table", type=Path, help="CSV of each gene's top features and coefficients")
    predict.add_argument("--spots-table", type=Path, help="CSV of measured and held-out predicted values per spot")
    predict.add_argument(
        "--figures", type=Path, help="folder of PNGs (the named genes, else the 12 best): measured, predicted, features"
    )
    predict.add_argument("--seed", type=positive_int(0), default=0)
    predict.add_argument("--overwrite", action="store_true")
