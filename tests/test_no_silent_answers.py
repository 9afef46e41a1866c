"""Ordinary misuse never loses data or quietly answers another question (issue 14), on the real files.

Each case first reproduces what went wrong before: an SAE folder overwritten, a replaced slide drawn
under the maps, a region ignored, an SAE of another encoder accepted, Visium spots dropped without a
word, two runs computing one store; then checks the one-line refusal or the one-line report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import HER2ST_OUTS, SVS
from napari_pathsae.cli import main
from napari_pathsae.data.store import TileStore
from napari_pathsae.io.visium import read_positions

TINY = ["--encoder", "vit_tiny_patch16_224"]
QUICK_SAE = ["--expansion", "2", "--k", "8", "--samples", "2000"]


def cli(capsys, *args) -> tuple[int, str, str]:
    """`pathsae ARGS` in this process: (exit code, stdout, stderr); a refusal while parsing exits 2."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, says: str) -> None:
    lines = [line for line in err.splitlines() if not line.startswith(("pathsae: WARNING", "pathsae: note"))]
    assert code in (1, 2) and len(lines) == 1 and "error: " in lines[0] and says in lines[0], err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def skin(tmp_path_factory) -> Path:
    """A copy of the CC0 SVS embedded with a random ViT-Tiny, an SAE trained and applied (74 tiles)."""
    work = tmp_path_factory.mktemp("skin")
    shutil.copy(SVS, work / "skin.svs")
    for args in (
        ["embed", work / "skin.svs", "-o", work / "skin.zarr", *TINY],
        ["train", work / "skin.zarr", "-o", work / "sae", *QUICK_SAE],
        ["encode", work / "skin.zarr", "--sae", work / "sae"],
    ):
        assert main([str(a) for a in args]) == 0
    return work


def copy_of(skin: Path, tmp_path: Path) -> Path:
    for name in ("skin.svs", "skin.zarr", "sae"):
        shutil.copytree(skin / name, tmp_path / name) if (skin / name).is_dir() else shutil.copy(skin / name, tmp_path)
    return tmp_path


def test_train_onto_an_existing_sae_is_refused_and_replacing_it_invalidates_its_activations(skin, tmp_path, capsys):
    work = copy_of(skin, tmp_path)
    assert main(["encode", str(work / "skin.zarr"), "--sae", str(work / "sae")]) == 0  # activations of this folder
    before = (work / "sae" / "sae_weights.safetensors").read_bytes()
    code, _, err = cli(capsys, "train", work / "skin.zarr", "-o", work / "sae", *QUICK_SAE, "--expansion", "4")
    one_line_error(code, err, "exists; remove it or pass --overwrite")
    assert (work / "sae" / "sae_weights.safetensors").read_bytes() == before
    code, out, err = cli(capsys, "train", work / "skin.zarr", "-o", work / "sae", *QUICK_SAE, "--expansion", "4",
                         "--overwrite")  # fmt: skip
    assert code == 0 and "of 768 never fired: removed" in out, err
    kept = int(re.search(r"topk SAE, (\d+) features", out).group(1))
    code, _, err = cli(capsys, "export", work / "skin.zarr", "-o", work / "tiles.csv")
    one_line_error(code, err, "computed by an SAE since replaced")  # the 384-feature table is not served
    assert not (work / "tiles.csv").exists()
    assert main(["encode", str(work / "skin.zarr"), "--sae", str(work / "sae")]) == 0
    code, _, err = cli(capsys, "export", work / "skin.zarr", "-o", work / "tiles.csv")
    assert code == 0, err
    assert sum(c.startswith("f") for c in pd.read_csv(work / "tiles.csv").columns) == kept


def test_a_replaced_slide_is_refused_by_the_maps_and_a_missing_one_is_said(skin, tmp_path, capsys):
    work = copy_of(skin, tmp_path)
    store = TileStore.open(work / "skin.zarr", mode="r+")
    store.root.attrs["provenance"] = {**store.provenance, "slide_path": str(work / "skin.svs")}
    (work / "skin.svs").write_bytes((Path(SVS).parent / "tiatoolbox_target_image.png").read_bytes())
    code, _, err = cli(capsys, "concepts", work / "skin.zarr", "-n", "3", "-o", work / "concepts")
    one_line_error(code, err, "is no longer the slide skin.zarr was embedded from")
    assert not (work / "concepts").exists()
    (work / "skin.svs").unlink()
    code, _, err = cli(capsys, "concepts", work / "skin.zarr", "-n", "3", "-o", work / "concepts")
    assert code == 0 and "maps are drawn without the tissue" in err, err
    assert (work / "concepts" / "tiles.csv").is_file()


def test_an_sae_of_another_encoder_of_equal_width_is_refused(skin, tmp_path, capsys):
    code, _, err = cli(capsys, "embed", skin / "skin.svs", "-o", tmp_path / "deit.zarr", "--encoder",
                       "deit_tiny_patch16_224")  # fmt: skip
    assert code == 0, err
    assert TileStore.open(tmp_path / "deit.zarr").embeddings().shape[1] == 192  # the vit SAE's width too
    code, _, err = cli(capsys, "encode", tmp_path / "deit.zarr", "--sae", skin / "sae")
    one_line_error(code, err, "the SAE was trained on vit_tiny_patch16_224")
    assert "different" in err and TileStore.open(tmp_path / "deit.zarr").activation_names() == []
    code, _, err = cli(capsys, "report", skin / "sae", "--store", tmp_path / "deit.zarr", "-o", tmp_path / "r")
    one_line_error(code, err, "the SAE was trained on vit_tiny_patch16_224")  # not a report about nothing
    assert not (tmp_path / "r").exists()


def test_an_output_over_an_input_is_refused_even_with_overwrite(skin, tmp_path, capsys):
    work = copy_of(skin, tmp_path)
    weights = (work / "sae" / "sae_weights.safetensors").read_bytes()
    for args in (
        ["train", work / "skin.zarr", "-o", work / "skin.zarr", "--overwrite"],  # the store replaced by an SAE
        ["report", work / "sae", "--store", work / "skin.zarr", "-o", work / "sae", "--overwrite"],
        ["concepts", work / "skin.zarr", "-n", "3", "-o", work, "--overwrite"],  # a folder holding the store
        ["export", work / "skin.zarr", "-o", work / "skin.zarr" / "tiles.csv"],  # inside the store
    ):
        code, _, err = cli(capsys, *args)
        one_line_error(code, err, "would overwrite or sit inside the input")
    assert TileStore.open(work / "skin.zarr").complete
    assert (work / "sae" / "sae_weights.safetensors").read_bytes() == weights


def test_null_settings_without_their_null_are_refused(skin, tmp_path, capsys):
    for extra in (["--block-um", "500"], ["--null", "rotate", "--seed", "3"]):
        code, _, err = cli(capsys, "correlate", skin / "skin.zarr", "--visium", HER2ST_OUTS, "-o", tmp_path / "c.csv",
                           *extra)  # fmt: skip
        one_line_error(code, err, "belong to --null shuffle-blocks")


def test_export_visium_keeps_only_the_spots_in_the_region(her2st_model, tmp_path, capsys):
    work = her2st_model
    spots = read_positions(HER2ST_OUTS / "spatial")
    x_mid = float(spots.pxl_col_in_fullres.median())
    bbox = [0, 0, x_mid, 20000]
    code, out, err = cli(capsys, "export", work / "b4.zarr", "--visium", work / "planted", "--bbox", *bbox,
                         "-o", tmp_path / "left.csv")  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(tmp_path / "left.csv")
    assert 0 < len(table) < 283 and (table.x + 0.5 < x_mid).all() and f"{len(table)} spots" in out
    geojson = tmp_path / "left.geojson"
    ring = [[0, 0], [x_mid, 0], [x_mid, 20000], [0, 20000], [0, 0]]
    geojson.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    code, _, err = cli(capsys, "export", work / "b4.zarr", "--visium", work / "planted", "--geojson", geojson,
                       "-o", tmp_path / "left_polygon.csv")  # fmt: skip
    assert code == 0 and len(pd.read_csv(tmp_path / "left_polygon.csv")) == len(table), err


def visium_copy(tmp_path: Path, name: str, positions=None, scalefactors=None) -> Path:
    """her2st B4's planted outs with edited positions or scalefactors."""
    target = tmp_path / name
    shutil.copytree(HER2ST_OUTS, target)
    if positions is not None:
        (target / "spatial" / "tissue_positions.csv").write_text(positions(read_positions(target / "spatial"))
                                                                 .reset_index().to_csv(index=False))  # fmt: skip
    if scalefactors is not None:
        path = target / "spatial" / "scalefactors_json.json"
        path.write_text(json.dumps(scalefactors(json.loads(path.read_text()))))
    return target


def test_visium_drops_and_nonsense_are_said_or_refused(her2st_model, tmp_path, capsys, caplog):
    store = her2st_model / "b4.zarr"

    def correlate(folder: Path, out: str) -> tuple[int, str, str]:
        caplog.clear()  # in this process the warnings go to caplog; `pathsae` prints them on stderr
        code, printed, err = cli(capsys, "correlate", store, "--visium", folder, "--genes", "ERBB2", "-o",
                                 tmp_path / out)  # fmt: skip
        return code, printed, err + caplog.text

    half = visium_copy(tmp_path, "half", positions=lambda p: p.iloc[::2])
    code, _, err = correlate(half, "half.csv")
    assert code == 0 and "141 barcodes without a position were dropped" in err, err
    outside = visium_copy(tmp_path, "outside", positions=lambda p: p.assign(in_tissue=0))
    code, _, err = correlate(outside, "outside.csv")
    assert code == 0 and "283 of 283 spots are marked outside the tissue" in err, err
    transposed = visium_copy(tmp_path, "transposed", positions=lambda p: p.rename(columns={
        "pxl_row_in_fullres": "pxl_col_in_fullres", "pxl_col_in_fullres": "pxl_row_in_fullres"}))  # fmt: skip
    code, _, err = correlate(transposed, "transposed.csv")
    n = int(pd.read_csv(tmp_path / "transposed.csv").n_spots.iloc[0])
    assert code == 0 and f"spots: {n} of 283 used; left out: {283 - n} lie on no tissue tile" in err, err
    assert "a Visium sample of another section" in err
    wide = visium_copy(tmp_path, "wide", scalefactors=lambda s: {**s, "spot_diameter_fullres": 10 * s[
        "spot_diameter_fullres"]})  # fmt: skip
    one_line_error(*correlate(wide, "wide.csv")[::2], "x the spots' spacing")
    broad = visium_copy(tmp_path, "broad", scalefactors=lambda s: {**s, "spot_diameter_fullres": 2.5 * s[
        "spot_diameter_fullres"]})  # fmt: skip
    code, _, err = correlate(broad, "broad.csv")
    assert code == 0 and "check spot_diameter_fullres" in err, err
    for key, value in (("spot_diameter_fullres", 0), ("tissue_hires_scalef", -0.2), ("tissue_lowres_scalef", "x")):
        bad = visium_copy(tmp_path, f"bad_{key}", scalefactors=lambda s, k=key, v=value: {**s, k: v})
        one_line_error(*correlate(bad, f"{key}.csv")[::2], f"scalefactor {key} is")
    assert not any(p.suffix == ".csv" and p.stem in ("wide", "bad") for p in tmp_path.iterdir())


def test_a_store_embedded_with_visium_refuses_another_sections_spots(tmp_path, capsys):
    from conftest import HER2ST_HE

    crop = tmp_path / "b4.zarr"
    code, _, err = cli(capsys, "embed", HER2ST_HE, "-o", crop, *TINY, "--tile-um", "448", "--visium", HER2ST_OUTS,
                       "--slide-mpp", "0.69")  # fmt: skip
    assert code == 0, err
    shifted = visium_copy(tmp_path, "shifted", positions=lambda p: p.assign(
        pxl_col_in_fullres=p.pxl_col_in_fullres + 600))  # fmt: skip
    code, _, err = cli(capsys, "export", crop, "--visium", shifted, "-o", tmp_path / "spots.csv")
    one_line_error(code, err, "is not the Visium sample b4.zarr was embedded with")
    code, _, err = cli(capsys, "export", crop, "--visium", HER2ST_OUTS, "-o", tmp_path / "spots.csv")
    assert code == 0, err


def test_embed_checks_its_visium_folder_and_the_tissue_before_the_model(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "embed", SVS, "-o", tmp_path / "a.zarr", *TINY, "--visium", tmp_path / "empty")
    one_line_error(code, err, "no spatial/ folder")  # the slide has its own µm/px: the folder was ignored before
    from PIL import Image

    Image.fromarray(np.full((1200, 1500, 3), 250, np.uint8)).save(tmp_path / "white.png")
    code, _, err = cli(capsys, "embed", tmp_path / "white.png", "-o", tmp_path / "w.zarr", "--encoder",
                       "not_a_model", "--slide-mpp", "0.5")  # fmt: skip
    one_line_error(code, err, "no tile has 5% tissue")  # said before the (unknown) encoder is looked at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "white.png"]


def test_a_second_run_on_a_store_being_written_is_refused(tmp_path, capsys):
    store = tmp_path / "skin.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from napari_pathsae.data.store import writer_lock
            with writer_lock({str(store)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = cli(capsys, "embed", SVS, "-o", store, *TINY)
        one_line_error(code, err, "is being written by another pathsae run")
        assert not store.exists()
    finally:
        holder.kill()
        holder.wait()
    code, _, err = cli(capsys, "embed", SVS, "-o", store, *TINY)  # the lock went with its holder
    assert code == 0, err


#: Every command's numeric flags with a valid value; the property test makes one of them bad at a time.
NUMERIC = {
    "embed": (["embed", "SVS", "-o", "OUT/a.zarr", *TINY],
              {"--tile-um": "112", "--tile-px": "224", "--min-tissue": "0.05", "--slide-mpp": "0.5",
               "--batch-size": "32", "--chunk-tiles": "512", "--readers": "1", "--workers": "1", "--seed": "0"}),
    "train": (["train", "OUT/none.zarr", "-o", "OUT/sae"],
              {"--expansion": "8", "--k": "32", "--l1": "0.01", "--l0": "0.003", "--seed": "0",
               "--samples": "1000", "--batch-size": "64", "--lr": "0.0004"}),
    "concepts": (["concepts", "OUT/none.zarr", "-o", "OUT/c"], {"-n": "8", "--seed": "0"}),
    "predict-genes": (["predict-genes", "OUT/none.zarr", "--visium", "OUT/v", "-o", "OUT/p.csv"],
                      {"--folds": "5", "--block-um": "1000", "--top-features": "10", "--top-genes": "5",
                       "--seed": "0"}),
    "correlate": (["correlate", "OUT/none.zarr", "--visium", "OUT/v", "-o", "OUT/c.csv", "--null", "rotate"],
                  {"--top-genes": "5", "--block-um": "1000", "--seed": "0"}),
    "export": (["export", "OUT/none.zarr", "-o", "OUT/e.csv"], {"--bbox": "0 0 10 10"}),
    "info": (["info", "SVS"], {"--slide-mpp": "0.5"}),
}  # fmt: skip
BAD = st.sampled_from(["0", "-1", "-50", "nan", "inf", "-inf", "1e308", "2.5", "abc", ""])
#: Values from BAD that are legitimate for a flag (seed 0, no minimum tissue, no penalty, 2.5 µm/px, …).
VALID = {"--seed": {"0"}, "--min-tissue": {"0"}, "--l1": {"0"}, "--l0": {"0"}, "--slide-mpp": {"2.5"},
         "--block-um": {"2.5"}}  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(NUMERIC)), data=st.data(), bad=BAD)
def test_bad_numbers_and_paths_in_any_command_end_in_one_line(command, data, bad, tmp_path, capsys):
    """A bad value in any numeric flag (or a missing input path) exits non-zero with one line, no traceback,
    and writes nothing."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    base, flags = NUMERIC[command]
    flag = data.draw(st.sampled_from(sorted(flags)))
    assume(bad not in VALID.get(flag, ()))  # not a bad value for this flag
    args = [a.replace("SVS", str(SVS)).replace("OUT", str(out)) for a in base]
    for name, value in flags.items():
        values = value.split()
        if name == flag:
            values = [bad] * len(values)
        args += [name, *values]
    before = sorted(out.iterdir())
    code, _, err = cli(capsys, *args)
    lines = [line for line in err.splitlines() if line and not line.startswith(("pathsae: WARNING", "pathsae: note"))]
    assert code != 0, (args, err)
    assert len(lines) == 1 and "error: " in lines[0] and "Traceback" not in err, (args, err)
    assert sorted(out.iterdir()) == before
