"""`pathsae`: the command line. Thin: parse, call the API, print one clear line on error."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from .errors import PathsaeError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pathsae", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="describe a slide or Visium sample (levels, µm/px, spots)")
    info.add_argument("path", type=Path, help="slide, image, Space Ranger outs/ folder or .h5ad")
    info.add_argument("--fullres", type=Path, help="full-resolution slide of a Visium sample")
    info.add_argument("--mpp", type=float, help="µm/px of the (full-resolution) slide")

    view = commands.add_parser("view", help="open slides/samples in napari with the plugin docked")
    view.add_argument("paths", type=Path, nargs="*", help="slides or images")
    view.add_argument("--visium", type=Path, help="Space Ranger outs/ folder or .h5ad")
    view.add_argument("--mpp", type=float, help="µm/px override for the slide")
    view.add_argument("--genes", nargs="*", default=[], help="genes to colour spots by")
    view.add_argument("--screenshot", type=Path, help="write a PNG of the window and exit")

    demo = commands.add_parser("demo", help="napari with the plugin and the embedded sample slide")
    demo.add_argument("--screenshot", type=Path, help="write a PNG of the window and exit")
    demo.add_argument("--sample", default="skin_slide", choices=["skin_slide", "visium_heart"])
    return parser


def _info(args: argparse.Namespace) -> None:
    from .plugin.reader import is_visium_folder

    if args.path.suffix.lower() == ".h5ad" or is_visium_folder(args.path) or args.path.is_dir():
        from .io.visium import open_visium

        sample = open_visium(args.path, fullres_image=args.fullres, mpp=args.mpp)
        print(f"{sample.library_id}: {sample.adata.n_obs} spots x {sample.adata.n_vars} genes")
        print(f"image: {sample.image_kind}" + (f" {sample.image.level_shapes}" if sample.image else ""))
        mpp = f"{sample.frame.mpp:.4f} µm/px ({sample.mpp_source})" if sample.frame.mpp else "unknown"
        print(f"full-resolution µm/px: {mpp}; spot diameter {sample.spot_diameter_world:.1f} {sample.frame.units}")
        for note in sample.notes:
            print(f"note: {note}")
        return
    from .io.slides import open_slide

    slide = open_slide(args.path, mpp=args.mpp)
    mpp = f"{slide.mpp:.4f} µm/px ({slide.mpp_source})" if slide.mpp else "unknown µm/px"
    print(f"{args.path.name}: {slide.backend}, axes {slide.axes}, {mpp}, pyramid {slide.pyramid}")
    for i, shape in enumerate(slide.level_shapes):
        print(f"  level {i}: {shape}")


def _view(args: argparse.Namespace) -> None:
    from .plugin.launch import run_viewer
    from .plugin.reader import layers_for

    layers = []
    if args.visium:
        fullres = str(args.paths[0]) if args.paths else None
        layers += layers_for(fullres, str(args.visium), args.mpp, args.genes)
        rest = args.paths[1:]
    else:
        rest = args.paths
    for path in rest:
        layers += layers_for(str(path), None, args.mpp, [])
    shot = run_viewer(layers, screenshot=args.screenshot)
    if shot:
        print(f"screenshot: {shot}")


def _demo(args: argparse.Namespace) -> None:
    from .plugin.launch import run_viewer

    shot = run_viewer([], sample=args.sample, screenshot=args.screenshot)
    if shot:
        print(f"screenshot: {shot}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"info": _info, "view": _view, "demo": _demo}[args.command](args)
    except PathsaeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"pathsae: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pathsae: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
