"""Region tables: bbox and GeoJSON selection by tile centre, three formats, atomic and never overwriting."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

from napari_pathsae import PathsaeError
from napari_pathsae.data.store import TileStore
from napari_pathsae.report.export import export_tiles, region_mask


@pytest.fixture()
def store(tmp_path):
    rows, cols = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
    grid_index = np.stack([rows.ravel(), cols.ravel()], axis=1)
    coords = (grid_index[:, ::-1] * 100).astype(np.int64)
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    root.create_array("grid_index", data=grid_index.astype(np.int32))
    root.create_array("coords", data=coords)
    root.create_array("tissue_fraction", data=np.ones(len(coords), np.float32))
    root.create_array("embeddings/pooled", data=np.arange(len(coords) * 4, dtype=np.float32).reshape(-1, 4))
    root.create_array("activations/sae", data=np.tile(coords[:, :1], (1, 3)).astype(np.float32))
    root.require_group("activations")
    root.attrs.update(
        {
            "format": "napari-pathsae/tiles-v1",
            "identity": {},
            "provenance": {"tile_side_level0_px": 100.0, "slide_mpp": 0.5},
        }
    )
    return TileStore.open(tmp_path / "s.zarr")


def test_whole_slide_csv_parquet_h5ad(store, tmp_path):
    for name in ("t.csv", "t.parquet", "t.h5ad"):
        assert export_tiles(store, tmp_path / name) == 48
    csv = pd.read_csv(tmp_path / "t.csv")
    parquet = pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    assert list(csv.columns[-3:]) == ["f0", "f1", "f2"] and (csv["f0"] == csv["x"]).all()
    assert csv["centre_x_um"].iloc[1] == pytest.approx((100 + 50) * 0.5)
    adata = ad.read_h5ad(tmp_path / "t.h5ad")
    assert adata.shape == (48, 3)
    np.testing.assert_allclose(adata.obsm["spatial"][:, 0], csv["x"] + 50)  # (x, y) of tile centres
    assert adata.uns["pathsae"]["values"] == "activation"


def test_bbox_and_polygon_select_by_tile_centre(store, tmp_path):
    assert export_tiles(store, tmp_path / "b.csv", bbox=(100, 0, 300, 200)) == 4  # centres 150, 250 x 50, 150
    polygon = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [400, 0], [0, 400], [0, 0]]]},
    }
    (tmp_path / "p.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [polygon]}))
    table = (
        pd.read_csv(tmp_path / "p.csv")
        if export_tiles(store, tmp_path / "p.csv", geojson=tmp_path / "p.geojson")
        else None
    )
    centres = table[["x", "y"]].to_numpy() + 50
    assert (centres.sum(axis=1) < 400).all() and len(table) == 6
    mask = region_mask(store.coords + 50.0, (0, 0, 250, 250), tmp_path / "p.geojson")
    assert mask.sum() == 4  # centres (50|150, 50|150), all inside the triangle


def test_errors_and_no_overwrite(store, tmp_path):
    export_tiles(store, tmp_path / "t.csv")
    before = (tmp_path / "t.csv").read_bytes()
    with pytest.raises(PathsaeError, match="exists"):
        export_tiles(store, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == before
    with pytest.raises(PathsaeError, match="no tile lies"):
        export_tiles(store, tmp_path / "e.csv", bbox=(10_000, 10_000, 20_000, 20_000))
    with pytest.raises(PathsaeError, match="empty bbox"):
        export_tiles(store, tmp_path / "e.csv", bbox=(5, 5, 1, 1))
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(PathsaeError, match="not readable GeoJSON"):
        export_tiles(store, tmp_path / "e.csv", geojson=tmp_path / "bad.geojson")
    (tmp_path / "point.geojson").write_text(json.dumps({"type": "Point", "coordinates": [1, 2]}))
    with pytest.raises(PathsaeError, match="no Polygon"):
        export_tiles(store, tmp_path / "e.csv", geojson=tmp_path / "point.geojson")
    with pytest.raises(PathsaeError, match=r"choose a \.csv"):
        export_tiles(store, tmp_path / "e.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left
