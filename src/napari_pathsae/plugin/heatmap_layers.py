"""Layer-data tuples for features over the tissue: heatmaps, argmax/concept labels, patch-token maps.

Every grid is placed with the session's GridPlacement, so its pixel edges are the tiles' edges.
Heatmaps fade from transparent (0 or not computed) to a full hue, so several overlay additively.
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import Colormap

from ..session import ExplorerSession
from ..viewport import patch_value_grid, tile_value_grid

#: Hues of successive selected features.
HUES = {
    "yellow": (1.0, 0.9, 0.0),
    "cyan": (0.0, 0.9, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "lime": (0.3, 1.0, 0.0),
    "orange": (1.0, 0.5, 0.0),
    "blue": (0.2, 0.4, 1.0),
}


def fade_colormap(hue: str) -> Colormap:
    """Transparent at the low contrast limit, opaque ``hue`` at the high one."""
    r, g, b = HUES[hue]
    colors = np.array([[r, g, b, 0.0], [r, g, b, 0.55], [r, g, b, 1.0]])
    return Colormap(colors, controls=[0.0, 0.3, 1.0], name=f"pathsae-{hue}")


def hue_for(position: int) -> str:
    return list(HUES)[position % len(HUES)]


def _metadata(session: ExplorerSession, kind: str, **extra) -> dict:
    return {
        "pathsae": {
            "kind": kind,
            "store": str(session.store.path),
            "sae": session.computer.sae_name,
            **extra,
        }
    }


def heatmap_grid(session: ExplorerSession, feature: int) -> np.ndarray:
    """(rows, cols) activation of ``feature`` per tile, 0 where not computed or off-tissue."""
    grid = tile_value_grid(session.grid_index, session.placement.grid_shape, session.feature_values(feature))
    return np.nan_to_num(grid, nan=0.0)


def contrast_for(values: np.ndarray) -> tuple[float, float]:
    high = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    return (0.0, high if high > 0 else 1.0)


def heatmap_layer(session: ExplorerSession, feature: int, position: int = 0) -> tuple:
    """An Image layer of one feature, one value per tile."""
    placement = session.placement
    grid = heatmap_grid(session, feature)
    kwargs = {
        "name": f"pathsae {session.feature_name(feature)}",
        "scale": placement.scale(),
        "translate": placement.translate(),
        "units": session.world_units,
        "colormap": fade_colormap(hue_for(position)),
        "contrast_limits": contrast_for(grid),
        "blending": "translucent_no_depth",
        "interpolation2d": "nearest",
        "opacity": 0.8,
        "metadata": _metadata(session, "heatmap", feature=int(feature)),
    }
    return (grid, kwargs, "image")


def patch_heatmap_layer(session: ExplorerSession, feature: int, indices: np.ndarray) -> tuple:
    """An Image layer of one feature on the patch tokens of tiles ``indices`` (embedded with patch tokens)."""
    patches = session.computer.patch_activations(indices, feature)
    g = patches.shape[1] if len(patches) else 1
    grid = (
        patch_value_grid(session.grid_index[indices], session.placement.grid_shape, patches)
        if len(patches)
        else (np.zeros(session.placement.grid_shape, np.float32))
    )
    placement = session.placement
    kwargs = {
        "name": f"pathsae {session.feature_name(feature)} patches",
        "scale": placement.scale(g),
        "translate": placement.translate(g),
        "units": session.world_units,
        "colormap": fade_colormap(hue_for(0)),
        "contrast_limits": contrast_for(grid),
        "interpolation2d": "nearest",
        "opacity": 0.85,
        "metadata": _metadata(session, "patch_heatmap", feature=int(feature), tokens_per_side=g),
    }
    return (np.nan_to_num(grid, nan=0.0), kwargs, "image")


def tile_labels_layer(session: ExplorerSession, labels: np.ndarray, name: str, kind: str) -> tuple:
    """A Labels layer with one label per tile (0: none)."""
    placement = session.placement
    grid = np.zeros(placement.grid_shape, dtype=np.int32)
    grid[session.grid_index[:, 0], session.grid_index[:, 1]] = labels
    kwargs = {
        "name": name,
        "scale": placement.scale(),
        "translate": placement.translate(),
        "units": session.world_units,
        "opacity": 0.55,
        "metadata": _metadata(session, kind),
    }
    return (grid, kwargs, "labels")
