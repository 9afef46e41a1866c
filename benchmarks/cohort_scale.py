"""The cohort's feature index and atlas at scale: synthetic cohorts of 1M and 10M tiles made from real tiles'
embeddings, with the time and peak memory of each step and how they grow.

How the cohort is made: the HER2+ B4 section (9272 x 9923 px, 0.69 µm/px) is written as a tiled pyramidal
TIFF, embedded at 112 µm tiles by ViT-S/16 (random init, offline), and a TopK SAE of 3,072 features (x8,
k 32) is trained on it and applied. Each synthetic slide holds ``--per-slide`` tiles, each a real tile (its
coordinates, so the atlas cuts real pixels) with that tile's real SAE code times a per-tile gain (log-normal,
σ 0.2). The SAE keeps only the latents that fire on the source tiles (a few hundred of 3,072), so to reach
``--features`` the codes are laid into banks of feature numbers: each tile's code goes into one bank (drawn at
random), so every row is exactly as sparse as a real code and each feature fires on 1/banks of the tiles that
its source feature does. One feature is planted at slide level: on slide s its activations are multiplied by
1 + 0.5·t_s, with t_s the manifest's ``target`` column, so the index must rank that feature first for ``target``.

Measured in fresh processes (wall seconds, peak RSS): the index build (`build_index`), the atlas of every
feature (1M only), and opening one feature page's data from the index.

usage: python benchmarks/cohort_scale.py [--tiles 1000000 10000000] [--per-slide 10000] [--work-dir DIR] [--out DIR]
       python benchmarks/cohort_scale.py --smoke   (CI: 20,000 tiles, mean-rgb encoder, 10 atlas features)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import python, run_process, save

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PLANTED_FEATURE_RANK = 0  # the feature planted: the most often firing one (so every slide has its tiles)


def source_store(work: Path, smoke: bool) -> tuple[Path, Path]:
    """A real store and SAE to draw tiles from: (store, sae folder)."""
    from napari_pathsae.data.tiles import TileGeometry
    from napari_pathsae.engine.embed import EmbedOptions, embed_slide
    from napari_pathsae.engine.encode import encode_store, train_to_folder
    from napari_pathsae.models.encoders import load_encoder
    from napari_pathsae.models.sae.train import TrainOptions

    store, sae = work / "source.zarr", work / "sae"
    if (sae / "cfg.json").is_file():
        return store, sae
    if smoke:
        slide, mpp, spec, tile_um, expansion, k = DATA / "cmu_small_region.svs", None, "mean-rgb", 56.0, 16, 4
    else:
        slide, mpp, spec, tile_um, expansion, k = _pyramid_tiff(work), 0.69, "vit_small_patch16_224", 112.0, 8, 32
    encoder = load_encoder(spec, dtype="fp32", allow_random=True)
    options = EmbedOptions(geometry=TileGeometry.from_options(tile_um=tile_um), slide_mpp=mpp, batch_size=64)
    embed_slide(slide, store, encoder, options)
    train_to_folder([store], sae, TrainOptions(arch="topk", expansion=expansion, k=k))
    encode_store(store, sae)
    return store, sae


def _pyramid_tiff(work: Path) -> Path:
    """B4's H&E as a tiled, JPEG-compressed pyramid (what a scanner writes), so regions read fast."""
    import tifffile
    from PIL import Image

    path = work / "B4_pyramid.tif"
    if path.exists():
        return path
    Image.MAX_IMAGE_PIXELS = None
    pixels = np.asarray(Image.open(DATA / "her2st_B4" / "B4_HE.jpg").convert("RGB"))
    levels = [pixels]
    while max(levels[-1].shape[:2]) > 1024:
        levels.append(np.asarray(Image.fromarray(levels[-1]).reduce(2)))
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        options = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb"}
        tif.write(levels[0], subifds=len(levels) - 1, resolution=(1e4 / 0.69, 1e4 / 0.69), resolutionunit="CENTIMETER",
                  **options)  # fmt: skip
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **options)
    return path


def build_cohort(
    folder: Path, store_path: Path, sae: Path, tiles: int, per_slide: int, features: int, seed: int = 0
) -> dict:
    """``tiles`` synthetic tiles in slides of ``per_slide``, drawn from the real store; returns what was planted."""
    import pandas as pd

    from napari_pathsae.data.cohort import write_cohort
    from napari_pathsae.data.store import TileStore
    from napari_pathsae.io.manifest import CohortSlide, Manifest
    from napari_pathsae.models.sae.formats import load_sae, sae_provenance

    source = TileStore.open(store_path)
    real = np.nan_to_num(np.asarray(source.activations("sae")[:], dtype=np.float32))
    planted = int(np.argsort(-(real > 0).sum(axis=0))[PLANTED_FEATURE_RANK])
    live = real.shape[1]
    banks = -(-features // live)
    n_slides = -(-tiles // per_slide)
    rng = np.random.default_rng(seed)
    target = rng.random(n_slides)
    names = [f"s{i:05d}" for i in range(n_slides)]
    slide_path = Path(source.provenance["slide_path"])
    manifest = Manifest(folder / "manifest.csv", [CohortSlide(n, slide_path) for n in names],
                        pd.DataFrame({"target": target}, index=pd.Index(names, name="slide")))  # fmt: skip
    cohort = write_cohort(folder, manifest)
    _, cfg = load_sae(sae)
    provenance = sae_provenance(sae, cfg)
    for s, name in enumerate(names):
        n = min(per_slide, tiles - s * per_slide)
        rows = rng.integers(0, len(real), n)
        store = TileStore.create_or_resume(
            cohort.store_path(name), {**source.identity, "synthetic": s}, source.provenance, source.coords[rows],
            source.tissue_fraction[rows], source.grid_index[rows], {"pooled": source.embeddings().shape[1:]},
            source.chunk_tiles,
        )  # fmt: skip
        codes = real[rows] * rng.lognormal(0.0, 0.2, (n, 1)).astype(np.float32)
        values = np.zeros((n, banks * live), dtype=np.float32)  # each tile's code in one bank of feature numbers
        bank = rng.integers(0, banks, n)
        values.reshape(n, banks, live)[np.arange(n), bank] = codes
        values = values[:, :features]
        values[:, planted] *= 1.0 + 0.5 * target[s]  # bank 0's copy only: one feature carries the target
        array = store.activation_array("sae", features, provenance)
        block = 8 * store.chunk_tiles
        for begin in range(0, n, block):
            array[begin : begin + block] = values[begin : begin + block]
        array.attrs["complete"] = True
        store.root.attrs["complete"] = True
    return {"planted_feature": planted, "slides": n_slides}


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def measure(folder: Path, sae: Path, atlas: bool, atlas_features: int | None) -> dict:
    index_code = (
        "from napari_pathsae.data.cohort import open_cohort; from napari_pathsae.engine.cohort import build_index;"
        f"i, _ = build_index(open_cohort({str(folder)!r}), 'sae'); print(i.meta['seconds'])"
    )
    baseline = run_process(python("-c", "import napari_pathsae.engine.cohort"))
    built = run_process(python("-c", index_code))
    page_code = (
        "import time, json; from napari_pathsae.data.feature_index import load_index; t = time.perf_counter();"
        f"i = load_index({str(folder / 'index' / 'sae.npz')!r}); t1 = time.perf_counter();"
        "f = int(i.overall_density().argmax()); i.top(f); i.quantile_samples(f); i.density()[:, f];"
        "i.associations(f); t2 = time.perf_counter(); print(json.dumps([t1 - t, t2 - t1]))"
    )
    load_s, page_s = json.loads(run_process(python("-c", page_code)).stdout)
    result = {
        "index_wall_s": round(built.wall_s, 2), "index_build_s": float(built.stdout.split()[-1]),
        "index_peak_rss_mb": round(built.peak_rss_mb), "import_peak_rss_mb": round(baseline.peak_rss_mb),
        "index_file_mb": round((folder / "index" / "sae.npz").stat().st_size / 2**20, 1),
        "index_load_s": round(load_s, 4), "feature_page_data_s": round(page_s, 4),
    }  # fmt: skip
    if atlas:
        out = folder.parent / f"{folder.name}_atlas"
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--features", *map(str, range(atlas_features))] if atlas_features else []
        run = run_process(python("-m", "napari_pathsae.cli", "atlas", "--cohort", str(folder), "--sae", str(sae),
                                 "-o", str(out), *extra))  # fmt: skip
        result.update(atlas_wall_s=round(run.wall_s, 1), atlas_peak_rss_mb=round(run.peak_rss_mb),
                      atlas_line=run.stdout.strip(), atlas_mb=round(_size_mb(out), 1))  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--per-slide", type=int, default=10_000)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae_cohort_scale"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--features", type=int, default=3072, help="features of the synthetic activations")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.tiles, args.per_slide, args.features = [20_000], 5_000, 96
    args.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    store, sae = source_store(args.work_dir, args.smoke)
    from napari_pathsae.data.store import TileStore

    source = {"source_tiles": TileStore.open(store).n_tiles, "source_s": round(time.perf_counter() - start, 1)}
    runs = []
    for tiles in args.tiles:
        folder = args.work_dir / f"cohort_{tiles}"
        shutil.rmtree(folder, ignore_errors=True)
        began = time.perf_counter()
        planted = build_cohort(folder, store, sae, tiles, args.per_slide, args.features)
        run = {"tiles": tiles, "build_s": round(time.perf_counter() - began, 1), **planted,
               "stores_mb": round(_size_mb(folder / "stores"))}  # fmt: skip
        run.update(measure(folder, sae, atlas=tiles == args.tiles[0], atlas_features=10 if args.smoke else None))
        from napari_pathsae.data.feature_index import load_index

        index = load_index(folder / "index" / "sae.npz")
        row = list(index.variables).index("target")
        rho = index.assoc_stat[row]
        feature = planted["planted_feature"]
        run["planted_rank_for_target"] = int((np.abs(rho) > abs(rho[feature])).sum()) + 1
        run["planted_rho"], run["planted_q"] = round(float(rho[feature]), 3), float(index.assoc_q[row, feature])
        runs.append(run)
        print(json.dumps(run), flush=True)
        if not args.smoke and tiles != args.tiles[0]:
            shutil.rmtree(folder, ignore_errors=True)  # 10M tiles of stores: gigabytes
    result = {**source, "features": int(index.n_features), "per_slide": args.per_slide, "runs": runs}
    if len(runs) > 1:
        result["index_growth"] = round(runs[-1]["index_build_s"] / runs[0]["index_build_s"], 2)
        result["tiles_growth"] = runs[-1]["tiles"] / runs[0]["tiles"]
    save("cohort_scale" if not args.smoke else "cohort_scale_smoke", result, args.out)


if __name__ == "__main__":
    main()
