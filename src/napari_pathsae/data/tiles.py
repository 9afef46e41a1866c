"""Tissue detection on a low-resolution level and the tile grid at a target resolution.

Tile coordinates are kept in level-0 pixels, (x, y) of the top-left corner (TRIDENT's `coords`);
µm follow from the slide's µm/px.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import remove_small_holes, remove_small_objects

from ..errors import PathsaeError
from ..io.frames import PLAUSIBLE_MPP, is_plausible_mpp
from ..io.slides import Slide, white_level

#: The tissue mask is computed on the coarsest level whose longest side is at least this.
MASK_MIN_SIDE = 1024
#: Saturation bounds for the Otsu threshold: glass is below 0.03, stained tissue above 0.15.
SATURATION_BOUNDS = (0.03, 0.15)
#: Greyscale: darkness below white (glass ~0.05, eosin-stained stroma ~0.2-0.3) bounding the Otsu threshold.
GREY_BOUNDS = (0.08, 0.2)


#: A tile is kept when tissue covers at least this share of it. 0.25 left 3-8 % of the detected tissue
#: untiled along tissue borders on the slides in shared/data (0.80 of it on a 1,000 px image whose
#: padded edge tiles fell below it); 0.05 tiles ≥ 99 % of it there (docs/engine.md, "Tiles").
MIN_TISSUE_DEFAULT = 0.05


@dataclass(frozen=True)
class TileGeometry:
    """Tiles of ``tile_px`` pixels at ``mpp`` µm/px; tiles with less tissue than ``min_tissue`` are dropped."""

    tile_px: int = 224
    mpp: float = 0.5
    min_tissue: float = MIN_TISSUE_DEFAULT

    @property
    def tile_um(self) -> float:
        return self.tile_px * self.mpp

    @classmethod
    def from_options(
        cls, tile_um: float = 112.0, tile_px: int = 224, min_tissue: float = MIN_TISSUE_DEFAULT
    ) -> TileGeometry:
        """Tiles ``tile_um`` µm across, resampled to ``tile_px`` pixels for the encoder (112 µm at 224 px:
        0.5 µm/px, 20x)."""
        if not 16 <= tile_px <= 4096:
            raise PathsaeError(f"tile size {tile_px} px is outside 16-4096")
        if not (np.isfinite(tile_um) and tile_um > 0):
            raise PathsaeError(f"tile side {tile_um} µm must be a positive number")
        target = tile_um / tile_px
        if not is_plausible_mpp(target):
            raise PathsaeError(
                f"{tile_um:g} µm tiles at {tile_px} px would be {target:.4g} µm/px, outside "
                f"{PLAUSIBLE_MPP[0]:g}-{PLAUSIBLE_MPP[1]:g}; change --tile-um or --tile-px"
            )
        if not 0 <= min_tissue <= 1:
            raise PathsaeError(f"minimum tissue fraction {min_tissue} is outside 0-1")
        return cls(int(tile_px), float(target), float(min_tissue))

    def to_dict(self) -> dict:
        return {**asdict(self), "tile_um": self.tile_um}


@dataclass
class TileGrid:
    """Tiles kept on tissue: level-0 (x, y) top-left corners, side, tissue fraction, read level."""

    coords: np.ndarray  # (N, 2) int64, level-0 px (x, y)
    side0: float  # tile side in level-0 px
    tissue_fraction: np.ndarray  # (N,) float32
    geometry: TileGeometry
    slide_mpp: float
    read_level: int  # the stored level tiles are read from
    grid_shape: tuple[int, int]  # rows, cols of the full grid
    grid_index: np.ndarray  # (N, 2) int (row, col) in the grid
    #: Level-0 px between neighbouring tiles: the side, or less for overlapping tiles (imported grids).
    step0: float | None = None
    #: Level-0 (x, y) of grid cell (0, 0)'s top-left corner. A cell is the part of the slide nearest its
    #: tile's centre: the tile itself when tiles abut, its middle when they overlap.
    origin0: tuple[float, float] = (0.0, 0.0)
    #: Tiles placed by another tool (an import): each tile is read at its own ``coords``, not its grid cell.
    imported: bool = False

    def __post_init__(self) -> None:
        if self.step0 is None:
            self.step0 = self.side0

    def __len__(self) -> int:
        return len(self.coords)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of an (H, W, 3+) image."""
    rgb = rgb[..., :3].astype(np.float32)
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    return np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)


def mask_level(slide: Slide) -> int:
    """The coarsest level (stored or computed) whose longest side is still ≥ MASK_MIN_SIDE."""
    y, x = slide.yx_axes
    candidates = [i for i, lv in enumerate(slide.levels) if max(lv.shape[y], lv.shape[x]) >= MASK_MIN_SIDE]
    return candidates[-1] if candidates else 0


def tissue_mask(slide: Slide) -> tuple[np.ndarray, float]:
    """Boolean tissue mask (Otsu on blurred saturation, cleaned) and its level-0 px per mask px."""
    level = mask_level(slide)
    image = slide.read_level(level)
    if slide.axes == "CYX":
        image = np.moveaxis(image, 0, -1)
    factor = max(1, max(image.shape[:2]) // MASK_MIN_SIDE)  # up to 2x too fine: shrink to about MASK_MIN_SIDE
    if factor > 1:
        image = _block_mean(image, factor)
    if image.ndim == 3 and image.shape[-1] >= 3:
        signal = ndimage.gaussian_filter(saturation(image), 1.0)
        bounds = SATURATION_BOUNDS
    else:  # greyscale: tissue is darker than glass, which is near the type's white
        grey = image if image.ndim == 2 else image[..., 0]
        signal = 1.0 - ndimage.gaussian_filter(grey.astype(np.float32) / white_level(slide.levels[0].dtype), 1.0)
        bounds = GREY_BOUNDS
    threshold = threshold_otsu(signal) if np.ptp(signal) > 0 else bounds[1]
    mask = signal > float(np.clip(threshold, *bounds))
    mask = ndimage.binary_opening(mask, iterations=1)
    min_area = max(16, mask.size // 20000)
    mask = remove_small_holes(remove_small_objects(mask, max_size=min_area), max_size=min_area * 4)
    return mask, slide.downsample(level) * factor


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W[, C]) image averaged over ``factor`` x ``factor`` blocks (edges trimmed), float32."""
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _fractions(mask: np.ndarray, x0: np.ndarray, y0: np.ndarray, side: float) -> np.ndarray:
    """Mean of ``mask`` over squares (level-0 units already divided to mask px) via a summed-area table."""
    table = np.pad(mask.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = mask.shape
    c0 = np.clip(np.floor(x0).astype(int), 0, w)
    r0 = np.clip(np.floor(y0).astype(int), 0, h)
    c1 = np.clip(np.ceil(x0 + side).astype(int), 0, w)
    r1 = np.clip(np.ceil(y0 + side).astype(int), 0, h)
    area = np.maximum((r1 - r0) * (c1 - c0), 1)
    inside = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    full_area = np.maximum(np.ceil(side) ** 2, 1)
    return (inside / np.maximum(area, full_area)).astype(np.float32)


def read_level_for(slide: Slide, target_mpp: float) -> int:
    """The coarsest stored level still at or finer than ``target_mpp`` (level 0 if none is)."""
    best = 0
    for level in range(slide.stored_levels):
        if slide.mpp * slide.downsample(level) <= target_mpp * 1.001:
            best = level
    return best


#: The grid's layout, recorded in a store's identity: "edge-padded" grids run past the slide's right and
#: bottom edges (white beyond them) so no strip of tissue there is left untiled; stores made before had none.
GRID_LAYOUT = "edge-padded"


def tile_grid(slide: Slide, geometry: TileGeometry, mask: tuple[np.ndarray, float] | None = None) -> TileGrid:
    """Non-overlapping tiles from the slide's origin, kept where tissue ≥ ``geometry.min_tissue`` of a tile.

    The last row and column reach past the slide's bottom and right edges (read as white), so tissue at
    those edges is tiled like any other; their tissue fraction counts the part outside as glass.
    """
    if slide.mpp is None:
        raise PathsaeError(
            f"{slide.path.name if slide.path else 'slide'}: resolution unknown; pass the slide's µm/px (--slide-mpp)"
        )
    side0 = geometry.tile_um / slide.mpp
    height, width = slide.shape_yx
    if min(height, width) < side0 / 2:
        raise PathsaeError(f"the slide ({width}x{height} px) is smaller than half a {geometry.tile_um:g} µm tile")
    rows, cols = int(np.ceil(height / side0 - 1e-9)), int(np.ceil(width / side0 - 1e-9))
    grid_r, grid_c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    grid_r, grid_c = grid_r.ravel(), grid_c.ravel()
    x0, y0 = grid_c * side0, grid_r * side0
    tissue, per_px = mask if mask is not None else tissue_mask(slide)
    fractions = _fractions(tissue, x0 / per_px, y0 / per_px, side0 / per_px)
    keep = fractions >= geometry.min_tissue
    if not keep.any():
        name = slide.path.name if slide.path else "the image"
        raise PathsaeError(
            f"{name}: no tile has {geometry.min_tissue:.0%} tissue (blank or glass only?); lower --min-tissue"
        )
    coords = np.stack([np.round(x0[keep]), np.round(y0[keep])], axis=1).astype(np.int64)
    return TileGrid(
        coords, side0, fractions[keep], geometry, slide.mpp, read_level_for(slide, geometry.mpp),
        (rows, cols), np.stack([grid_r[keep], grid_c[keep]], axis=1),
    )  # fmt: skip


def tissue_fractions(mask: tuple[np.ndarray, float], coords: np.ndarray, side0: float) -> np.ndarray:
    """Share of each square tile (level-0 top-left ``coords`` (N, 2), side ``side0``) that the mask calls tissue."""
    tissue, per_px = mask
    return _fractions(tissue, coords[:, 0] / per_px, coords[:, 1] / per_px, side0 / per_px)


def tiled_tissue_fraction(grid: TileGrid, mask: tuple[np.ndarray, float]) -> float:
    """Share of the detected tissue (mask pixels) that lies inside a kept tile: the grid's coverage."""
    tissue, per_px = mask
    covered = np.zeros_like(tissue, dtype=bool)
    side = grid.side0 / per_px
    for x, y in grid.coords / per_px:
        covered[int(np.floor(y)) : int(np.ceil(y + side)), int(np.floor(x)) : int(np.ceil(x + side))] = True
    total = int(tissue.sum())
    return float((tissue & covered).sum() / total) if total else 1.0


#: Tiles of one grid row read as one region, at most this many side by side.
RUN_TILES = 16


def read_tiles(slide: Slide, grid: TileGrid, indices: np.ndarray) -> np.ndarray:
    """(n, tile_px, tile_px, 3) uint8 pixels of the tiles ``indices``, in that order.

    Consecutive tiles of a grid row are read as one region from the read level (so each stored
    tile is decoded about once) and resampled with PIL from exact float boxes (no rounding drift).
    """
    from PIL import Image

    px = grid.geometry.tile_px
    level = grid.read_level
    scale = slide.downsample(level)
    side = grid.side0 / scale  # tile side at the read level, float
    out = np.empty((len(indices), px, px, 3), dtype=np.uint8)
    order = np.lexsort((grid.grid_index[indices, 1], grid.grid_index[indices, 0]))
    run_tiles = 1 if grid.imported else RUN_TILES  # imported tiles may overlap or sit off their cells
    start = 0
    while start < len(order):
        row, col = grid.grid_index[indices[order[start]]]
        stop = start + 1
        while (
            stop < len(order)
            and stop - start < run_tiles
            and tuple(grid.grid_index[indices[order[stop]]]) == (row, col + stop - start)
        ):
            stop += 1
        if grid.imported:
            left, top = grid.coords[indices[order[start]]] / scale
        else:
            top, left = row * side, col * side
        y0, x0 = int(np.floor(top)), int(np.floor(left))
        region = slide.read_region(
            level, y0, x0, int(np.ceil(top + side)) - y0 + 1, int(np.ceil(left + (stop - start) * side)) - x0 + 1
        )
        band = Image.fromarray(_as_rgb8(region))
        for k in range(stop - start):
            box = (left - x0 + k * side, top - y0, left - x0 + (k + 1) * side, top - y0 + side)
            out[order[start + k]] = np.asarray(band.resize((px, px), Image.Resampling.BILINEAR, box=box))
        start = stop
    return out


def _as_rgb8(region: np.ndarray) -> np.ndarray:
    """Any slide pixels as (H, W, 3) uint8: greyscale repeated, 16-bit scaled, alpha dropped."""
    if region.dtype != np.uint8:
        region = np.clip(region.astype(np.float32) / white_level(region.dtype) * 255.0, 0, 255).astype(np.uint8)
    if region.ndim == 2:
        region = np.repeat(region[..., None], 3, axis=-1)
    return np.ascontiguousarray(region[..., :3])
