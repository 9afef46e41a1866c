"""Layer-data tuples: placement in the world frame, metadata, spot features (no viewer needed)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Points

from conftest import HER2ST_OUTS, SVS
from napari_pathsae import PathsaeError, open_slide, open_visium
from napari_pathsae.plugin.layers import slide_layer, spot_features, spots_layer


def test_slide_layer_is_multiscale_in_micrometres_with_provenance():
    data, kwargs, kind = slide_layer(open_slide(SVS))
    assert kind == "image" and kwargs["multiscale"] and kwargs["rgb"]
    assert kwargs["scale"] == pytest.approx((0.499, 0.499))
    meta = kwargs["metadata"]["pathsae"]
    assert meta["path"] == str(SVS) and meta["mpp"] == pytest.approx(0.499)
    assert meta["level_shapes"][0] == (2967, 2220, 3) and meta["backend"] == "tifffile"
    layer = Image(data, **kwargs)
    np.testing.assert_allclose(layer.data_to_world((1000, 2000)), (499.0, 998.0))
    assert str(layer.units[0]) == "micrometer"


def test_unknown_resolution_is_said_in_the_name_and_units(svs_jpeg2000_no_mpp):
    _, kwargs, _ = slide_layer(open_slide(svs_jpeg2000_no_mpp))
    assert kwargs["name"].endswith("[µm/px unknown]")
    assert kwargs["scale"] == (1.0, 1.0) and kwargs["units"] == "pixel"
    assert kwargs["metadata"]["pathsae"]["mpp"] is None


def test_spots_layer_features_size_and_adata():
    sample = open_visium(HER2ST_OUTS)
    data, kwargs, kind = spots_layer(sample, genes=["ERBB2", "KRT19"])
    assert kind == "points" and data.shape == (283, 2)
    features = kwargs["features"]
    assert list(features.columns) == ["barcode", "total_counts", "in_tissue", "ERBB2", "KRT19"]
    column = sample.adata.var_names.get_loc("ERBB2")
    np.testing.assert_allclose(features["ERBB2"], sample.adata.X[:, column].toarray().ravel())
    np.testing.assert_allclose(features["total_counts"], np.asarray(sample.adata.X.sum(axis=1)).ravel())
    assert kwargs["face_color"] == "ERBB2" and kwargs["size"] == pytest.approx(55.0)
    assert kwargs["metadata"]["adata"] is sample.adata
    layer = Points(data, **kwargs)
    assert layer.face_color.shape == (283, 4) and len(np.unique(layer.face_color, axis=0)) > 5


def test_unknown_gene_is_refused():
    with pytest.raises(PathsaeError, match="gene 'NOTAGENE' is not in this sample"):
        spot_features(open_visium(HER2ST_OUTS), ["NOTAGENE"])
