"""QuPath GeoJSON out and in, on the real HER2+ section: tiles as detections with features as measurements and
concepts as classes, the region as an annotation; QuPath's own annotation exports as regions, picked by class.
Read back with json and shapely against QuPath's GeoJSON (FeatureCollection, objectType, measurements as an
object, classification {name, color}, level-0 px)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

from napari_pathsae.cli import main
from napari_pathsae.data.store import TileStore
from napari_pathsae.report.export import region_mask


def qupath_annotations(path, classes: dict[str, list]) -> None:
    """A QuPath 0.4+ 'Export objects as GeoJSON' of annotations: one polygon per class name."""
    features = [
        {"type": "Feature", "id": str(uuid.uuid4()),
         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
         "properties": {"objectType": "annotation", "classification": {"name": name, "color": [200, 0, 0]},
                        "isLocked": False}}
        for name, ring in classes.items()
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


TUMOUR = [[2000, 2000], [6000, 2200], [5500, 6500], [2500, 6000]]
STROMA = [[6500, 6500], [8500, 6500], [8500, 8500], [6500, 8500]]


def test_tiles_as_detections_concepts_as_classes_in_a_qupath_tumour_annotation(her2st_model, tmp_path, capsys):
    store_path = her2st_model / "b4.zarr"
    store = TileStore.open(store_path)
    annotations = tmp_path / "qupath.geojson"
    qupath_annotations(annotations, {"Tumor": TUMOUR, "Stroma": STROMA})
    assert main(["concepts", str(store_path), "-n", "4", "-o", str(tmp_path / "concepts")]) == 0
    out = tmp_path / "tiles.geojson"
    argv = ["export", str(store_path), "-o", str(out), "--geojson", str(annotations), "--region-class", "Tumor",
            "--features", "3", "f7", "--concepts", str(tmp_path / "concepts")]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["type"] == "FeatureCollection"
    detections = [f for f in data["features"] if f["properties"]["objectType"] == "detection"]
    [annotation] = [f for f in data["features"] if f["properties"]["objectType"] == "annotation"]
    # exactly the tiles whose centre lies in the Tumor annotation (not the Stroma one)
    inside = np.flatnonzero(region_mask(store.tile_centres, polygon=shapely.Polygon(TUMOUR)))
    tiles = [int(f["properties"]["name"].removeprefix("tile ")) for f in detections]
    assert sorted(tiles) == sorted(inside) and len(tiles) > 50
    assert shape(annotation["geometry"]).equals(shapely.Polygon(TUMOUR))
    acts = store.activations()[:]
    concepts = pd.read_csv(tmp_path / "concepts" / "tiles.csv").set_index("tile")["concept"]
    side = store.tile_side0
    for f, tile in zip(detections, tiles, strict=True):
        x, y = store.coords[tile]
        assert shape(f["geometry"]).equals(shapely.box(x, y, x + side, y + side))  # level-0 px square
        assert f["properties"]["measurements"] == {"f3": float(acts[tile, 3]), "f7": float(acts[tile, 7])}
        assert f["properties"]["classification"]["name"] == f"concept {concepts.loc[tile]}"
        assert len(f["properties"]["classification"]["color"]) == 3
        uuid.UUID(f["id"])
    assert len({f["id"] for f in data["features"]}) == len(data["features"])
    # the default measurements: the ten features strongest on average over the exported tiles
    assert main(["export", str(store_path), "-o", str(tmp_path / "all.geojson")]) == 0
    first = json.loads((tmp_path / "all.geojson").read_text())["features"][0]
    expected = {f"f{f}" for f in np.argsort(-np.nanmean(acts, axis=0), kind="stable")[:10]}
    assert set(first["properties"]["measurements"]) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region-class", "Necrosis"], "no annotation classified 'Necrosis' (has Stroma, Tumor)"),
        (["--features", "99999"], "feature 99999 does not exist"),
        (["--features", "fx"], "is not a feature"),
    ],
)
def test_geojson_errors_are_one_line(her2st_model, tmp_path, capsys, extra, message):
    annotations = tmp_path / "qupath.geojson"
    qupath_annotations(annotations, {"Tumor": TUMOUR, "Stroma": STROMA})
    argv = ["export", str(her2st_model / "b4.zarr"), "-o", str(tmp_path / "t.geojson"), "--geojson", str(annotations)]
    code = None
    try:
        code = main(argv + extra)
    except SystemExit as exit_:  # argparse's own refusal of a malformed value
        code = exit_.code
    assert code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) <= 2, err  # argparse adds its usage line
    assert not (tmp_path / "t.geojson").exists()


def test_geojson_options_belong_to_geojson_and_spot_tables_are_not_geojson(her2st_model, tmp_path, capsys):
    store = str(her2st_model / "b4.zarr")
    assert main(["export", store, "-o", str(tmp_path / "t.csv"), "--features", "3"]) == 1
    assert "--features belongs to a QuPath .geojson output" in capsys.readouterr().err
    planted = str(her2st_model / "planted")
    assert main(["export", store, "-o", str(tmp_path / "s.geojson"), "--visium", planted]) == 1
    assert "a spot table is written as .csv, .parquet or .h5ad, not .geojson" in capsys.readouterr().err
