"""Open a 10x Visium sample (Space Ranger outs/, Visium HD bins, or an .h5ad) in one world frame.

Counts come from scanpy's 10x readers (.h5 or MEX folder); positions from tissue_positions_list.csv
(v1, no header), tissue_positions.csv (v2+, header) or tissue_positions.parquet (HD). squidpy's
``read.visium`` is not used because it needs both hires and lowres PNGs and cannot read MEX
folders or HD bins; the AnnData built here follows the same scanpy/squidpy convention
(``obsm['spatial']`` = (x, y) full-resolution px, ``uns['spatial'][library_id]``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import PathsaeError, reported_as
from .frames import WorldFrame, is_plausible_mpp, xy_to_rowcol
from .slides import Slide, open_slide

#: Visium (v1/v2, CytAssist) capture spots are 55 µm across.
VISIUM_SPOT_DIAMETER_UM = 55.0
POSITION_COLUMNS = [
    "barcode",
    "in_tissue",
    "array_row",
    "array_col",
    "pxl_row_in_fullres",
    "pxl_col_in_fullres",
]
_BIN_FOLDER = re.compile(r"square_(\d+)um$")
#: Space Ranger's downscaled copies of the H&E: shown in napari, never tiled.
_PREVIEW = re.compile(r"tissue_(hires|lowres)_image\.png")


def refuse_preview(path: str | Path | None) -> None:
    """PathsaeError when ``path`` is a Space Ranger preview PNG: tiles are cut from the full-resolution H&E."""
    found = path is not None and _PREVIEW.fullmatch(Path(path).name)
    if found:
        raise PathsaeError(
            f"{Path(path).name} is the sample's {found.group(1)} preview, too coarse to tile: features need the "
            "full-resolution H&E the sample was made from (a folder with only the previews cannot be analysed)"
        )


@dataclass
class VisiumSample:
    """Spots with counts, the tissue image to show under them, and the shared world frame."""

    path: Path
    adata: ad.AnnData  # obs indexed by barcode; obsm['spatial'] = (x, y) full-resolution px
    library_id: str
    scalefactors: dict
    image: Slide | None  # hires/lowres PNG, an .h5ad image, or the full-resolution slide
    image_kind: str  # "hires", "lowres", "fullres" or "none"
    image_px_in_fullres_px: float  # 1 / tissue_{hires,lowres}_scalef, or 1 for the full-res slide
    frame: WorldFrame
    mpp_source: str
    spot_shape: str = "disc"  # "disc" for Visium spots, "square" for HD bins
    notes: list[str] = field(default_factory=list)

    @property
    def spot_diameter_fullres(self) -> float:
        return float(self.scalefactors["spot_diameter_fullres"])

    @property
    def spots_fullres_rowcol(self) -> np.ndarray:
        return xy_to_rowcol(self.adata.obsm["spatial"])

    @property
    def spots_world(self) -> np.ndarray:
        return self.frame.fullres_rowcol_to_world(self.spots_fullres_rowcol)

    @property
    def spots_level0_xy(self) -> np.ndarray:
        """Spot centres as continuous full-resolution (x, y), where pixel p spans [p, p + 1): tile boxes and
        drawn regions use this frame; ``obsm['spatial']`` holds pixel indices, so it is shifted by half a pixel."""
        return np.asarray(self.adata.obsm["spatial"], dtype=float) + 0.5

    @property
    def spot_diameter_world(self) -> float:
        return self.frame.fullres_length_to_world(self.spot_diameter_fullres)


def open_visium(
    path: str | Path,
    fullres_image: str | Path | None = None,
    mpp: float | None = None,
    spot_diameter_um: float = VISIUM_SPOT_DIAMETER_UM,
    image: str = "hires",
    bin_size_um: int | None = None,
) -> VisiumSample:
    """Open a Space Ranger outs/ folder (Visium or Visium HD) or an .h5ad with uns['spatial'].

    ``fullres_image`` is the full-resolution slide the spots were registered to (what the
    encoder needs); ``mpp`` its µm/px when the file does not say. Without either, µm/px comes
    from Visium HD's microns_per_pixel, else from the spot diameter (``spot_diameter_um``).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".h5ad":
        parts = _read_h5ad(path)
    elif path.is_dir():
        parts = _read_spaceranger(_spatial_root(path, bin_size_um), image)
    else:
        raise PathsaeError(f"{path}: not a Space Ranger outs/ folder or an .h5ad file")
    adata, library_id, scalefactors, shown, kind, notes = parts
    _check_scalefactors(path, scalefactors)
    px_in_fullres = 1.0
    if fullres_image is not None:
        fullres = open_slide(fullres_image, mpp=mpp)
        _check_fullres_matches(fullres, shown, scalefactors, kind)
        shown, kind = fullres, "fullres"
    elif kind in ("hires", "lowres"):
        px_in_fullres = 1.0 / float(scalefactors[f"tissue_{kind}_scalef"])
    fullres_mpp, source = _fullres_mpp(shown if kind == "fullres" else None, mpp, scalefactors, spot_diameter_um)
    if shown is not None:
        shown.mpp, shown.mpp_source = fullres_mpp, source
        if kind != "fullres" and fullres_mpp:
            shown.mpp = fullres_mpp * px_in_fullres
    spot_shape = "square" if "bin_size_um" in scalefactors else "disc"
    sample = VisiumSample(
        path, adata, library_id, scalefactors, shown, kind, px_in_fullres,
        WorldFrame(fullres_mpp), source, spot_shape, notes,
    )  # fmt: skip
    _check_spots_inside(sample)
    _check_spot_diameter(sample)
    return sample


def _check_scalefactors(path: Path, scalefactors: dict) -> None:
    """Scale factors are positive finite numbers, or the spots would be drawn and aggregated nowhere."""
    if "spot_diameter_fullres" not in scalefactors:
        raise PathsaeError(f"{path}: scalefactors lack spot_diameter_fullres")
    for key in ("spot_diameter_fullres", "tissue_hires_scalef", "tissue_lowres_scalef", "microns_per_pixel"):
        if key not in scalefactors:
            continue
        try:
            value = float(scalefactors[key])
        except (TypeError, ValueError):
            value = float("nan")
        if not (np.isfinite(value) and value > 0):
            raise PathsaeError(f"{path}: scalefactor {key} is {scalefactors[key]!r}; it must be a positive number")


#: Spot diameter ÷ centre-to-centre spacing: Visium 55/100 µm, legacy ST 100/200 µm, HD bins 1 (squares).
EXPECTED_DIAMETER_TO_SPACING = (0.5, 1.0)


def spot_spacing_fullres(sample: VisiumSample) -> float | None:
    """Median distance from each spot to its nearest neighbour, full-resolution px (None under 3 spots)."""
    from scipy.spatial import cKDTree

    xy = np.asarray(sample.adata.obsm["spatial"], dtype=float)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 3:
        return None
    distance, _ = cKDTree(xy).query(xy, k=2)
    nearest = distance[:, 1]
    nearest = nearest[nearest > 0]
    return float(np.median(nearest)) if len(nearest) else None


def _check_spot_diameter(sample: VisiumSample) -> None:
    """A spot diameter far above the spot grid's spacing means wrong scale factors (each spot would average
    its neighbours' tissue): refused at three times the spacing, noted above 1.2 times. (A sparse subset of
    spots has a larger spacing, so a small ratio says nothing.)"""
    spacing = spot_spacing_fullres(sample)
    if spacing is None:
        return
    ratio = sample.spot_diameter_fullres / spacing
    said = (
        f"spot diameter {sample.spot_diameter_fullres:.1f} px is {ratio:.2f}x the spots' spacing {spacing:.1f} px "
        "(Visium 0.55x, HD bins 1x)"
    )
    if ratio > 3:
        raise PathsaeError(f"{sample.path}: {said}: wrong spot_diameter_fullres in the scalefactors?")
    if ratio > 1.2:
        sample.notes.append(f"{said}; check spot_diameter_fullres")


def _check_spots_inside(sample: VisiumSample) -> None:
    """Spots off the image mean positions of another image: refused if all, noted if some."""
    if sample.image is None:
        return
    height, width = np.array(sample.image.shape_yx) * sample.image_px_in_fullres_px
    row, col = sample.spots_fullres_rowcol.T
    outside = int(np.sum((row < 0) | (col < 0) | (row >= height) | (col >= width)))
    if outside == len(row):
        raise PathsaeError(
            f"{sample.path}: every spot lies outside the {sample.image_kind} image; positions of another image?"
        )
    if outside:
        sample.notes.append(f"{outside} of {len(row)} spots lie outside the {sample.image_kind} image")


def _spatial_root(path: Path, bin_size_um: int | None) -> Path:
    """The folder holding spatial/ and the matrix: path, path/outs, or an HD square_XXXum bin."""
    for candidate in (path, path / "outs"):
        bins = sorted(
            (int(m.group(1)), p)
            for p in (candidate / "binned_outputs").glob("square_*um")
            if (m := _BIN_FOLDER.search(p.name))
        )
        if bins:
            sizes = [size for size, _ in bins]
            if bin_size_um is None:  # 8 µm, Space Ranger's analysis bins (drawn as one raster), else 16, else finest
                bin_size_um = next((size for size in (8, 16) if size in sizes), sizes[0])
            if bin_size_um not in sizes:
                raise PathsaeError(f"{path}: no {bin_size_um} µm bins; available: {sizes}")
            return dict((size, p) for size, p in bins)[bin_size_um]
        if (candidate / "spatial").is_dir():
            return candidate
    raise PathsaeError(f"{path}: no spatial/ folder; expected a Space Ranger outs/ folder")


def _read_counts(root: Path) -> ad.AnnData:
    import scanpy as sc  # heavy; imported only when a sample is opened

    h5 = root / "filtered_feature_bc_matrix.h5"
    mex = root / "filtered_feature_bc_matrix"
    with reported_as(f"{root}: cannot read the count matrix"):
        if h5.is_file():
            adata = sc.read_10x_h5(h5)
        elif mex.is_dir():
            adata = sc.read_10x_mtx(mex, var_names="gene_symbols", make_unique=True)
        else:
            raise PathsaeError(f"{root}: no filtered_feature_bc_matrix.h5 or filtered_feature_bc_matrix/")
    adata.var_names_make_unique()
    return adata


def read_positions(spatial: Path) -> pd.DataFrame:
    """Spot positions indexed by barcode, from any Space Ranger positions file."""
    parquet, v2, v1 = (
        spatial / f for f in ("tissue_positions.parquet", "tissue_positions.csv", "tissue_positions_list.csv")
    )
    with reported_as(f"{spatial}: cannot read the spot positions"):
        if parquet.is_file():
            table = pd.read_parquet(parquet)
        elif v2.is_file():
            table = pd.read_csv(v2)
        elif v1.is_file():
            table = pd.read_csv(v1, header=None, names=POSITION_COLUMNS)
        else:
            raise PathsaeError(f"{spatial}: no tissue_positions file")
    missing = set(POSITION_COLUMNS) - set(table.columns)
    if missing:
        raise PathsaeError(f"{spatial}: positions file lacks columns {sorted(missing)}")
    return table.set_index("barcode")[POSITION_COLUMNS[1:]]


def _read_spaceranger(root: Path, image: str):
    spatial = root / "spatial"
    adata = _read_counts(root)
    positions = read_positions(spatial)
    scalefactors = _read_json(spatial / "scalefactors_json.json")
    notes: list[str] = []
    shared = adata.obs_names.intersection(positions.index)
    if len(shared) == 0:
        raise PathsaeError(f"{root}: no barcode of the count matrix appears in the positions file")
    if len(shared) < adata.n_obs:
        notes.append(f"{adata.n_obs - len(shared)} barcodes without a position were dropped")
        adata = adata[shared].copy()
    adata.obs = adata.obs.join(positions.loc[adata.obs_names])
    outside = int((adata.obs["in_tissue"] == 0).sum())
    if outside:
        notes.append(f"{outside} of {adata.n_obs} spots are marked outside the tissue (in_tissue 0); they are used")
    rowcol = adata.obs[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy(float)
    adata.obsm["spatial"] = rowcol[:, ::-1].copy()  # (x, y)
    library_id = _library_id(root)
    shown, kind = _spaceranger_image(spatial, image, notes)
    images = {} if shown is None else {kind: np.asarray(shown.levels[0])}
    adata.uns["spatial"] = {library_id: {"images": images, "scalefactors": scalefactors, "metadata": {}}}
    return adata, library_id, scalefactors, shown, kind, notes


def _library_id(root: Path) -> str:
    """The .h5's library_ids attribute (as squidpy reads it), else the sample folder's name."""
    h5 = root / "filtered_feature_bc_matrix.h5"
    if h5.is_file():
        import h5py

        with h5py.File(h5, "r") as f:
            ids = f.attrs.get("library_ids")
        if ids is not None and len(ids):
            return ids[0].decode() if isinstance(ids[0], bytes) else str(ids[0])
    return (root.parent.name if root.name == "outs" else root.name) or "visium"


def _spaceranger_image(spatial: Path, preferred: str, notes: list[str]) -> tuple[Slide | None, str]:
    """The preferred PNG (hires by default), falling back when missing or blank."""
    order = [preferred] + [k for k in ("hires", "lowres") if k != preferred]
    for kind in order:
        png = spatial / f"tissue_{kind}_image.png"
        if not png.is_file():
            continue
        slide = open_slide(png)
        if _is_blank(slide):
            notes.append(f"{png.name} is blank; not shown")
            continue
        return slide, kind
    notes.append("no tissue image in spatial/")
    return None, "none"


def _is_blank(slide: Slide) -> bool:
    smallest = np.asarray(slide.levels[-1])
    colour = smallest[..., :3] if slide.rgb else smallest  # an opaque alpha is not content
    return bool(colour.min() == colour.max())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PathsaeError(f"{path.parent}: no {path.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PathsaeError(f"{path}: not valid JSON ({exc})") from None


def _read_h5ad(path: Path):
    with reported_as(f"{path}: cannot read the .h5ad"):
        adata = ad.read_h5ad(path)
    spatial = adata.uns.get("spatial")
    if "spatial" not in adata.obsm:
        raise PathsaeError(f"{path.name}: no obsm['spatial'] (spot coordinates): not a spatial sample")
    if not isinstance(spatial, dict) or not spatial:
        raise PathsaeError(
            f"{path.name}: obsm['spatial'] is there but uns['spatial'] (library id, scalefactors with "
            "spot_diameter_fullres) is missing; squidpy.read.visium and scanpy.read_visium write both"
        )
    library_id = next(iter(spatial))
    entry = spatial[library_id]
    scalefactors = dict(entry.get("scalefactors", {}))
    if not scalefactors:
        raise PathsaeError(f"{path.name}: uns['spatial'][{library_id!r}] has no scalefactors")
    images = entry.get("images", {})
    kind = next((k for k in ("hires", "lowres") if k in images), "none")
    shown = Slide.from_array(images[kind]) if kind != "none" else None
    return adata, library_id, scalefactors, shown, kind, []


def _check_fullres_matches(fullres: Slide, shown: Slide | None, scalefactors: dict, kind: str) -> None:
    """The full-resolution slide must be the image Space Ranger's PNGs were scaled from."""
    refuse_preview(fullres.path)
    if shown is None or kind not in ("hires", "lowres"):
        return
    expected = np.array(shown.shape_yx) / float(scalefactors[f"tissue_{kind}_scalef"])
    actual = np.array(fullres.shape_yx)
    if np.any(np.abs(actual - expected) > 0.03 * expected + 2 / float(scalefactors[f"tissue_{kind}_scalef"])):
        raise PathsaeError(
            f"{fullres.path.name} is {actual[1]}x{actual[0]} px but the sample's {kind} image implies "
            f"about {expected[1]:.0f}x{expected[0]:.0f} px: not the slide these spots were registered to"
        )


def _fullres_mpp(
    fullres: Slide | None, mpp: float | None, scalefactors: dict, spot_diameter_um: float
) -> tuple[float | None, str]:
    if mpp is not None:
        if not is_plausible_mpp(mpp):
            raise PathsaeError(f"µm/px {mpp} is not plausible (expected 0.02 to 50)")
        return float(mpp), "user"
    if fullres is not None and fullres.mpp:
        return fullres.mpp, fullres.mpp_source
    hd_mpp = scalefactors.get("microns_per_pixel")
    if is_plausible_mpp(hd_mpp):
        return float(hd_mpp), "Visium HD microns_per_pixel"
    derived = spot_diameter_um / float(scalefactors["spot_diameter_fullres"])
    if is_plausible_mpp(derived):
        return derived, f"assumed from a {spot_diameter_um:g} µm spot diameter"
    return None, "unknown"
