"""Presets as data: how each known pathology foundation model is built, one registry of them.

A preset names its builder (``builders.py``: timm today) and its pooling (``poolings.py``); the values
are the ones the model cards give, and they reach every store's provenance, so edit them never in place:
a new model version is a new preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_SWIGLU = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}


@dataclass(frozen=True)
class EncoderPreset:
    """How a known model is built: architecture, weights source, input size, normalisation, pooling, builder."""

    architecture: str
    hub_id: str | None = None
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET[0]
    std: tuple[float, float, float] = IMAGENET[1]
    #: Keyword arguments of the builder (timm: create_model's); layer classes by name, resolved by the builder.
    kwargs: dict = field(default_factory=dict)
    pooling: str = "model"  # a name in poolings.POOLINGS: "model" (timm's own head pooling), "cls+mean" (Virchow)
    builder: str = "timm"  # a name in builders.BUILDERS

    @property
    def source(self) -> str:
        """Where pretrained weights come from: the hub id, else the architecture itself."""
        return self.hub_id or self.architecture


PRESETS: dict[str, EncoderPreset] = {
    "uni": EncoderPreset(
        "vit_large_patch16_224", "hf-hub:MahmoodLab/UNI", kwargs={"init_values": 1e-5, "dynamic_img_size": True}
    ),
    "uni2-h": EncoderPreset(
        "vit_giant_patch14_224",
        "hf-hub:MahmoodLab/UNI2-h",
        kwargs={
            "img_size": 224,
            "patch_size": 14,
            "depth": 24,
            "num_heads": 24,
            "init_values": 1e-5,
            "embed_dim": 1536,
            "mlp_ratio": 2.66667 * 2,
            "no_embed_class": True,
            "reg_tokens": 8,
            "dynamic_img_size": True,
            **_SWIGLU,
        },
    ),
    "virchow": EncoderPreset(
        "vit_huge_patch14_224", "hf-hub:paige-ai/Virchow", kwargs={"init_values": 1e-5, **_SWIGLU}, pooling="cls+mean"
    ),
    "virchow2": EncoderPreset(
        "vit_huge_patch14_224",
        "hf-hub:paige-ai/Virchow2",
        kwargs={"init_values": 1e-5, "reg_tokens": 4, **_SWIGLU},
        pooling="cls+mean",
    ),
    **{
        f"h-optimus-{version}": EncoderPreset(
            "vit_giant_patch14_reg4_dinov2",
            f"hf-hub:bioptimus/H-optimus-{version}",
            mean=(0.707223, 0.578729, 0.703617),
            std=(0.211883, 0.230117, 0.177517),
            kwargs={"init_values": 1e-5},
        )
        for version in (0, 1)
    },
    "gigapath": EncoderPreset("vit_giant_patch14_dinov2", "hf-hub:prov-gigapath/prov-gigapath"),
}


def register_preset(name: str, preset: EncoderPreset) -> EncoderPreset:
    """Add a preset (from a model family's own file); a name is registered once, never silently replaced."""
    key = name.lower()  # load_encoder looks specs up lower-cased
    if key in PRESETS:
        raise ValueError(f"encoder preset {key!r} is already registered")
    PRESETS[key] = preset
    return preset
