"""Embeddings from TRIDENT, CLAM and STAMP into stores, on the real CMU slide and HER2+ section: each tile lands
on its own pixels (a planted feature follows the tissue under it and vanishes when rows are shuffled), the
grids other tools use (overlap, µm, per-contour offsets) are placed exactly, export → import is exact, and
every bad input is one line with no store left behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import HER2ST_HE, SVS
from importer_files import (
    clam_contour_coords,
    stamp_coords_um,
    trident_grid,
    write_clam,
    write_stamp,
    write_trident,
)
from napari_pathsae.cli import main
from napari_pathsae.data.store import TileStore
from napari_pathsae.data.tiles import read_tiles
from napari_pathsae.engine.import_embeddings import import_embeddings
from napari_pathsae.errors import PathsaeError
from napari_pathsae.io.slides import open_slide
from napari_pathsae.report.export import export_tiles

W, H = 2220, 2967  # the CMU slide's level 0 (20x, 0.499 µm/px)


def darkness(slide, coords: np.ndarray, side: int) -> np.ndarray:
    """Mean darkness (255 - grey) of each tile's own level-0 pixels: the planted feature."""
    return np.array([255.0 - slide.read_region(0, int(y), int(x), side, side).mean() for x, y in coords])


def planted_features(slide, coords, side, width=32, seed=0) -> np.ndarray:
    features = np.random.default_rng(seed).normal(size=(len(coords), width)).astype(np.float32)
    features[:, 0] = darkness(slide, coords, side)
    return features


def read_back_darkness(store: TileStore) -> np.ndarray:
    """Darkness of every tile as the store's own tile reader cuts it from the slide (the viewer's thumbnails)."""
    slide = open_slide(SVS)
    try:
        tiles = read_tiles(slide, store.tile_grid(), np.arange(store.n_tiles))
    finally:
        slide.close()
    return 255.0 - tiles.mean(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def slide():
    opened = open_slide(SVS)
    yield opened
    opened.close()


def test_trident_overlapping_tiles_land_on_their_own_pixels_and_a_shuffle_breaks_it(slide, tmp_path):
    coords = trident_grid(W, H, patch_size=256, src_mag=20, dst_mag=10, overlap=32)  # 512 px tiles, 448 apart
    features = planted_features(slide, coords, 512)
    file = write_trident(tmp_path / "cmu.h5", coords, features, 256, 20, 10, 32, W, H, "uni_v1")
    summary = import_embeddings(file, SVS, tmp_path / "cmu.zarr")
    store = TileStore.open(tmp_path / "cmu.zarr")
    assert summary["tiles"] == len(coords) and store.complete and not summary["notes"]
    np.testing.assert_array_equal(store.coords, coords)
    np.testing.assert_array_equal(store.embeddings()[:], features)
    assert (store.tile_side0, store.grid_step0, store.grid_origin0) == (512.0, 448.0, (32.0, 32.0))
    assert store.provenance["encoder"]["architecture"] == "uni_v1"
    # every tile's centre finds that tile; a point in the overlap goes to the tile whose centre is nearer
    np.testing.assert_array_equal(store.tile_at(store.tile_centres), np.arange(len(coords)))
    first, right = store.tile_at(np.array([[470.0, 100.0], [490.0, 100.0]]))
    assert (coords[first].tolist(), coords[right].tolist()) == ([0, 0], [448, 0])
    assert store.tile_at(np.array([[2.0, 2.0]]))[0] == 0  # the slide's corner: outside every cell, inside tile 0
    # the planted feature follows the tissue the store reads for each tile
    assert np.corrcoef(read_back_darkness(store), store.embeddings()[:, 0])[0, 1] > 0.99
    shuffled = features[np.random.default_rng(1).permutation(len(features))]
    null = write_trident(tmp_path / "null.h5", coords, shuffled, 256, 20, 10, 32, W, H, "uni_v1")
    import_embeddings(null, SVS, tmp_path / "null.zarr")
    null_store = TileStore.open(tmp_path / "null.zarr")
    assert abs(np.corrcoef(read_back_darkness(null_store), null_store.embeddings()[:, 0])[0, 1]) < 0.5


def test_stamp_micrometre_supertiles_are_placed_within_two_pixels(slide, tmp_path):
    coords_um, tile_px0 = stamp_coords_um(W, H, 0.499, tile_size_um=112.0)  # 4 tiles a supertile, 225 px each
    exact = coords_um / 0.499
    features = planted_features(slide, np.round(exact), tile_px0)
    file = write_stamp(tmp_path / "cmu.h5", coords_um, features, 112.0, 224, "virchow2")
    summary = import_embeddings(file, SVS, tmp_path / "cmu.zarr")
    store = TileStore.open(tmp_path / "cmu.zarr")
    np.testing.assert_array_equal(store.coords, np.round(exact))
    assert store.tile_side0 == store.grid_step0 == tile_px0 == 225
    assert store.provenance["grid_max_shift_level0_px"] < 2.0  # STAMP's µm corners drift ≤ 0.55 px a tile
    assert summary["encoder"] == "virchow2"
    np.testing.assert_allclose(store.embeddings()[:], features.astype(np.float16), rtol=0, atol=0)
    np.testing.assert_array_equal(store.tile_at(store.tile_centres), np.arange(store.n_tiles))
    assert np.corrcoef(read_back_darkness(store), store.embeddings()[:, 0])[0, 1] > 0.99


def test_clam_contours_on_their_own_grids_and_pt_features_with_their_patching_file(slide, tmp_path):
    # two tissue pieces: CLAM starts each at its bounding box corner, 256 px steps (patch level 0)
    coords = np.concatenate(
        [clam_contour_coords((100, 130), (900, 1200), 256), clam_contour_coords((1300, 1700), (800, 1000), 256)]
    )
    features = planted_features(slide, coords, 256)
    h5, patches = write_clam(tmp_path / "clam", "cmu", coords, features, 256, (W, H))
    summary = import_embeddings(h5, SVS, tmp_path / "h5.zarr", coords_path=patches, encoder="conch_v1")
    store = TileStore.open(tmp_path / "h5.zarr")
    np.testing.assert_array_equal(store.coords, coords)  # exact corners kept
    assert store.tile_side0 == 256.0 and store.provenance["encoder"]["architecture"] == "conch_v1"
    assert any("not on one grid" in note for note in summary["notes"])  # said, with the largest move
    assert store.provenance["grid_max_shift_level0_px"] <= 128
    assert np.corrcoef(read_back_darkness(store), store.embeddings()[:, 0])[0, 1] > 0.99
    # pt_files/NAME.pt: the same features as a tensor, their coordinates from the patching h5
    torch.save(torch.from_numpy(features), tmp_path / "cmu.pt")
    import_embeddings(tmp_path / "cmu.pt", SVS, tmp_path / "pt.zarr", coords_path=patches)
    pt_store = TileStore.open(tmp_path / "pt.zarr")
    np.testing.assert_array_equal(pt_store.embeddings()[:], features)
    assert pt_store.provenance["encoder"]["architecture"].startswith("unknown")  # CLAM does not name it
    # without CLAM's patching record the side is the coordinates' stride, and said so
    inferred = import_embeddings(h5, SVS, tmp_path / "inferred.zarr")
    assert TileStore.open(tmp_path / "inferred.zarr").tile_side0 == 256.0
    assert any("inferred" in note for note in inferred["notes"])


def test_export_h5_then_import_is_exact(her2st_model, tmp_path):
    store = TileStore.open(her2st_model / "b4.zarr")
    assert export_tiles(store, tmp_path / "b4.h5") == store.n_tiles
    import_embeddings(tmp_path / "b4.h5", HER2ST_HE, tmp_path / "back.zarr", slide_mpp=0.69)
    back = TileStore.open(tmp_path / "back.zarr")
    np.testing.assert_array_equal(back.coords, store.coords)
    np.testing.assert_array_equal(back.grid_index, store.grid_index)
    np.testing.assert_array_equal(back.embeddings()[:], store.activations()[:])
    assert back.provenance["encoder"]["architecture"].endswith("+ SAE sae")  # activations, not encoder features
    assert (back.tile_side0, back.grid_step0, back.grid_origin0) == (store.tile_side0, store.tile_side0, (0.0, 0.0))
    points = np.random.default_rng(0).uniform(0, 9000, size=(5000, 2))
    np.testing.assert_array_equal(back.tile_at(points), store.tile_at(points))
    import h5py

    with h5py.File(tmp_path / "b4.h5") as f:  # what TRIDENT's own readers take from it
        attrs = dict(f["coords"].attrs)
        assert attrs["patch_size_level0"] == round(store.tile_side0) and attrs["patch_size"] == 224
        assert f["features"].attrs["values"] == "activation" and f["features"].shape == store.activations().shape


def test_trained_and_encoded_like_any_store(slide, tmp_path, capsys):
    coords = trident_grid(W, H, patch_size=224, src_mag=20, dst_mag=20, overlap=0)
    features = planted_features(slide, coords, 224, width=48)
    file = write_trident(tmp_path / "cmu.h5", coords, features, 224, 20, 20, 0, W, H, "uni_v1")
    store = tmp_path / "cmu.zarr"
    assert main(["import", str(file), "--slide", str(SVS), "-o", str(store)]) == 0
    assert f"{len(coords)} tiles x 48 features of uni_v1 from trident" in capsys.readouterr().out
    assert main(["import", str(file), "--slide", str(SVS), "-o", str(store)]) == 0  # again: nothing redone
    assert main(["train", str(store), "-o", str(tmp_path / "sae"), "--k", "4", "--samples", "4000"]) == 0
    assert main(["encode", str(store), "--sae", str(tmp_path / "sae")]) == 0
    assert TileStore.open(store).activations().shape[0] == len(coords)


BAD = [
    ("another slide", lambda t, c, f: write_trident(t / "x.h5", c, f, 256, 20, 10, 0, 4000, 3000, "uni"),
     "was made from a 4000x3000 px slide"),
    ("tiles off the slide", lambda t, c, f: write_trident(t / "x.h5", c + 3000, f, 256, 20, 10, 0, W, H, "uni"),
     "lie outside the 2220x2967 px slide"),
    ("rows differ", lambda t, c, f: write_trident(t / "x.h5", c[:-1], f, 256, 20, 10, 0, W, H, "uni"),
     "feature rows but"),
    ("not hdf5", lambda t, c, f: (t / "x.h5").write_bytes(b"not an hdf5 file") and t / "x.h5",
     "not an embedding file napari-pathsae recognises"),
    ("two tiles one cell", lambda t, c, f: write_trident(t / "x.h5", np.concatenate([c, c[:1] + 10]),
     np.concatenate([f, f[:1]]), 256, 20, 10, 0, W, H, "uni"), "fall on the grid cell of another"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs_are_one_line_and_leave_no_store(make, message, tmp_path, capsys):
    coords = trident_grid(W, H, 256, 20, 10, 0)
    file = make(tmp_path, coords, np.zeros((len(coords), 8), np.float32))
    assert main(["import", str(file), "--slide", str(SVS), "-o", str(tmp_path / "out.zarr")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.zarr")]  # no half-built store


def test_pt_without_coordinates_and_a_store_of_another_file_are_refused(slide, tmp_path):
    torch.save(torch.zeros(3, 8), tmp_path / "x.pt")
    with pytest.raises(PathsaeError, match="give the patching h5"):
        import_embeddings(tmp_path / "x.pt", SVS, tmp_path / "x.zarr")
    coords = trident_grid(W, H, 256, 20, 10, 0)
    first = write_trident(tmp_path / "a.h5", coords, np.zeros((len(coords), 8)), 256, 20, 10, 0, W, H, "uni")
    import_embeddings(first, SVS, tmp_path / "a.zarr")
    other = write_trident(tmp_path / "b.h5", coords, np.ones((len(coords), 8)), 256, 20, 10, 0, W, H, "uni")
    with pytest.raises(PathsaeError, match="different imported_sha256"):
        import_embeddings(other, SVS, tmp_path / "a.zarr")  # the store is not silently mixed or replaced
    np.testing.assert_array_equal(TileStore.open(tmp_path / "a.zarr").embeddings()[:], 0)


def lazyslide_store(tmp_path, features_of):
    """The CMU slide tiled and embedded by LazySlide itself (wsidata writes a SpatialData zarr beside the slide):
    224 px tiles at 0.5 µm/px, features from ``features_of`` (a batch of [0, 1] images → (n, D))."""
    import shutil
    import warnings

    from napari_pathsae.models.torch_compat import import_timm

    import_timm()  # torchvision's CUDA wheel beside CPU torch imports only after this (models/torch_compat.py)
    import torchvision.transforms.v2 as transforms

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lazyslide as zs
        from wsidata import open_wsi

        slide = tmp_path / "cmu.svs"
        shutil.copy(SVS, slide)
        wsi = open_wsi(slide)
        zs.pp.find_tissues(wsi)
        zs.pp.tile_tissues(wsi, 224, mpp=0.5)
        to_tensor = transforms.Compose([transforms.ToImage(), transforms.ToDtype(torch.float32, scale=True)])
        zs.tl.feature_extraction(
            wsi, model=features_of, model_name="darkness", device="cpu", transform=to_tensor, num_workers=0, pbar=False
        )
        wsi.write()
    return slide, tmp_path / "cmu.zarr"


def test_lazyslide_tiles_and_features_written_by_lazyslide_land_on_their_pixels(tmp_path):
    noise = torch.Generator().manual_seed(0)

    def darkness_model(images: torch.Tensor) -> torch.Tensor:  # the planted feature, and noise beside it
        planted = 255.0 * (1.0 - images.mean(dim=(1, 2, 3)))
        return torch.cat([planted[:, None], torch.randn(len(images), 15, generator=noise)], dim=1)

    slide, zarr_path = lazyslide_store(tmp_path, darkness_model)
    summary = import_embeddings(zarr_path, slide, tmp_path / "imported.zarr")
    store = TileStore.open(tmp_path / "imported.zarr")
    assert summary["format"] == "spatialdata" and summary["encoder"] == "darkness" and store.n_tiles > 20
    assert store.tile_side0 == store.grid_step0 == 224.0 and store.provenance["grid_max_shift_level0_px"] == 0
    np.testing.assert_array_equal(store.tile_at(store.tile_centres), np.arange(store.n_tiles))
    assert np.corrcoef(read_back_darkness(store), store.embeddings()[:, 0])[0, 1] > 0.99
    with pytest.raises(PathsaeError, match="0 feature tables for encoder 'uni'"):
        import_embeddings(zarr_path, slide, tmp_path / "other.zarr", encoder="uni")


def test_spatialdata_export_of_a_region_imports_back_exactly(her2st_model, tmp_path):
    store = TileStore.open(her2st_model / "b4.zarr")
    bbox = (3000, 3000, 7000, 8000)  # level-0 px: the tile ids written are a sparse subset
    assert main(["export", str(her2st_model / "b4.zarr"), "-o", str(tmp_path / "b4.sd.zarr"), "--bbox",
                 *map(str, bbox), "--image-side", "1024"]) == 0  # fmt: skip
    import_embeddings(tmp_path / "b4.sd.zarr", HER2ST_HE, tmp_path / "back.zarr", slide_mpp=0.69)
    back = TileStore.open(tmp_path / "back.zarr")
    from napari_pathsae.report.export import region_mask

    kept = np.flatnonzero(region_mask(store.tile_centres, bbox=bbox))
    assert 0 < back.n_tiles == len(kept) < store.n_tiles
    order = np.lexsort((store.coords[kept, 0], store.coords[kept, 1]))
    back_order = np.lexsort((back.coords[:, 0], back.coords[:, 1]))
    np.testing.assert_array_equal(back.coords[back_order], store.coords[kept][order])
    np.testing.assert_array_equal(back.embeddings()[:][back_order], store.activations()[:][kept][order])
    assert back.provenance["encoder"]["architecture"].endswith("+ SAE sae")
