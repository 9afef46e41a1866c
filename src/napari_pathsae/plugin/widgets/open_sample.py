"""Dock panel: open a slide and/or a Visium sample, with an optional µm/px override."""

from collections.abc import Callable
from pathlib import Path

import napari.viewer
from magicgui.widgets import Container, FileEdit, FloatSpinBox, LineEdit, PushButton

from ..gl_context import guard_layer_removal
from ..heatmap_layers import show_legend
from ..reader import layers_for
from ..warm_up import warm_up_once
from .fields import chosen_path
from .panel import Panel, status_label


class OpenSampleWidget(Panel, Container):
    """Slide file, Visium outs/ folder (or .h5ad), µm/px override, genes to colour spots by."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        guard_layer_removal(viewer)  # the spots' legend is shown: removing that layer must not crash napari
        self.slide = FileEdit(
            label="Slide", mode="r", nullable=True,
            tooltip="whole-slide image (SVS, TIFF, NDPI…) or, for Visium, the full-resolution image",
        )  # fmt: skip
        self.visium = FileEdit(
            label="Visium folder", mode="d", nullable=True, tooltip="Space Ranger outs/ of the section (optional)"
        )
        self.visium_h5ad = FileEdit(
            label="or .h5ad", mode="r", filter="*.h5ad", nullable=True, tooltip="a spatial AnnData instead of outs/"
        )
        self.mpp = FloatSpinBox(
            label="µm/px (0: metadata)", min=0.0, max=50.0, step=0.001, value=0.0,
            tooltip="the slide's micrometres per pixel when its file does not say (0: read it from the file)",
        )  # fmt: skip
        self.genes = LineEdit(label="Genes", tooltip="comma-separated genes to colour spots by")
        self.open_button = PushButton(text="Open", tooltip="add the slide (and spots) as layers")
        self.status = status_label("what was opened")
        super().__init__(
            widgets=[
                self.slide,
                self.visium,
                self.visium_h5ad,
                self.mpp,
                self.genes,
                self.open_button,
                self.status,
            ]
        )
        self.open_button.changed.connect(lambda _checked=None: self.open())  # a click passes its bool

    def open(self, on_opened: Callable[[list], None] | None = None):
        """Read what the fields name on a worker thread, then add its layers (``on_opened(layers)`` after);
        a user error becomes one notification line. Returns the worker."""
        genes = [g.strip() for g in self.genes.value.split(",") if g.strip()]
        visium = chosen_path(self.visium_h5ad) or chosen_path(self.visium)
        slide = chosen_path(self.slide)
        self.open_button.enabled = False
        self.say("opening " + ", ".join(Path(p).name for p in (slide, visium) if p) + "…")

        def opened(layers: list) -> None:
            self.open_button.enabled = True
            added = self._add(layers)
            warm_up_once()  # the Model panel, added next, then opens at once
            if on_opened is not None:
                on_opened(added)

        def failed(_exc) -> None:
            self.open_button.enabled = True

        return self.in_background(layers_for, slide, visium, self.mpp.value or None, genes, on_done=opened,
                                  on_error=failed)  # fmt: skip

    def _add(self, layers: list) -> list:
        """Add the layers read (GUI thread): napari builds them here, from lazy dask levels."""
        self._drop_unscaled_copies(layers)
        added = []
        for data, kwargs, kind in layers:
            layer = getattr(self._viewer, f"add_{kind}")(data, **kwargs)
            added.extend(layer if isinstance(layer, list) else [layer])
            if kind == "points":
                show_legend(layer, position="bottom_left")  # what colours the spots, with its colorbar
        first = layers[0][1]["metadata"]["pathsae"]
        units = "µm" if first.get("world_mpp") else "px (µm/px unknown)"
        self.status.value = f"opened {len(layers)} layer(s); world units: {units}"
        if added:
            self._viewer.scale_bar.visible = True  # µm when the resolution is known
            self._viewer.reset_view()
        return added

    def _drop_unscaled_copies(self, layers: list) -> None:
        """The same slide opened again, now with its µm/px, replaces its layer opened without one (which no
        model could use: the Model panel's error asks for this reopening, and both layers side by side
        would leave the panel pointing at the old one and napari warning of inconsistent units)."""
        opened = [kwargs["metadata"]["pathsae"] for _, kwargs, _ in layers]
        paths = {meta.get("path") for meta in opened if meta.get("world_mpp")} - {None}
        for layer in list(self._viewer.layers):
            meta = layer.metadata.get("pathsae", {})
            if meta.get("path") in paths and not meta.get("world_mpp"):
                self._viewer.layers.remove(layer)
