"""Layer-data tuples for features over the tissue: heatmaps, argmax/concept labels, patch-token maps.

Every grid is placed with the session's GridPlacement, so its pixel edges are the tiles' edges.
Heatmaps fade from transparent (0) to a hue that never exceeds MAX_ALPHA, so the H&E stays readable
under them and a heatmap never hides the ones below. Each selected feature is a layer of its own in
the list (name, hue, contrast, visibility, legend) that draws nothing; one composite RGBA layer draws
them all, over the grey of tiles not computed yet.
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
HUES = {  # no magenta or purple: on H&E's eosin pink and haematoxylin purple they could hardly be seen
    "yellow": (1.0, 0.9, 0.0),
    "cyan": (0.0, 0.9, 1.0),
    "lime": (0.3, 1.0, 0.0),
    "orange": (1.0, 0.5, 0.0),
    "blue": (0.2, 0.4, 1.0),
    "red": (0.9, 0.0, 0.0),
}


#: Opacity of a heatmap at its highest value: tissue shows through, and so do the heatmaps below.
MAX_ALPHA = 0.55
#: Opacity of the weakest non-zero activation (a sparse feature's small values stay visible).
LOW_ALPHA = 0.2
#: Opacity of argmax and concept maps (fully saturated label colours).
LABELS_OPACITY = 0.4
#: Grey of tissue tiles not computed yet (distinct from a zero activation, which is transparent).
NOT_COMPUTED_RGBA = (0.55, 0.55, 0.55, 0.5)
#: The composite layer's name, and what it says on the canvas while some tiles are not computed.
HEATMAPS_LAYER = "pathsae heatmaps"
HEATMAPS_LAYER_COMPUTING = "pathsae heatmaps (grey: tiles not computed yet)"
#: Background of the colorbars: near-white, like the slide glass the heatmaps are seen over.
COLORBAR_BOX = (0.96, 0.96, 0.96, 1.0)


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


def heatmap_layer(session: ExplorerSession, feature: int, position: int = 0, grid: np.ndarray | None = None) -> tuple:
    """A feature's own layer: its name, hue, contrast limits, opacity, visibility and legend.

    It draws nothing itself (two texels, smaller than a screen pixel, at the grid's corner): the
    pixels of every selected feature are drawn by one composite layer (``heatmaps_layer``) that
    reads these settings, so ten features cost one layer's drawing (napari issue 3630). ``grid``:
    the feature's heatmap_grid when the caller has it already."""
    low, high = contrast_for(heatmap_grid(session, feature) if grid is None else grid)
    kwargs = {
        "name": heatmap_name(session, feature),
        "scale": (LEGEND_TEXEL, LEGEND_TEXEL),
        "translate": session.placement.translate(),
        "units": session.world_units,
        "colormap": fade_colormap(hue_for(position)),
        "contrast_limits": (low, high),
        "blending": "translucent_no_depth",
        "opacity": 1.0,
        "metadata": _metadata(session, LayerKind.HEATMAP, feature=int(feature)),
    }
    return (np.array([[low, high]], np.float32), kwargs, "image")


#: A feature layer's texels, in world units: far below a screen pixel at any zoom napari allows.
LEGEND_TEXEL = 1e-4


def feature_rgba(grid: np.ndarray, colormap: Colormap, contrast_limits, opacity: float = 1.0) -> np.ndarray:
    """(rows, cols, 4) float colours of one feature, as napari would draw its layer (gamma 1)."""
    low, high = (float(v) for v in contrast_limits)
    scaled = np.clip((grid - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    rgba = colormap.map(scaled.ravel()).reshape(*grid.shape, 4)
    rgba[..., 3] *= opacity
    return rgba


def hue_rgba(grid: np.ndarray, position: int) -> np.ndarray:
    """A feature's colours as its layer starts: the hue of its position, 0 to its highest value."""
    return feature_rgba(grid, fade_colormap(hue_for(position)), contrast_for(grid))


def over(top: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Porter-Duff 'over' of straight-alpha RGBA: what napari's translucent blending gives, layer on layer."""
    alpha = top[..., 3:] + below[..., 3:] * (1.0 - top[..., 3:])
    colour = top[..., :3] * top[..., 3:] + below[..., :3] * below[..., 3:] * (1.0 - top[..., 3:])
    return np.concatenate([np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0), alpha], axis=-1)


def composite_rgba(layers: list[np.ndarray], not_computed: np.ndarray | None = None) -> np.ndarray:
    """One uint8 RGBA grid: grey where tiles are not computed, then each feature's colours over it in order."""
    shape = layers[0].shape[:2] if layers else not_computed.shape
    out = np.zeros((*shape, 4), np.float32)
    if not_computed is not None:
        out[not_computed > 0] = NOT_COMPUTED_RGBA
    for rgba in layers:
        out = over(rgba, out)
    return np.round(out * 255).astype(np.uint8)


def heatmaps_layer(session: ExplorerSession, rgba: np.ndarray) -> tuple:
    """The one Image layer that draws every selected feature (and the grey of tiles not computed yet)."""
    placement = session.placement
    kwargs = {
        "name": HEATMAPS_LAYER,
        "rgb": True,
        "scale": placement.scale(),
        "translate": placement.translate(),
        "units": session.world_units,
        "blending": "translucent_no_depth",
        "interpolation2d": "nearest",
        "metadata": _metadata(session, LayerKind.HEATMAPS),
    }
    return (rgba, kwargs, "image")


def not_computed_grid(session: ExplorerSession, missing: np.ndarray) -> np.ndarray:
    """(rows, cols) 1 on the tissue tiles ``missing`` (session.missing()), 0 elsewhere."""
    grid = np.zeros(session.placement.grid_shape, np.float32)
    grid[session.grid_index[missing, 0], session.grid_index[missing, 1]] = 1.0
    return grid


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
