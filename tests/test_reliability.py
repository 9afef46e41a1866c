"""Bad input and faults: one clear line, a non-zero exit, nothing half-written; killed runs resume exactly.

The file and Visium matrix is bad_inputs.CASES (also tabulated in docs/reliability.md).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_inputs import CASES, TINY, Case
from conftest import SVS
from napari_pathsae.cli import main
from napari_pathsae.data.store import TileStore
from napari_pathsae.engine.embed import EmbedOptions, embed_batches
from napari_pathsae.errors import PathsaeError
from napari_pathsae.io.slides import open_slide
from napari_pathsae.models.encoders import load_encoder
from napari_pathsae.report.export import read_polygon

#: Many small tiles of the real SVS (28 µm: 800+ tiles), small chunks: a run long enough to interrupt.
LONG_EMBED = [*TINY, "--tile-um", "28", "--chunk-tiles", "64", "--batch-size", "16"]


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, says: str) -> None:
    assert code == 1, err
    lines = [line for line in err.splitlines() if not line.startswith("pathsae: WARNING")]
    assert len(lines) == 1 and lines[0].startswith("pathsae: error: ") and says in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_matrix(case: Case, tmp_path, capsys):
    path = case.build(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = cli(capsys, *case.command(path, out))
    if case.expect == "ok":
        assert code == 0 and case.says in stdout + err, err
    else:
        assert_one_line_error(code, err, case.says)
        assert not any(out.iterdir())  # nothing half-written


def test_cmyk_tiff_converts_as_pillow_does(tmp_path):
    from PIL import Image

    from bad_inputs import cmyk_tiff, her2st_crop

    expected = np.asarray(Image.fromarray(her2st_crop(512)).convert("CMYK").convert("RGB"))
    pixels = open_slide(cmyk_tiff(tmp_path)).read_region(0, 0, 0, 512, 512)
    assert pixels.shape == (512, 512, 3) and np.abs(pixels.astype(int) - expected).max() <= 1


def test_a_50k_tiff_without_pyramid_opens_lazily_and_says_so(tmp_path, capsys):
    from bad_inputs import flat_tiff_50k

    path = flat_tiff_50k(tmp_path)
    start = time.perf_counter()
    code, out, _ = cli(capsys, "info", path)
    assert code == 0 and "level 0: (50000, 50000, 3)" in out and "no pyramid in the file" in out
    assert time.perf_counter() - start < 30  # lazily: decoding 7.5 Gpx would take minutes
    centre = open_slide(path).read_region(0, 24576, 24576, 1024, 1024)
    assert centre.std() > 10  # the one tissue tile, not glass


# --- models -----------------------------------------------------------------------------------
def test_preset_offline_is_refused_unless_random_init_is_asked(tmp_path, capsys):
    code, _, err = cli(capsys, "embed", SVS, "-o", tmp_path / "s.zarr", "--encoder", "uni")
    assert_one_line_error(code, err, "uni: weights unavailable (offline or no access to the model hub)")
    assert "--random-init" in err and not (tmp_path / "s.zarr").exists()


def test_pickled_checkpoint_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    code, _, err = cli(capsys, "embed", SVS, "-o", tmp_path / "s.zarr", "--encoder", tmp_path / "evil.pth",
                       "--arch", "vit_tiny_patch16_224")  # fmt: skip
    assert_one_line_error(code, err, "holds pickled objects besides tensors; refused")
    assert not marker.exists()


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("tiny")
    assert main(["embed", str(SVS), "-o", str(work / "tiny.zarr"), *TINY]) == 0
    return work / "tiny.zarr"


def test_sae_of_another_width_and_damaged_weights(tiny_store, tmp_path, capsys):
    from napari_pathsae.models.sae import SAEConfig, build_sae
    from napari_pathsae.models.sae.formats import save_sae

    save_sae(build_sae(SAEConfig(arch="topk", d_in=384, d_sae=768, k=8)), tmp_path / "wide", "pooled", {})
    code, _, err = cli(capsys, "encode", tiny_store, "--sae", tmp_path / "wide")
    assert_one_line_error(code, err, "the SAE expects 384-d inputs but tiny.zarr holds 192-d")
    weights = tmp_path / "wide" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = cli(capsys, "encode", tiny_store, "--sae", tmp_path / "wide")
    assert_one_line_error(code, err, "damaged SAE files")
    assert TileStore.open(tiny_store).activation_names() == []


def test_nan_and_inf_embeddings_are_left_out(tiny_store, tmp_path, capsys, caplog):
    store = tmp_path / "nan.zarr"
    shutil.copytree(tiny_store, store)
    pooled = zarr.open_group(str(store), mode="r+")["embeddings"]["pooled"]
    values = pooled[:]
    values[3] = np.nan
    values[5, 7] = np.inf
    pooled[:] = values
    assert main(["train", str(store), "-o", str(tmp_path / "sae"), "--samples", "2000", "--k", "8"]) == 0
    code, _, _ = cli(capsys, "encode", store, "--sae", tmp_path / "sae")
    assert code == 0 and "2 tiles have NaN/inf embeddings; their activations are NaN" in caplog.text
    activations = TileStore.open(store).activations()[:]
    assert np.isnan(activations[[3, 5]]).all() and np.isfinite(np.delete(activations, [3, 5], axis=0)).all()


def test_out_of_memory_halves_the_batch_and_gives_the_same_outputs():
    encoder = load_encoder("vit_tiny_patch16_224", seed=1)
    tiles = np.random.default_rng(0).integers(0, 256, (20, 224, 224, 3), dtype=np.uint8)
    expected = embed_batches(encoder, tiles, EmbedOptions(batch_size=20))["pooled"]
    real_embed, sizes = encoder.embed, []

    def small_memory(batch, *args):
        sizes.append(len(batch))
        if len(batch) > 6:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_embed(batch, *args)

    encoder.embed = small_memory
    got = embed_batches(encoder, tiles, EmbedOptions(batch_size=20))["pooled"]
    assert sizes[:3] == [20, 10, 5] and set(sizes[3:]) <= {5} and encoder.batch_limit == 5
    np.testing.assert_allclose(got, expected, atol=1e-5)
    encoder.embed = lambda batch, *args: (_ for _ in ()).throw(torch.OutOfMemoryError("simulated"))
    encoder.batch_limit = None
    with pytest.raises(PathsaeError, match="out of cpu memory even one tile at a time"):
        embed_batches(encoder, tiles[:2], EmbedOptions(batch_size=2))


# --- faults: kill -9, Ctrl-C, disk full -------------------------------------------------------
@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> np.ndarray:
    """Embeddings of an uninterrupted long run."""
    store = tmp_path_factory.mktemp("clean") / "clean.zarr"
    assert main(["embed", str(SVS), "-o", str(store), *LONG_EMBED]) == 0
    return TileStore.open(store).embeddings()[:]


def start_embed(store: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "napari_pathsae.cli", "embed", str(SVS), "-o", str(store), *LONG_EMBED]
    # a shell without job control starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: give the run the default a user's terminal gives it
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def wait_for_chunks(store: Path, chunks: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if zarr.open_array(str(store / "done"), mode="r")[:].sum() >= chunks:
                return
        except Exception:  # not created yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"the run ended or stalled before {chunks} chunks: {process.communicate()}")


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_interrupted_embed_resumes_to_the_clean_result(how, clean_run, tmp_path, capsys):
    store = tmp_path / "run.zarr"
    process = start_embed(store)
    wait_for_chunks(store, 3, process)
    process.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if how == "ctrl-c":
        assert process.returncode == 130 and err.strip().splitlines()[-1] == "pathsae: interrupted", err
    else:
        assert process.returncode == -signal.SIGKILL
    interrupted = TileStore.open(store)
    assert not interrupted.complete and 0 < len(interrupted.pending_chunks()) < len(interrupted.chunk_slices())
    code, _, err = cli(capsys, "embed", SVS, "-o", store, *LONG_EMBED)
    assert code == 0, err
    resumed = TileStore.open(store)
    assert resumed.complete and resumed.summary["computed"] < len(clean_run)  # only the missing chunks
    np.testing.assert_array_equal(resumed.embeddings()[:], clean_run)


def test_disk_full_stops_with_one_line_and_the_rerun_completes(clean_run, tmp_path, capsys, monkeypatch):
    import zarr.storage._local as local

    real_put, writes = local._put, []

    def fills_up(path, value, *args, **kwargs):
        writes.append(path)
        if len(writes) > 40:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_put(path, value, *args, **kwargs)

    monkeypatch.setattr(local, "_put", fills_up)
    store = tmp_path / "full.zarr"
    code, _, err = cli(capsys, "embed", SVS, "-o", store, *LONG_EMBED)
    assert_one_line_error(code, err, "No space left on device")
    assert "free space and rerun" in err and not list(store.rglob("*.partial"))
    monkeypatch.setattr(local, "_put", real_put)
    assert cli(capsys, "embed", SVS, "-o", store, *LONG_EMBED)[0] == 0
    np.testing.assert_array_equal(TileStore.open(store).embeddings()[:], clean_run)


# --- fuzzing the readers and the region parser ------------------------------------------------
HEADERS = [b"II*\x00", b"MM\x00*", b"II+\x00", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.sampled_from(HEADERS),
    body=st.binary(max_size=4096),
    suffix=st.sampled_from([".svs", ".tif", ".png", ".jpg"]),
)
def test_fuzzed_slide_bytes_open_or_fail_clearly(tmp_path, header, body, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(header + body)
    try:
        slide = open_slide(path)
    except PathsaeError:
        return
    try:  # opened: reading must also give pixels or one clear error
        slide.read_region(0, 0, 0, 8, 8)
    except PathsaeError:
        pass
    finally:
        slide.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.recursive(
    st.none() | st.booleans() | st.floats(allow_subnormal=False) | st.integers() | st.text(max_size=12)
    | st.sampled_from(["Polygon", "MultiPolygon", "Feature", "FeatureCollection"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["type", "features", "geometry", "coordinates", "properties"]) | st.text(max_size=5),
        children, max_size=5),
    max_leaves=40,
))  # fmt: skip
def test_fuzzed_geojson_gives_a_polygon_or_one_clear_error(tmp_path, document):
    path = tmp_path / "region.geojson"
    path.write_text(json.dumps(document))
    try:
        polygon = read_polygon(path)
    except PathsaeError as exc:
        assert "\n" not in str(exc)
        return
    assert polygon.area > 0
