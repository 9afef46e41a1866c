"""Many slides on dask.distributed: one task per slide, each worker keeping its encoder loaded.

A LocalCluster is started when no scheduler address is given. On GPU machines each worker
takes one GPU (by worker index); on CPU the cores are split between workers.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..models.encoders import load_encoder
from .cores import usable_cores
from .embed import EmbedOptions, embed_slide

_ENCODERS: dict[tuple, object] = {}  # per worker process


@dataclass(frozen=True)
class EncoderRequest:
    spec: str = "vit_small_patch16_224"
    architecture: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    allow_random: bool | None = None


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started in here ignore SIGINT (it survives their exec): on Ctrl-C only this process
    stops, and it closes the cluster, instead of every worker printing its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _drop_messages(logger_name: str, fragment: str) -> None:
    """Records of ``logger_name`` whose message holds ``fragment`` are dropped (once per process)."""
    logger = logging.getLogger(logger_name)
    if any(getattr(f, "fragment", None) == fragment for f in logger.filters):
        return

    def drop(record: logging.LogRecord) -> bool:
        return fragment not in record.getMessage()

    drop.fragment = fragment
    logger.addFilter(drop)


def _embed_task(slide: str, store: str, request: EncoderRequest, options: EmbedOptions, threads: int) -> dict:
    import torch

    # in a worker: no "… ended with CancelledError" warning when the user interrupts the run (Ctrl-C), nor the
    # traceback of a heartbeat that finds the scheduler (in the interrupted process) already gone
    _drop_messages("distributed.worker.state_machine", "CancelledError")
    _drop_messages("distributed.worker", "Failed to communicate with scheduler during heartbeat")
    torch.set_num_threads(max(1, threads))
    device = request.device
    if device in ("auto", "cuda") and torch.cuda.is_available():
        from distributed import get_worker

        name = str(get_worker().name)  # LocalCluster names its workers 0, 1, …
        index = int(name) if name.isdigit() else 0
        device = f"cuda:{index % torch.cuda.device_count()}"
    key = (request, device)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(
            request.spec, request.architecture, device, request.dtype, request.seed, request.allow_random
        )
    import dask

    with dask.config.set(scheduler="threads"):  # the slide's lazy levels compute here, not on the cluster
        return embed_slide(slide, store, _ENCODERS[key], options)


def embed_many(
    slides: list[str],
    stores: list[str],
    request: EncoderRequest,
    options: EmbedOptions | list[EmbedOptions],
    scheduler: str | None = None,
    workers: int | None = None,
    on_done: Callable[[dict], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> list[dict]:
    """Embed each slide into its store on a dask.distributed cluster; summaries in slide order.

    ``options`` is one for all slides or one per slide; ``on_tick`` is called every 2 s while they run."""
    import torch
    from distributed import Client, LocalCluster, wait

    gpus = torch.cuda.device_count() if request.device in ("auto", "cuda") else 0
    cores = usable_cores()
    n_workers = workers or max(1, gpus or min(len(slides), 2))
    threads = max(1, cores // n_workers)
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        with _workers_ignore_ctrl_c():
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    # on Ctrl-C, distributed's sync() cancel callback can run before its future exists: a NameError traceback
    # logged by tornado's IO loop, where an interrupted run should end in one line
    _drop_messages("tornado.application", "sync.<locals>.cancel")
    try:
        per_slide = options if isinstance(options, list) else [options] * len(slides)
        futures = {
            client.submit(
                _embed_task, slide, store, request, option, threads, key=f"embed-{i}-{Path(slide).name}", pure=False
            ): i
            for i, (slide, store, option) in enumerate(zip(slides, stores, per_slide, strict=True))
        }
        results: list[dict | None] = [None] * len(slides)
        pending = set(futures)
        while pending:
            try:
                finished, pending = wait(pending, timeout=2.0, return_when="FIRST_COMPLETED")
            except TimeoutError:  # none finished in 2 s
                finished = set()
            for future in finished:
                results[futures[future]] = future.result()
                if on_done:
                    on_done(results[futures[future]])
            if on_tick:
                on_tick()
        return results
    except BaseException:  # Ctrl-C or a failed slide: the cluster is torn down mid-run, which is no news
        for noisy in ("distributed", "tornado"):  # (killed workers, a cancel race in distributed's IO loop)
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
