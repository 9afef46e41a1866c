"""`pathsae` CLI: summaries, one-line errors with a non-zero exit (the demo: test_demo.py)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import HER2ST_HE, HER2ST_OUTS, SVS
from napari_pathsae.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_info_slide(capsys):
    assert main(["info", str(SVS)]) == 0
    out = capsys.readouterr().out
    assert "0.4990 µm/px (Aperio MPP)" in out and "level 0: (2967, 2220, 3)" in out


def test_info_visium_with_fullres(capsys):
    assert main(["info", str(HER2ST_OUTS), "--fullres", str(HER2ST_HE), "--slide-mpp", "0.69"]) == 0
    out = capsys.readouterr().out
    assert "B4: 283 spots x 15289 genes" in out and "0.6900 µm/px (user)" in out


def test_user_errors_are_one_line_and_exit_non_zero(tmp_path):
    (tmp_path / "junk.svs").write_bytes(b"\x00" * 100)
    for args in (["info", str(tmp_path / "missing.svs")], ["info", str(tmp_path / "junk.svs")],
                 ["info", str(SVS), "--slide-mpp", "-3"], ["info", str(tmp_path)]):  # fmt: skip
        result = run(*args)
        assert result.returncode in (1, 2), args  # 2: refused while parsing the flags
        assert re.match(r"pathsae( info)?: error: ", result.stderr) and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "info", str(tmp_path / "missing.svs"))
    assert result.returncode == 1 and "Traceback" in result.stderr
