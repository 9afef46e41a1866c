"""Training SAEs on embeddings streamed from one or many stores (never all in RAM), reproducibly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ...data.store import TileStore
from ...errors import PathsaeError
from . import SAE, build_sae, registry


@dataclass(frozen=True)
class TrainOptions:
    """What one training run is told. Each field an architecture's config also has (k, l1_coefficient,
    l0_coefficient) goes to that config (``Architecture.make_config``); the others it does not read."""

    arch: str = "topk"  # a registry name (registry.architectures())
    expansion: int | None = None  # SAE width / embedding width; None: auto_width from the data
    k: int = 32  # active latents per input (TopK kin), or the L0 the thresholds start at (JumpReLU)
    l1_coefficient: float = 1e-2  # for configs with an L1 penalty (ReLU)
    l0_coefficient: float = 3e-3  # for configs with an L0 penalty (JumpReLU)
    layer: str = "pooled"
    seed: int = 0
    batch_size: int = 1024
    samples: int | None = None  # inputs seen in training (epochs as needed); None: auto_samples
    lr: float = 4e-4
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Settings that cannot train are refused before any data is read."""
        registry.get(self.arch)  # an unknown name: one line listing the known ones
        for name in ("expansion", "k", "batch_size", "samples"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise PathsaeError(f"SAE {name} {getattr(self, name)} must be at least 1")
        for name in ("l1_coefficient", "l0_coefficient", "lr"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise PathsaeError(f"SAE {name} {value} must be a finite number above 0")

    @classmethod
    def for_section(cls, n_tiles: int, **choices) -> TrainOptions:
        """The viewer's defaults for one section (SECTION_DEFAULTS, samples from the data as in the CLI)."""
        return cls(**{**SECTION_DEFAULTS, **choices})


#: What the viewer trains on one section unless told otherwise: a browsable SAE in about a minute on a
#: 2-core CPU (benchmarks/panel_training.py, docs/benchmarks.md §7).
SECTION_DEFAULTS = {"arch": "topk", "expansion": 4, "k": 16}
#: Inputs seen per stored embedding when ``samples`` is not given, up to MAX_SAMPLES: one section's
#: thousand tiles took 4-14 minutes at a fixed 300,000 whatever the data size.
SAMPLES_PER_TILE = 100
MAX_SAMPLES = 300_000
#: The widest auto SAE, as a multiple of the embedding width (what cohorts get).
MAX_EXPANSION = 8


#: Latents trained per stored embedding when the width is chosen from the data.
LATENTS_PER_INPUT = 3


def auto_width(n_inputs: int, d_in: int) -> int:
    """SAE width trained from the data: LATENTS_PER_INPUT per stored embedding (a multiple of 64), at least
    the embedding width and at most MAX_EXPANSION times it; the latents that never fire are then removed.
    On her2st B4 (1,038 tiles, 384 dims) ~320 latents fire whether 1,024, 1,920 or 3,072 are trained, and
    the wider runs reconstruct better (FVU 0.0165, 0.0134, 0.0114); a section's width then grows with its
    tiles rather than with a UNI/H-optimus embedding (×8 of 1,536 dims would be 12,288 latents)."""
    return int(min(MAX_EXPANSION * d_in, max(d_in, 64 * round(LATENTS_PER_INPUT * n_inputs / 64))))


def auto_samples(n_inputs: int) -> int:
    return int(min(MAX_SAMPLES, SAMPLES_PER_TILE * n_inputs))


class EmbeddingStream:
    """Shuffled batches over the stores' chunks: a few chunks in memory at a time.

    Over several stores each slide is drawn equally often (chunks weighted by 1 / the slide's rows), so one
    large slide does not dominate training; one store is read in shuffled epochs."""

    def __init__(self, stores: list[TileStore], layer: str, rng: np.random.Generator, buffer_chunks: int = 8):
        self.arrays = [store.embeddings(layer) for store in stores]
        widths = {a.shape[1] for a in self.arrays}
        if len(widths) != 1:
            raise PathsaeError(f"the stores hold {layer} embeddings of different widths {sorted(widths)}")
        self.width = widths.pop()
        self.chunks = [
            (i, s, min(s + a.chunks[0], a.shape[0]))
            for i, a in enumerate(self.arrays)
            for s in range(0, a.shape[0], a.chunks[0])
        ]
        self.n = sum(a.shape[0] for a in self.arrays)
        rows = np.array([stop - start for _, start, stop in self.chunks], dtype=float)
        store_rows = np.array([self.arrays[i].shape[0] for i, _, _ in self.chunks], dtype=float)
        self.chunk_weights = rows / store_rows / len(self.arrays)
        self.rng = rng
        self.buffer_chunks = buffer_chunks

    def _chunk(self, entry) -> np.ndarray:
        i, start, stop = entry
        values = np.asarray(self.arrays[i][start:stop], dtype=np.float32)
        return values[np.isfinite(values).all(axis=1)]

    def all_chunks(self) -> Iterator[np.ndarray]:
        for entry in self.chunks:
            yield self._chunk(entry)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Endless shuffled batches: chunk order reshuffled each epoch, rows shuffled within a buffer."""
        while True:
            if len(self.arrays) > 1:
                order = self.rng.choice(len(self.chunks), size=len(self.chunks), p=self.chunk_weights)
            else:
                order = self.rng.permutation(len(self.chunks))
            for begin in range(0, len(order), self.buffer_chunks):
                rows = np.concatenate([self._chunk(self.chunks[j]) for j in order[begin : begin + self.buffer_chunks]])
                rows = rows[self.rng.permutation(len(rows))]
                for b in range(0, len(rows) - batch_size + 1 if len(rows) >= batch_size else 1, batch_size):
                    yield rows[b : b + batch_size]


#: Optimiser steps of even the smallest run.
MIN_STEPS = 1000
#: A dimension whose std exceeds this many times the median std counts as an outlier dimension.
OUTLIER_RATIO = 10.0


def normalisation_stats(stream: EmbeddingStream) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean, and a scale: one scalar (E‖x‖² = d_in after scaling, as in SAELens)
    except on outlier dimensions (std > OUTLIER_RATIO × median), which are compressed to that
    bound so a few massive dimensions cannot dominate the reconstruction loss."""
    count, total, squares = 0, np.zeros(stream.width), np.zeros(stream.width)
    for values in stream.all_chunks():
        count += len(values)
        total += values.sum(axis=0, dtype=np.float64)
        squares += (values.astype(np.float64) ** 2).sum(axis=0)
    if count < 2:
        raise PathsaeError("too few finite embeddings to train an SAE (need at least 2)")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0))
    bound = OUTLIER_RATIO * max(float(np.median(std)), 1e-12)
    tamed = np.minimum(std, bound)
    scalar = max(float(np.sqrt((tamed**2).mean())), 1e-12)
    scale = scalar * np.maximum(1.0, std / bound)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)


#: A latent firing on more than this fraction of inputs is dense (SAEBench's convention).
DENSE_RATE = 0.1


def density_metrics(rate: torch.Tensor) -> dict:
    """Each latent's firing rate, and the dead (never) and dense (> DENSE_RATE) fractions."""
    return {
        "feature_density": rate.cpu().tolist(),
        "dead_fraction": float((rate == 0).float().mean()),
        "dense_fraction": float((rate > DENSE_RATE).float().mean()),
    }


@torch.no_grad()
def evaluate(sae: SAE, stream: EmbeddingStream, device: torch.device) -> dict[str, float]:
    """MSE and FVU (normalised space), mean L0, dead and dense fractions over every stored embedding."""
    sae.eval()
    sq_err = sq_dev = l0 = n = 0.0
    fires = torch.zeros(sae.cfg.d_sae, device=device)
    for values in stream.all_chunks():
        x = sae.normalise(torch.from_numpy(values).to(device))
        f = sae.inference_activate(sae.pre_activations(x))
        x_hat = sae.decode_normalised(f)
        sq_err += float((x_hat - x).pow(2).sum())
        sq_dev += float(x.pow(2).sum())  # x is centred by the normalisation
        active = f > 0
        l0 += float(active.sum())
        fires += active.sum(dim=0)
        n += len(values)
    rate = fires / n
    sae.train()
    return {
        "mse": sq_err / (n * sae.cfg.d_in),
        "fvu": sq_err / max(sq_dev, 1e-12),
        "l0": l0 / n,
        **density_metrics(rate),
        "n_inputs": n,
    }


def train_sae(
    stores: list[TileStore], options: TrainOptions, progress: Callable[[int, int, dict], None] | None = None
) -> tuple[SAE, dict]:
    """Train one SAE; ``--seed`` fixes initialisation and data order, so runs repeat exactly."""
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    stream = EmbeddingStream(stores, options.layer, rng)
    device = torch.device(options.device)
    width = auto_width(stream.n, stream.width) if options.expansion is None else stream.width * options.expansion
    entry = registry.get(options.arch)
    cfg = entry.make_config(
        {**asdict(options), "d_in": stream.width, "d_sae": width,
         "dead_after": max(10 * options.batch_size, min(stream.n * 2, 200_000))}
    )  # fmt: skip
    if entry.check is not None:
        entry.check(cfg)
    sae = build_sae(cfg).to(device)
    mean, scale = normalisation_stats(stream)
    sae.set_normalisation(mean.to(device), scale.to(device))
    # small stores (one slide) still get enough optimiser steps: smaller batches, at least MIN_STEPS
    batch_size = max(1, min(options.batch_size, max(64, stream.n // 4), stream.n))
    samples = auto_samples(stream.n) if options.samples is None else options.samples
    steps = max(MIN_STEPS, samples // batch_size)
    optimiser = torch.optim.Adam(sae.parameters(), lr=options.lr, betas=(0.9, 0.999))
    start = time.perf_counter()
    batches = stream.batches(batch_size)
    if entry.initialise is not None:
        entry.initialise(sae, sae.normalise(torch.from_numpy(next(batches)).to(device)))
    last: dict[str, float] = {}
    for step in range(steps):
        x = sae.normalise(torch.from_numpy(next(batches)).to(device))
        loss, last, f = sae.training_loss(x)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_parallel_gradient()
        optimiser.step()
        sae.normalise_decoder()
        sae.track_firing(f)
        if progress and (step % 50 == 0 or step == steps - 1):
            progress(step + 1, steps, last)
    seconds = time.perf_counter() - start
    metrics = evaluate(sae, stream, device)
    rate = torch.tensor(metrics["feature_density"])
    fired = rate > 0
    if not bool(fired.any()):
        raise PathsaeError("no latent of the trained SAE fires on these embeddings: lower --l1 / --l0")
    # a latent that never fires on the training data is not a feature; removing it changes no activation
    # or reconstruction, so the evaluation stands and only the density metrics narrow to the kept latents
    sae.keep_latents(fired.to(device))
    metrics.update(density_metrics(rate[fired]))
    metrics.update(
        trained_width=width, never_fired_removed=width - int(fired.sum()),
        steps=steps, batch_size=batch_size, seconds=round(seconds, 2),
        inputs_per_s=round(steps * batch_size / seconds, 1), final_loss_parts=last,
    )  # fmt: skip
    return sae.eval(), metrics
