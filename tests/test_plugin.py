"""The installed plugin: manifest, npe2 reader API, sample data and the dock widget in a viewer."""

from __future__ import annotations

import npe2
import numpy as np
import pytest
import tifffile

from conftest import HER2ST_HE, HER2ST_OUTS, SVS


@pytest.fixture(autouse=True)
def discovered():
    """npe2.read uses the global plugin manager, which finds plugins on discover()."""
    npe2.PluginManager.instance().discover()


def test_manifest_validates():
    manifest = npe2.PluginManifest.from_distribution("napari-pathsae")
    manifest.validate_imports()
    assert {s.key for s in manifest.contributions.sample_data} == {"skin_slide", "visium_heart"}


def test_npe2_read_svs_equals_tifffile():
    [(data, kwargs, kind)] = npe2.read([str(SVS)], stack=False, plugin_name="napari-pathsae")
    assert kind == "image" and kwargs["scale"] == pytest.approx((0.499, 0.499))
    np.testing.assert_array_equal(np.asarray(data[0][:512, :512]), tifffile.imread(SVS)[:512, :512])


def test_npe2_read_ome_pyramid_scale_is_its_mpp(ome_subifd_5_levels):
    [(data, kwargs, _)] = npe2.read([str(ome_subifd_5_levels)], stack=False, plugin_name="napari-pathsae")
    assert len(data) == 5 and kwargs["scale"] == pytest.approx((0.6897, 0.6897))


def test_npe2_read_space_ranger_folder():
    layers = npe2.read([str(HER2ST_OUTS)], stack=False, plugin_name="napari-pathsae")
    assert [kind for *_, kind in layers] == ["image", "points"]


def test_reader_declines_what_it_cannot_open(tmp_path):
    from napari_pathsae.plugin.reader import get_reader

    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path)) is None  # a folder that is not a Visium sample
    assert get_reader(str(SVS)) is not None


def test_sample_data_in_a_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-pathsae", "skin_slide")
    viewer.open_sample("napari-pathsae", "visium_heart")
    names = [layer.name for layer in viewer.layers]
    assert names == ["cmu_small_region.svs", "custom H&E (lowres)", "custom spots: total_counts"]
    assert viewer.layers["custom spots: total_counts"].data.shape == (100, 2)
    assert viewer.layers[0].metadata["pathsae"]["mpp"] == pytest.approx(0.499)


def test_open_widget_adds_aligned_layers(make_napari_viewer, qtbot):
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    viewer = make_napari_viewer()
    widget = OpenSampleWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.visium.value = HER2ST_OUTS
    widget.slide.value = HER2ST_HE
    widget.mpp.value = 0.69
    widget.genes.value = "ERBB2, KRT19"
    widget.open_button.clicked()
    assert not widget.open_button.enabled and widget.status.value.startswith("opening B4_HE.jpg, spaceranger_outs")
    qtbot.waitUntil(lambda: widget.open_button.enabled, timeout=60_000)  # read off the UI thread
    image, spots = viewer.layers
    assert image.metadata["pathsae"]["world_mpp"] == 0.69 and image.scale[0] == pytest.approx(0.69)
    assert list(spots.features.columns)[-2:] == ["ERBB2", "KRT19"]
    assert spots.size.mean() == pytest.approx(144.805 * 0.69)
    sample = spots.metadata["adata"]
    np.testing.assert_allclose(spots.data, sample.obsm["spatial"][:, ::-1] * 0.69)
    assert "world units: µm" in widget.status.value


def test_open_widget_reports_a_bad_file_in_one_line(make_napari_viewer, qtbot, tmp_path):
    from napari_pathsae.plugin.widgets.open_sample import OpenSampleWidget

    (tmp_path / "fake.svs").write_bytes(b"not a slide at all")
    viewer = make_napari_viewer()
    widget = OpenSampleWidget(viewer)
    widget.slide.value = tmp_path / "fake.svs"
    widget.open_button.clicked()
    qtbot.waitUntil(lambda: widget.open_button.enabled, timeout=60_000)
    assert len(viewer.layers) == 0
    assert widget.status.value.startswith("fake.svs: not a readable TIFF")
    assert "\n" not in widget.status.value
