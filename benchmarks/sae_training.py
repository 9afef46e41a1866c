"""SAE speed: training throughput and its FLOP utilisation, encoding a million embeddings, SAELens beside it.

Embeddings are synthetic with an SAE's own structure (each a sparse mix of dictionary atoms plus
noise) at a ViT-S width, written to ordinary stores. Training runs `train_sae` (the loop behind
`pathsae train`) and counts 10·d_in·d_sae FLOPs per input and step (encoder GEMM forward and its
weight gradient, decoder GEMM forward and both its gradients), against a GEMM of the same shape
timed in the same process. Encoding runs `pathsae encode` as a whole process on a 1M-tile store.
With ``--saelens-python``, SAELens's TopK trainer runs on the same embeddings, batch, width, k and
steps (saelens_side_by_side.py).

    python benchmarks/sae_training.py [--saelens-python /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from measure import BENCHMARKS, python, run_process, save

import napari_pathsae.models.sae.train as training
from napari_pathsae.data.store import TileStore
from napari_pathsae.engine.encode import train_to_folder
from napari_pathsae.models.sae.train import TrainOptions

ENCODER = {"spec": "synthetic", "weights_sha256": "synthetic", "width": 384}


def synthetic_embeddings(n: int, d: int, seed: int, atoms: int = 4096, active: int = 8) -> np.ndarray:
    """(n, d) float32: each row a non-negative mix of ``active`` of ``atoms`` unit atoms, plus noise."""
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((atoms, d)).astype(np.float32)
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    rows = np.empty((n, d), np.float32)
    for begin in range(0, n, 65536):
        m = min(65536, n - begin)
        which = rng.integers(0, atoms, (m, active))
        weights = rng.exponential(1.0, (m, active)).astype(np.float32)
        rows[begin : begin + m] = np.einsum("ma,mad->md", weights, dictionary[which])
    rows += 0.05 * rng.standard_normal(rows.shape).astype(np.float32)
    return rows


def embedding_store(path: Path, embeddings: np.ndarray, chunk_tiles: int = 8192) -> TileStore:
    """A finished store holding ``embeddings`` as its pooled embeddings."""
    shutil.rmtree(path, ignore_errors=True)
    n = len(embeddings)
    side = int(np.ceil(np.sqrt(n)))
    grid = np.stack(np.divmod(np.arange(n), side), axis=1)
    store = TileStore.create_or_resume(
        path, {"synthetic": n}, {"encoder": ENCODER}, grid[:, ::-1] * 224, np.ones(n, np.float32), grid,
        {"pooled": (embeddings.shape[1],)}, chunk_tiles,
    )  # fmt: skip
    for chunk, rows in enumerate(store.chunk_slices()):
        store.write_chunk(chunk, {"pooled": embeddings[rows]})
    store.mark_complete({"computed": n})
    return store


def gemm_flops_per_s(m: int, k: int, n: int, repeats: int = 20) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * k * n * repeats / (time.perf_counter() - start)


def training_throughput(store: Path, sae_dir: Path, expansion: int, k: int, batch: int, steps: int) -> dict:
    training.MIN_STEPS = 0  # exactly ``steps`` steps (the CLI forces ≥ 1000 for small stores)
    d_in = TileStore.open(store).embeddings().shape[1]
    d_sae = d_in * expansion
    gemm_before = gemm_flops_per_s(batch, d_in, d_sae)
    options = TrainOptions(arch="topk", expansion=expansion, k=k, batch_size=batch, samples=batch * steps)
    metrics = train_to_folder([store], sae_dir, options)
    flops = 10 * d_in * d_sae * metrics["inputs_per_s"]
    gemm = (gemm_before + gemm_flops_per_s(batch, d_in, d_sae)) / 2  # this machine's speed drifts
    return {
        "d_in": d_in,
        "d_sae": d_sae,
        "k": k,
        "batch_size": batch,
        "steps": steps,
        "inputs_per_s": metrics["inputs_per_s"],
        "train_gflop_per_s": round(flops / 1e9, 1),
        "gemm_gflop_per_s_same_shape": round(gemm / 1e9, 1),
        "flop_utilisation": round(flops / gemm, 3),
        "fvu": round(metrics["fvu"], 4),
        "l0": round(metrics["l0"], 1),
    }


def encoding(store: Path, sae_dir: Path) -> dict:
    run = run_process(python("-m", "napari_pathsae.cli", "encode", str(store), "--sae", str(sae_dir)))
    n = TileStore.open(store).n_tiles
    return {
        "embeddings": n,
        "wall_s_whole_process": round(run.wall_s, 2),
        "embeddings_per_s": round(n / run.wall_s, 1),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "input_mb": round(n * ENCODER["width"] * 4 / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-embeddings", type=int, default=200_000)
    parser.add_argument("--encode-embeddings", type=int, default=1_000_000)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--saelens-python", help="a Python with sae-lens installed (side-by-side run)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pathsae-benchmarks"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.train_embeddings, args.encode_embeddings, args.batch_size, args.steps = 4096, 8192, 512, 3
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    train_rows = synthetic_embeddings(args.train_embeddings, ENCODER["width"], seed=0)
    train_store = embedding_store(work / "sae_train.zarr", train_rows)
    result = {"training": training_throughput(train_store.path, work / "sae_bench", args.expansion, args.k,
                                              args.batch_size, args.steps)}  # fmt: skip
    encode_store = embedding_store(
        work / "sae_encode.zarr", synthetic_embeddings(args.encode_embeddings, ENCODER["width"], 1)
    )
    result["encoding"] = encoding(encode_store.path, work / "sae_bench")
    if args.saelens_python:
        np.save(work / "sae_train.npy", train_rows)
        command = [
            args.saelens_python, str(BENCHMARKS / "saelens_side_by_side.py"), str(work / "sae_train.npy"),
            "--expansion", str(args.expansion), "--k", str(args.k), "--batch-size", str(args.batch_size),
            "--steps", str(args.steps),
        ]  # fmt: skip
        try:
            result["saelens"] = json.loads(run_process(command).stdout.strip().splitlines()[-1])
        except RuntimeError as exc:
            result["saelens"] = f"failed: {str(exc).strip().splitlines()[-1]}"
    else:
        result["saelens"] = "not run (no --saelens-python)"
    save("sae_training" + ("_smoke" if args.smoke else ""), result, args.out)


if __name__ == "__main__":
    main()
