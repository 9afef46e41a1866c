"""squidpy, imported and run without noise in a CLI's output: its spatialdata's xarray-schema imports the
deprecated pkg_resources (a UserWarning), and spatial_neighbors logs every graph at INFO through
spatialdata's own console handler (colour codes on stderr)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


def squidpy():
    """The squidpy module, imported without its pkg_resources deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import squidpy as module

    return module


@contextmanager
def quiet_graph_log() -> Iterator[None]:
    """spatialdata's logger raised to WARNING while squidpy builds graphs, then restored."""
    logger = logging.getLogger("spatialdata._logging")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
