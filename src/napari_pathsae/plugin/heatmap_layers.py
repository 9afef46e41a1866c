"""Layer-data tuples for features over the tissue: heatmaps, argmax/concept labels, patch-token maps.

Every grid is placed with the session's GridPlacement, so its pixel edges are the tiles' edges.
Heatmaps fade from transparent (0) to a hue that never exceeds MAX_ALPHA, so the H&E stays readable
under them and a heatmap never hides the ones below; tiles not computed yet are a separate grey layer.
Every painted layer carries its legend on the canvas: its name, and a colorbar for heatmaps and spots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from napari.utils.colormaps import Colormap

from ..data.viewport import patch_value_grid, tile_value_grid
from ..names import LayerKind

if TYPE_CHECKING:  # the engine (torch) loads when a model does, not when a panel opens
    from ..engine.session import ExplorerSession

#: Hues of successive selected features.
HUES = {
    "yellow": (1.0, 0.9, 0.0),
    "cyan": (0.0, 0.9, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "lime": (0.3, 1.0, 0.0),
    "orange": (1.0, 0.5, 0.0),
    "blue": (0.2, 0.4, 1.0),
}


#: Opacity of a heatmap at its highest value: tissue shows through, and so do the heatmaps below.
MAX_ALPHA = 0.55
#: Opacity of the weakest non-zero activation (a sparse feature's small values stay visible).
LOW_ALPHA = 0.2
#: Opacity of argmax and concept maps (fully saturated label colours).
LABELS_OPACITY = 0.4
#: Grey of tissue tiles not computed yet (distinct from a zero activation, which is transparent).
NOT_COMPUTED_RGBA = (0.55, 0.55, 0.55, 0.5)
NOT_COMPUTED_LAYER = "pathsae grey: tiles not computed yet"
#: Background of the colorbars: near-white, like the slide glass the heatmaps are seen over.
COLORBAR_BOX = (0.96, 0.96, 0.96, 1.0)


def layer_kind(layer) -> str | None:
    """What a layer is to the plugin ("slide", "spots", "heatmap", …), from its metadata; None if not ours."""
    return layer.metadata.get("pathsae", {}).get("kind")


def fade_colormap(hue: str) -> Colormap:
    """Transparent at the low contrast limit, ``hue`` at MAX_ALPHA at the high one."""
    r, g, b = HUES[hue]
    colors = np.array([[r, g, b, 0.0], [r, g, b, LOW_ALPHA], [r, g, b, MAX_ALPHA]])
    return Colormap(colors, controls=[0.0, 0.02, 1.0], name=f"pathsae-{hue}")


def show_legend(layer, colour=(1.0, 1.0, 1.0), colorbar: bool = True, position: str = "top_right") -> None:
    """The layer's name on the canvas (in its colour) and, for colormapped layers, its colorbar beside it."""
    layer.name_overlay.visible = True
    layer.name_overlay.position = position
    layer.name_overlay.color = (*colour[:3], 1.0)
    if colorbar:
        bar = layer.face_colorbar if hasattr(layer, "face_colorbar") else layer.colorbar
        bar.position = position
        bar.box = True
        bar.box_color = COLORBAR_BOX  # translucent hues read as they do over the (light) H&E
        bar.color = (0.1, 0.1, 0.1, 1.0)
        bar.visible = True


def hue_for(position: int) -> str:
    return list(HUES)[position % len(HUES)]


def _metadata(session: ExplorerSession, kind: str, **extra) -> dict:
    return {
        "pathsae": {
            "kind": kind,
            "store": str(session.store.path),
            "sae": session.sae_name,
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


def heatmap_name(session: ExplorerSession, feature: int) -> str:
    return f"pathsae {session.feature_name(feature)}"


def heatmap_layer(session: ExplorerSession, feature: int, position: int = 0) -> tuple:
    """An Image layer of one feature, one value per tile."""
    placement = session.placement
    grid = heatmap_grid(session, feature)
    kwargs = {
        "name": heatmap_name(session, feature),
        "scale": placement.scale(),
        "translate": placement.translate(),
        "units": session.world_units,
        "colormap": fade_colormap(hue_for(position)),
        "contrast_limits": contrast_for(grid),
        "blending": "translucent_no_depth",
        "interpolation2d": "nearest",
        "opacity": 1.0,
        "metadata": _metadata(session, LayerKind.HEATMAP, feature=int(feature)),
    }
    return (grid, kwargs, "image")


def not_computed_grid(session: ExplorerSession) -> np.ndarray:
    """(rows, cols) 1 on tissue tiles whose activations are not computed yet, 0 elsewhere."""
    grid = np.zeros(session.placement.grid_shape, np.float32)
    missing = session.missing()
    grid[session.grid_index[missing, 0], session.grid_index[missing, 1]] = 1.0
    return grid


def not_computed_layer(session: ExplorerSession) -> tuple:
    """A grey Image layer over the tissue tiles not computed yet."""
    placement = session.placement
    colours = np.array([[0.0, 0.0, 0.0, 0.0], NOT_COMPUTED_RGBA])
    kwargs = {
        "name": NOT_COMPUTED_LAYER,
        "scale": placement.scale(),
        "translate": placement.translate(),
        "units": session.world_units,
        "colormap": Colormap(colours, controls=[0.0, 1.0], name="pathsae-not-computed"),
        "contrast_limits": (0.0, 1.0),
        "blending": "translucent_no_depth",
        "interpolation2d": "nearest",
        "metadata": _metadata(session, LayerKind.NOT_COMPUTED),
    }
    return (not_computed_grid(session), kwargs, "image")


def patch_heatmap_layer(session: ExplorerSession, feature: int, indices: np.ndarray) -> tuple:
    """An Image layer of one feature on the patch tokens of tiles ``indices`` (embedded with patch tokens)."""
    patches = session.patch_activations(indices, feature)
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
        "metadata": _metadata(session, LayerKind.PATCH_HEATMAP, feature=int(feature), tokens_per_side=g),
    }
    return (np.nan_to_num(grid, nan=0.0), kwargs, "image")


def tile_labels_layer(
    session: ExplorerSession, labels: np.ndarray, name: str, kind: str, column: str, label_names: dict[int, str]
) -> tuple:
    """A Labels layer with one label per tile (0: none); hovering shows ``column: label_names[label]``."""
    placement = session.placement
    grid = np.zeros(placement.grid_shape, dtype=np.int32)
    grid[session.grid_index[:, 0], session.grid_index[:, 1]] = labels
    values, counts = np.unique(labels[labels > 0], return_counts=True)
    features = pd.DataFrame(
        {"index": values, column: [label_names[int(v)] for v in values], "tiles": counts.astype(int)}
    )
    kwargs = {
        "name": name,
        "scale": placement.scale(),
        "translate": placement.translate(),
        "units": session.world_units,
        "opacity": LABELS_OPACITY,
        "features": features,
        "metadata": _metadata(session, kind),
    }
    return (grid, kwargs, "labels")
