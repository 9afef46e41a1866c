"""squidpy, imported and run without noise in a CLI's output: its spatialdata's xarray-schema imports the
deprecated pkg_resources (a UserWarning), and spatial_neighbors logs every graph at INFO through
spatialdata's own console handler (colour codes on stderr)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


def squidpy():
    """The squidpy module, imported without its pkg_resources deprecation warning (nor docrep's docstring ones)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=".* is not a valid key!", category=SyntaxWarning)  # docrep, 1.8
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


def radius_graph(adata, radius: float | tuple[float, float], key_added: str = "spatial") -> None:
    """squidpy's radius graph of ``obsm['spatial']`` into ``obsp[key_added + '_connectivities']``: by
    ``spatial_neighbors_radius`` (squidpy 1.8+; the generic call warns of its removal in 1.9), else the old call."""
    gr = squidpy().gr
    with quiet_graph_log():
        if hasattr(gr, "spatial_neighbors_radius"):
            gr.spatial_neighbors_radius(adata, radius=radius, key_added=key_added)
        else:
            gr.spatial_neighbors(adata, coord_type="generic", radius=radius, key_added=key_added)
