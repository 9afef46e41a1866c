"""A small real-tissue cohort for tests: pieces of the real sections and slides in ../shared/data, with a
planted slide-level target (a share of each slide's tissue recoloured, as a stain batch would)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

#: How the test cohort is embedded: the toy mean-colour encoder, 56 µm tiles at 32 px.
GEOMETRY = ["--encoder", "mean-rgb", "--tile-um", "56", "--tile-px", "32"]
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

#: (name, source image, crop box (x0, y0, x1, y1) in source pixels, downsample, source µm/px)
PIECES = [
    ("her2_a", "her2st_B4/B4_HE.jpg", (0, 0, 4636, 4961), 4, 0.69),
    ("her2_b", "her2st_B4/B4_HE.jpg", (4636, 0, 9272, 4961), 4, 0.69),
    ("her2_c", "her2st_B4/B4_HE.jpg", (0, 4961, 4636, 9923), 4, 0.69),
    ("her2_d", "her2st_B4/B4_HE.jpg", (4636, 4961, 9272, 9923), 4, 0.69),
    ("colon", "tiatoolbox_colon_nuclei.png", None, 1, 0.25),
    ("target", "tiatoolbox_target_image.png", None, 1, 0.25),
    ("brain", "squidpy_visium_mouse_brain/test_img.jpg", None, 1, 1.0),
]


def recolour(pixels: np.ndarray, share: float) -> np.ndarray:
    """The stained pixels of the left ``share`` of the image turned green (red and green swapped, blue
    halved): a planted stain batch; background stays as it was, so the tissue found does not change."""
    out = pixels.copy()
    cut = round(share * pixels.shape[1])
    left = out[:, :cut]
    green = (left[..., [1, 0, 2]] * np.array([1.0, 1.0, 0.5])).astype(np.uint8)
    mask = _tissue(left)
    left[mask] = green[mask]
    return out


def write_cohort_files(
    folder: Path, shares: list[float] | None = None, pieces=PIECES, with_section: bool = False
) -> Path:
    """Slides (PNG, µm/px in the manifest) and a manifest with the planted ``batch_share`` column and a
    categorical ``site`` column; ``with_section`` adds the whole B4 section with its Visium sample (not
    recoloured). Returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    shares = shares if shares is not None else list(np.linspace(0.0, 0.9, len(pieces)))
    rows = ["slide,visium,slide_mpp,batch_share,site"]
    opened: dict[str, Image.Image] = {}
    for (name, source, box, factor, mpp), share in zip(pieces, shares, strict=True):
        if source not in opened:
            with warnings.catch_warnings():  # the 92-megapixel HER2+ section is no decompression bomb
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened[source] = Image.open(DATA / source).convert("RGB")
        image = opened[source]
        if box:
            image = image.crop(box)
        if factor > 1:
            image = image.resize((image.width // factor, image.height // factor), Image.Resampling.BOX)
        pixels = np.asarray(image)
        Image.fromarray(recolour(pixels, share)).save(folder / f"{name}.png")
        tissue = _tissue(pixels)
        cut = round(share * pixels.shape[1])
        planted = tissue[:, :cut].sum() / max(tissue.sum(), 1)  # the share of the tissue recoloured
        site = "north" if name.startswith("her2") else "south"
        rows.append(f"{name}.png,,{mpp * factor},{planted:.4f},{site}")
    if with_section:
        section = (DATA / "her2st_B4").resolve()
        rows.append(f"{section / 'B4_HE.jpg'},{section / 'spaceranger_outs'},0.69,0,north")
    manifest = folder / "cohort.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def _tissue(pixels: np.ndarray) -> np.ndarray:
    """Stained pixels: saturation above 0.08 and not near-black."""
    rgb = pixels.astype(np.float32) / 255
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    return ((high - low) / np.maximum(high, 1e-6) > 0.08) & (high > 0.15)


def pathsae(*args, ok: bool = True) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; asserts it succeeded (or, ``ok=False``, failed)."""
    done = subprocess.run(
        [sys.executable, "-m", "napari_pathsae.cli", *map(str, args)], capture_output=True, text=True, timeout=900
    )
    assert (done.returncode == 0) == ok, done.stderr
    return done


def encoded_cohort_files(work: Path) -> tuple:
    """The cohort embedded, an SAE trained on it and the cohort encoded (index built): (work, manifest, outputs)."""
    manifest = write_cohort_files(work / "slides")
    embed = pathsae("embed", "--manifest", manifest, "-o", work / "C", *GEOMETRY)
    pathsae("train", work / "C", "-o", work / "sae", "--expansion", "8", "--k", "4")
    encode = pathsae("encode", work / "C", "--sae", work / "sae")
    return work, manifest, embed, encode


if __name__ == "__main__":  # docs/cohort.md: python tests/cohort_files.py FOLDER [--with-section]
    print(write_cohort_files(Path(sys.argv[1]), with_section="--with-section" in sys.argv))
