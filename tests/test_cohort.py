"""A cohort end to end on real tissue: manifest → embed (dask) → train → encode + feature index → atlas in
Chromium, with a planted slide-level target that the index finds and that vanishes when shuffled."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cohort_files import GEOMETRY, pathsae
from napari_pathsae.analysis.feature_index import FeatureIndexBuilder
from napari_pathsae.analysis.slide_association import slide_associations
from napari_pathsae.data.cohort import open_cohort
from napari_pathsae.data.feature_index import FeatureIndex, load_index
from napari_pathsae.data.store import TileStore
from napari_pathsae.engine.cohort import cohort_index
from napari_pathsae.errors import PathsaeError
from napari_pathsae.io.manifest import read_manifest


@pytest.fixture(scope="module")
def cohort(encoded_cohort):
    return encoded_cohort


def test_manifest_rows_are_checked_in_one_line(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 64), "white").save(image)
    cases = {
        "name,dx\na.png,1\n": "needs a 'slide' column",
        "slide,dx\nmissing.png,1\n": "line 2: no such slide",
        "slide,slide_mpp\na.png,-1\n": "line 2: slide_mpp -1 must be",
        "slide,slide_mpp\na.png,abc\n": "not a number",
        "slide\na.png\na.png\n": "m.csv lines 2 and 3 share the name 'a'; add a 'name' column",
        "slide,name\na.png,x\na.png,x\n": "lines 2 and 3 share the name 'x'; give each its own name in the 'name'",
        "slide\n": "lists no slides",
    }
    for text, message in cases.items():
        path = tmp_path / "m.csv"
        path.write_text(text)
        with pytest.raises(PathsaeError, match=message):
            read_manifest(path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("slide,dx,grade\n../a.png,tumour,2\n")
    manifest = read_manifest(tmp_path / "sub" / "m.csv")  # relative to the manifest's folder
    assert manifest.slides[0].slide == (tmp_path / "a.png").resolve() or manifest.slides[0].slide.exists()
    assert manifest.variables.loc["a", "dx"] == "tumour" and manifest.variables["grade"].dtype.kind in "if"
    bad = pathsae("embed", "--manifest", tmp_path / "nothing.csv", "-o", tmp_path / "C", ok=False)
    assert bad.stderr.strip() == f"pathsae: error: no such manifest: {tmp_path / 'nothing.csv'}"
    (tmp_path / "m.csv").write_text("slide,slide_mpp\na.png,\n")  # a PNG says no µm/px: the row and column named
    unknown = pathsae("embed", "--manifest", tmp_path / "m.csv", "-o", tmp_path / "C", ok=False)
    assert unknown.stderr.strip() == (
        "pathsae: error: m.csv line 2: a.png: resolution unknown; give its µm/px in the slide_mpp column"
    )
    assert not (tmp_path / "C").exists()


def test_embed_makes_one_store_per_slide_and_resumes(cohort):
    work, manifest, embed, _ = cohort
    opened = open_cohort(work / "C")
    assert opened.names == ["her2_a", "her2_b", "her2_c", "her2_d", "colon", "target", "brain"]
    for path in opened.store_paths:
        assert TileStore.open(path).complete
    assert "cohort: 7/7 slides" in embed.stderr and "INFO" not in embed.stderr  # one progress line, no dask chatter
    assert embed.stdout.count("tiles/s") == 7
    again = pathsae("embed", "--manifest", manifest, "-o", work / "C", *GEOMETRY)
    assert again.stdout.count("finished before, skipped") == 7
    store = TileStore.open(opened.store_path("colon"), mode="r+")  # a killed run: its last chunk not flagged
    store.root["done"][0] = False
    store.root.attrs["complete"] = False
    resumed = pathsae("embed", "--manifest", manifest, "-o", work / "C", *GEOMETRY)
    assert resumed.stdout.count("skipped") == 6 and "colon.png:" in resumed.stdout
    assert TileStore.open(opened.store_path("colon")).complete
    other = pathsae("embed", "--manifest", manifest, "-o", work / "C", "--encoder", "mean-rgb", "--tile-um", "60",
                    "--tile-px", "32", ok=False)  # fmt: skip
    assert other.stderr.count("\n") == 1 and "different geometry" in other.stderr


def test_ctrl_c_stops_the_cohort_in_one_line_and_it_resumes(cohort, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the workers run: exit 130 and
    one line, no worker traceback; the next run finishes the cohort."""
    slides = cohort[1].parent  # two of the cohort's slides, by a ViT (random init): ~15 s, long enough to stop
    manifest = tmp_path / "two.csv"
    manifest.write_text(f"slide,slide_mpp\n{slides / 'her2_c.png'},2.76\n{slides / 'her2_d.png'},2.76\n")
    geometry = ["--encoder", "vit_tiny_patch16_224", "--tile-um", "112", "--workers", "2"]
    command = [sys.executable, "-m", "napari_pathsae.cli", "embed", "--manifest", str(manifest), "-o",
               str(tmp_path / "C"), *geometry]  # fmt: skip
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                           preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), os.setpgrp()))  # fmt: skip
    line = run.stderr.readline()
    while not line.startswith("cohort: "):  # a whole progress line: the cluster is up and its workers embed
        assert line, "embed ended before its first progress line"
        line = run.stderr.readline()
    os.killpg(run.pid, signal.SIGINT)
    rest = run.communicate(timeout=120)[1]
    said = [text for text in rest.splitlines() if "using a RANDOM init" not in text]  # the workers' notes
    assert "2/2 slides" not in line and run.returncode == 130 and said == ["pathsae: interrupted"], rest
    pathsae("embed", "--manifest", manifest, "-o", tmp_path / "C", *geometry)
    assert all(TileStore.open(p).complete for p in open_cohort(tmp_path / "C").store_paths)


def test_index_matches_brute_force(cohort):
    """Top tiles, densities and sums from the streaming pass equal those of all activations at once."""
    work = cohort[0]
    opened = open_cohort(work / "C")
    index = load_index(opened.index_path("sae"))
    values = [np.asarray(TileStore.open(p).activations("sae")[:]) for p in opened.store_paths]
    everything = np.concatenate(values)
    slide_of = np.concatenate([np.full(len(v), i) for i, v in enumerate(values)])
    for feature in range(index.n_features):
        expected = np.sort(everything[:, feature])[::-1][: index.top_value.shape[1]]
        expected = expected[expected > 0]
        np.testing.assert_allclose(index.top_value[feature, : len(expected)], expected, rtol=1e-6)
        top = index.top(feature)[0]
        store = TileStore.open(opened.store_path(top[0]))
        assert store.activations("sae")[top[1], feature] == pytest.approx(top[2])
        np.testing.assert_allclose(store.coords[top[1]], top[3])
    for s in range(len(values)):
        np.testing.assert_array_equal(index.fired[s], (values[s] > 0).sum(axis=0))
        np.testing.assert_allclose(index.sums[s], values[s].sum(axis=0), rtol=1e-4)
    assert index.n_tiles.sum() == len(everything) == len(slide_of)
    assert (index.sample_value[index.sample_slide >= 0] > 0).all()  # samples are of non-zero activations


def test_planted_slide_target_is_found_and_vanishes_when_shuffled(cohort):
    work = cohort[0]
    opened = open_cohort(work / "C")
    index = load_index(opened.index_path("sae"))
    row = list(index.variables).index("batch_share")
    best = index.strongest("batch_share")[0]
    assert index.assoc_q[row, best] <= 0.05 and index.assoc_stat[row, best] > 0.9
    assert f"batch_share: strongest f{best} (rho " in cohort[3].stdout  # the encode command names it
    shares = opened.variables["batch_share"]
    top_slides = {s for s, _, _, _ in index.top(best)}
    assert shares[list(top_slides)].min() >= shares.median()  # its top tiles come from the greenest slides
    rng = np.random.default_rng(0)
    for _ in range(3):  # the same cohort with the target shuffled over slides: nothing found
        shuffled = pd.DataFrame({"batch_share": rng.permutation(shares.to_numpy())}, index=shares.index)
        if abs(pd.Series(shuffled["batch_share"].to_numpy()).corr(pd.Series(shares.to_numpy()), "spearman")) > 0.5:
            continue
        _, _, _, _, q, _ = slide_associations(index.slide_means(), shuffled)
        assert q.min() > 0.05


def test_the_index_answers_the_cohort_as_it_is_now(cohort, tmp_path):
    """A manifest re-run with other values re-tests them (said); other slides or a missing SAE are refused."""
    work, manifest = cohort[0], cohort[1]
    folder = tmp_path / "C"
    shutil.copytree(work / "C", folder)
    fresh = load_index(open_cohort(folder).index_path("sae"))
    best, _, rho, _ = fresh.strongest("batch_share")
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table["slide"] = [str(manifest.parent / s) for s in table["slide"]]
    table["batch_share"] = table["batch_share"].to_numpy()[::-1]  # planted in slide order: ranks reversed
    table.to_csv(tmp_path / "reversed.csv", index=False)
    again = pathsae("embed", "--manifest", tmp_path / "reversed.csv", "-o", folder, *GEOMETRY)
    assert "slide-level variables updated from reversed.csv" in again.stderr
    index, notes = cohort_index(open_cohort(folder), work / "sae")
    assert notes[0].startswith("the slide-level variables changed") and index.strongest("batch_share")[0] == best
    row = list(index.variables).index("batch_share")
    assert index.assoc_stat[row, best] == pytest.approx(-rho)  # the new values, not the stale ones
    (tmp_path / "genes.csv").write_text("feature,gene,r,q\nf0,ERBB2,0.5,0.01\n")
    atlas = pathsae("atlas", "--cohort", folder, "--sae", work / "sae", "-o", tmp_path / "atlas",
                    "--genes-table", tmp_path / "genes.csv", "--features", "0", "1")  # fmt: skip
    assert "associations re-tested" in atlas.stderr
    assert "ERBB2" in (tmp_path / "atlas" / "features" / "f0.html").read_text()
    assert "the gene table has no row for f1" in (tmp_path / "atlas" / "features" / "f1.html").read_text()
    missing = pathsae("atlas", "--cohort", folder, "--sae", tmp_path / "nosuch", "-o", tmp_path / "a2", ok=False)
    assert missing.stderr.count("\n") == 1 and "nosuch: not an SAE folder" in missing.stderr
    table.iloc[:-1].to_csv(tmp_path / "fewer.csv", index=False)
    pathsae("embed", "--manifest", tmp_path / "fewer.csv", "-o", folder, *GEOMETRY)
    other = pathsae("atlas", "--cohort", folder, "--sae", work / "sae", "-o", tmp_path / "a3", ok=False)
    assert "built on other slides than C now lists" in other.stderr and not (tmp_path / "a3").exists()


def test_strongest_breaks_ties_in_q_by_the_statistic():
    """Few slides give equal q to many features: the strongest is the one with the largest |rho| among them."""
    index = FeatureIndex.__new__(FeatureIndex)
    index.variables, index.assoc_kind = np.array(["dose", "site"]), np.array(["spearman", "kruskal"])
    index.assoc_q = np.array([[0.01, 0.01, 0.01, 0.5], [0.2, 0.2, 0.2, 0.2]])
    index.assoc_stat = np.array([[0.8, -0.97, 0.9, 0.1], [3.0, 4.0, 5.0, 6.0]])
    assert index.strongest() == (1, "dose", -0.97, 0.01) and index.strongest("site")[0] == 3
    with pytest.raises(PathsaeError, match="no slide-level variable 'age'"):
        index.strongest("age")
    index.assoc_q = np.full((2, 4), np.nan)
    assert index.strongest() is None


def test_slide_is_the_unit_of_the_test():
    """Four slides in perfect order: p = 2/24 (every permutation of slides), however many tiles they have."""
    means = np.array([[0.1], [0.2], [0.3], [0.4]])
    names, kinds, stat, p, _, notes = slide_associations(means, pd.DataFrame({"score": [1.0, 2.0, 3.0, 4.0]}))
    assert names == ["score"] and kinds == ["spearman"] and stat[0, 0] == pytest.approx(1.0)
    assert p[0, 0] == pytest.approx(2 / 24)
    _, _, _, _, _, notes = slide_associations(means[:3], pd.DataFrame({"score": [1.0, 2.0, 3.0]}))
    assert "not tested" in notes[0]


def test_streaming_merge_keeps_the_largest(tmp_path):
    """Chunks of random sparse activations: the kept top equals a sort of everything."""
    rng = np.random.default_rng(1)
    builder = FeatureIndexBuilder(["a", "b"], 50, top=7, samples=5)
    rows = []
    for chunk in range(9):
        values = np.where(rng.random((300, 50)) < 0.05, rng.random((300, 50)), 0).astype(np.float32)
        builder.add(chunk % 2, np.arange(300) + chunk * 300, rng.random((300, 2)), values)
        rows.append(values)
    index = builder.finish()
    everything = np.concatenate(rows)
    for f in range(50):
        expected = np.sort(everything[:, f])[::-1][:7]
        np.testing.assert_allclose(index.top_value[f][: (expected > 0).sum()], expected[expected > 0])


def test_atlas_in_chromium(cohort, tmp_path):
    work = cohort[0]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the atlas test needs Debian's chromium (scripts/setup.sh --test installs it)"
    done = pathsae("atlas", "--cohort", work / "C", "--sae", work / "sae", "-o", work / "atlas")
    assert "atlas of" in done.stdout and (work / "atlas" / "index.html").is_file()
    index = load_index(open_cohort(work / "C").index_path("sae"))
    best = index.strongest("batch_share")[0]

    def dom(url: str) -> str:
        return subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip

    listed = dom(f"file://{work / 'atlas' / 'index.html'}#q=f{best}")
    assert f'href="features/f{best}.html"' in listed and f"1 of {index.n_features} features" in listed
    assert dom(f"file://{work / 'atlas' / 'index.html'}#sort=q").index(f">f{best}<") < 2000 + listed.index("<tbody>")
    page = dom(f"file://{work / 'atlas' / 'features' / f'f{best}.html'}")
    slide, tile, _, _ = index.top(best)[0]
    assert f"tiles/{slide}_{tile}.jpg" in page and "batch_share" in page
    thumb = np.asarray(Image.open(work / "atlas" / "tiles" / f"{slide}_{tile}.jpg"), dtype=float)
    from napari_pathsae.data.tiles import read_tiles
    from napari_pathsae.io.slides import open_slide

    store = TileStore.open(open_cohort(work / "C").store_path(slide))
    slide_file = open_slide(store.provenance["slide_path"], mpp=store.slide_mpp)
    real = read_tiles(slide_file, store.tile_grid(), np.array([tile]))
    real = np.asarray(Image.fromarray(real[0]).resize(thumb.shape[:2]), dtype=float)
    assert np.abs(thumb - real).mean() < 6  # the real tile, cut from its slide (JPEG aside)
    shot = tmp_path / "page.png"
    url = f"file://{work / 'atlas' / 'features' / f'f{best}.html'}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600"]
    subprocess.run([chromium, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 20  # tiles and maps drawn, not a blank page
    again = pathsae("atlas", "--cohort", work / "C", "--sae", work / "sae", "-o", work / "atlas", ok=False)
    assert "exists" in again.stderr and again.stderr.count("\n") == 1


def test_a_cohort_stands_for_its_stores_in_the_other_commands(cohort, tmp_path):
    work = cohort[0]
    done = pathsae("concepts", work / "C", "-n", "3", "-o", tmp_path / "concepts")
    assert "over 7 slide(s)" in done.stdout and "importance.csv" in done.stdout  # the manifest's numeric variables
    refused = {
        ("correlate", work / "C", "-o", tmp_path / "x.csv"): "no slide of the cohort has a Visium sample",
        ("correlate", work / "C", "--null", "transpose", "-o", tmp_path / "x.csv"):
            "drop --visium/--annotations/--null",
        ("train", work / "C", work / "C" / "stores" / "colon.zarr", "-o", tmp_path / "s"): "give it alone",
        ("atlas", "--cohort", work / "slides", "--sae", work / "sae", "-o", tmp_path / "a"): "is not a cohort",
        ("atlas", "--cohort", work / "C", "--sae", work / "sae", "-o", tmp_path / "a", "--features", "9999"):
            "feature 9999 is not in the index",
        ("embed", work / "slides" / "colon.png", "--manifest", work / "slides" / "cohort.csv", "-o", tmp_path / "c"):
            "give slides or --manifest, not both",
    }  # fmt: skip
    for args, message in refused.items():
        bad = pathsae(*args, ok=False)
        assert message in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "x.csv").exists()
