"""A wheel built from the repository carries the manifest and npe2 validates it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_manifest_and_sample_data_and_validates(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(ROOT)], check=True, timeout=300)
    [wheel] = tmp_path.glob("napari_pathsae-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_pathsae/napari.yaml" in names
    assert "napari_pathsae/data/cmu_small_region.svs" in names
    assert "napari_pathsae/data/visium_mouse_heart/spatial/tissue_positions_list.csv" in names
    manifest = zipfile.ZipFile(wheel).read("napari_pathsae/napari.yaml")
    assert manifest == (ROOT / "napari.yaml").read_bytes()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import napari_pathsae; print(napari_pathsae.__file__)"],
                           capture_output=True, text=True, env=env, check=True, cwd=tmp_path)  # fmt: skip
    assert where.stdout.startswith(str(target))
    validate = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-pathsae"],
                              capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert validate.returncode == 0 and "valid" in validate.stdout.lower(), validate.stdout + validate.stderr


def test_editable_install_validates():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-pathsae"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
