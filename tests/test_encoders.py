"""Encoder specs: random init is seeded and flagged, checkpoints load safely, outputs have the right shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_pathsae import PathsaeError
from napari_pathsae.models.encoders import (
    BUILDERS,
    POOLINGS,
    PRESETS,
    EncoderPreset,
    choose_device,
    choose_dtype,
    cpu_has_native_bf16,
    get_builder,
    get_pooling,
    load_encoder,
)

TINY = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(TINY, seed=3)


def test_random_init_is_flagged_seeded_and_reproducible(tiny):
    assert tiny.random_init and tiny.seed == 3 and tiny.provenance()["random_init"] is True
    again = load_encoder(TINY, seed=3)
    other = load_encoder(TINY, seed=4)
    assert again.weights_sha256 == tiny.weights_sha256 != other.weights_sha256


def test_outputs_pooled_layers_and_patch_tokens(tiny):
    tiles = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    out = tiny.embed(tiles, layers=(1, 12), patch_tokens=True)
    assert out["pooled"].shape == (3, 192) and out["layer_1"].shape == (3, 192)
    assert out["patch_tokens"].shape == (3, 196, 192)
    np.testing.assert_allclose(out["pooled"], tiny.embed(tiles)["pooled"], atol=1e-5)
    assert not np.allclose(out["layer_1"], out["layer_12"])
    small = tiny.embed(tiles[:, :112, :112])  # other tile sizes are resized to the input size
    assert small["pooled"].shape == (3, 192)


def test_checkpoint_roundtrip_and_mismatch(tmp_path, tiny):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    loaded = load_encoder(str(tmp_path / "w.safetensors"), architecture=TINY)
    assert not loaded.random_init and loaded.weights_sha256 == tiny.weights_sha256
    with pytest.raises(PathsaeError, match="does not fit vit_small_patch16_224"):
        load_encoder(str(tmp_path / "w.safetensors"), architecture="vit_small_patch16_224")
    with pytest.raises(PathsaeError, match="give the timm architecture"):
        load_encoder(str(tmp_path / "w.safetensors"))
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PathsaeError, match="cannot load the checkpoint safely"):
        load_encoder(str(tmp_path / "bad.pth"), architecture=TINY)


class Payload:
    """Any pickled class: torch.load(weights_only=True) must refuse to build it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"weights": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(PathsaeError, match="holds pickled objects besides tensors; refused"):
        load_encoder(str(tmp_path / "evil.pth"), architecture=TINY)


def test_unknown_specs_and_devices():
    with pytest.raises(PathsaeError, match="unknown encoder"):
        load_encoder("no_such_model_anywhere")
    with pytest.raises(PathsaeError, match="weights unavailable"):
        load_encoder("hf-hub:someone/something")
    with pytest.raises(PathsaeError, match="weights unavailable"):
        load_encoder(TINY, allow_random=False)
    if not torch.cuda.is_available():
        for device in ("cuda", "cuda:1"):
            with pytest.raises(PathsaeError, match="no CUDA GPU"):
                choose_device(device)
    for device in ("cpu:1", "tpu"):
        with pytest.raises(PathsaeError, match="unknown device"):
            choose_device(device)
    assert choose_device("cpu") == torch.device("cpu")


def test_dtype_follows_the_hardware():
    cpu = torch.device("cpu")
    assert choose_dtype(cpu) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert choose_dtype(cpu, "fp32") == torch.float32
    with pytest.raises(PathsaeError):
        choose_dtype(cpu, "fp8")


def test_presets_build_the_published_architectures():
    with pytest.raises(PathsaeError, match="--random-init"):  # a foundation model is asked for its weights
        load_encoder("uni")
    uni = load_encoder("uni", allow_random=True)  # offline here: random init of the right shape, and flagged
    assert uni.random_init and uni.width == 1024 and uni.architecture == "vit_large_patch16_224"
    assert PRESETS["virchow2"].pooling == "cls+mean"


def test_provenance_keys_are_the_ones_stores_record(tiny):
    assert list(tiny.provenance()) == [
        "spec", "architecture", "input_size", "mean", "std", "pooling", "random_init", "seed", "weights_sha256", "width"
    ]  # fmt: skip
    assert tiny.provenance()["pooling"] == "model" and tiny.provenance()["width"] == tiny.width == 192


def test_every_preset_names_a_registered_pooling_and_builder():
    for name, preset in PRESETS.items():
        assert preset.pooling in POOLINGS, name
        assert preset.builder in BUILDERS, name
    assert "timm" in BUILDERS and {"model", "cls+mean"} <= set(POOLINGS)


def test_mean_rgb_toy_builder_loads_and_embeds():
    encoder = load_encoder("mean-rgb", device="cpu", dtype="fp32")
    assert not encoder.random_init and encoder.seed is None  # no weights to miss: never a random init
    assert encoder.width == 3 and encoder.depth == 0 and encoder.architecture == "mean-rgb"
    colours = np.array([[255, 0, 0], [0, 255, 0], [10, 20, 30]], dtype=np.uint8)
    tiles = np.broadcast_to(colours[:, None, None, :], (3, 48, 48, 3))  # resized to the 32-px input size
    out = encoder.embed(tiles, patch_tokens=True)
    np.testing.assert_allclose(out["pooled"], colours / 255.0, atol=1e-6)  # a uniform tile embeds as its colour
    assert out["patch_tokens"].shape == (3, 16, 3)
    assert encoder.provenance()["width"] == 3
    with pytest.raises(PathsaeError, match="no intermediate layers"):
        encoder.embed(tiles, layers=(1,))


def test_a_preset_names_its_pooling_and_the_width_follows(monkeypatch):
    toy = PRESETS["mean-rgb"]
    monkeypatch.setitem(PRESETS, "mean-rgb-cm", EncoderPreset(**{**toy.__dict__, "pooling": "cls+mean"}))
    encoder = load_encoder("mean-rgb-cm", device="cpu", dtype="fp32")
    tiles = np.full((2, 32, 32, 3), 51, dtype=np.uint8)
    pooled = encoder.embed(tiles)["pooled"]
    assert encoder.width == 6 == pooled.shape[1] and encoder.provenance()["pooling"] == "cls+mean"
    np.testing.assert_allclose(pooled, 0.2, atol=1e-6)  # CLS (tile mean) next to the mean of the cells


def test_unknown_builder_or_pooling_is_one_clear_line(monkeypatch):
    for lookup, kind in ((get_builder, "encoder builder"), (get_pooling, "pooling")):
        with pytest.raises(PathsaeError, match=f"unknown {kind} 'nope'") as info:
            lookup("nope")
        assert "\n" not in str(info.value)
    monkeypatch.setitem(PRESETS, "no-builder", EncoderPreset("x", builder="nope"))
    monkeypatch.setitem(PRESETS, "no-pooling", EncoderPreset("mean-rgb", builder="mean-rgb", pooling="nope"))
    with pytest.raises(PathsaeError, match=r"unknown encoder builder 'nope' \(.*timm"):
        load_encoder("no-builder")
    with pytest.raises(PathsaeError, match=r"unknown pooling 'nope' \(model, cls\+mean\)"):
        load_encoder("no-pooling")
