"""SAELens's TopK trainer on the same embeddings (run with a Python that has sae-lens; not our package).

Same width, k, batch, steps, Adam and lr as sae_training.py's run; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.config import SAETrainerConfig


def batches(rows: torch.Tensor, batch_size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(rows), generator=generator)
        for begin in range(0, len(rows) - batch_size + 1, batch_size):
            yield rows[order[begin : begin + batch_size]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("embeddings", help=".npy (n, d) float32")
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    rows = torch.from_numpy(np.load(args.embeddings))
    d_in = rows.shape[1]
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_in * args.expansion, k=args.k, device="cpu"))
    config = SAETrainerConfig(
        total_training_samples=args.batch_size * args.steps, train_batch_size_samples=args.batch_size,
        lr=4e-4, lr_end=4e-4, device="cpu", n_batches_for_norm_estimate=1,
    )  # fmt: skip
    trainer = SAETrainer(config, sae, batches(rows, args.batch_size))
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    import sae_lens

    print(
        json.dumps(
            {
                "sae_lens": sae_lens.__version__,
                "d_sae": d_in * args.expansion,
                "steps": args.steps,
                "seconds": round(seconds, 2),
                "inputs_per_s": round(args.batch_size * args.steps / seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
