"""Dock panel: choose the slide, encoder and SAE (or train one); run inference in view or on the whole slide."""

import re
from pathlib import Path

import napari.viewer
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from napari.utils import progress as napari_progress

from ...encoders import PRESETS
from ...errors import PathsaeError
from ...io.visium import open_visium
from ...pipeline import EmbedOptions, train_to_folder
from ...session import ExplorerSession
from ...tiles import TileGeometry
from ..background import run_in_background
from ..notify import report_error
from ..state import state_for
from .fields import chosen_path

NONE = "(none)"


class TrainingCancelled(PathsaeError):
    pass


def default_store_path(slide_path: str, encoder_spec: str) -> Path:
    """``<slide>.<encoder>.zarr`` beside the slide: the same store `pathsae embed` would be pointed at."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", encoder_spec).strip("-")
    path = Path(slide_path)
    return path.with_name(f"{path.stem}.{slug}.zarr")


class ModelPanel(Container):
    """Slide + encoder + SAE → a session; viewport/whole-slide inference; SAE training with cancel."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.state = state_for(viewer)
        self.slide_layer = ComboBox(label="Slide layer", choices=self._slide_layers)
        self.spots_layer = ComboBox(label="Visium spots", choices=self._spots_layers)
        self.encoder = LineEdit(
            label="Encoder",
            value="vit_small_patch16_224",
            tooltip="preset (" + ", ".join(PRESETS) + "), timm name, hf-hub:…",
        )
        self.sae_dir = FileEdit(label="SAE folder", mode="d", nullable=True)
        self.store = FileEdit(
            label="Store", mode="w", nullable=True, tooltip="blank: <slide>.<encoder>.zarr beside the slide"
        )
        self.tile_um = FloatSpinBox(label="Tile µm", value=112.0, min=8.0, max=2048.0, step=8.0)
        self.patch_tokens = CheckBox(text="Store patch tokens (patch-level heatmaps)", value=False)
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self.load_button = PushButton(text="Load model")
        self.model_info = Label(value="no model loaded")
        self.follow_view = CheckBox(text="Compute tiles in view", value=True)
        self.whole_slide_button = PushButton(text="Compute whole slide")
        self.cancel_slide_button = PushButton(text="Cancel whole-slide run")
        self.arch = ComboBox(label="Train: SAE", choices=["topk", "batchtopk", "jumprelu", "relu"], value="topk")
        self.expansion = SpinBox(label="Expansion", value=8, min=1, max=64)
        self.k = SpinBox(label="k", value=32, min=1, max=4096)
        self.train_output = FileEdit(label="Save SAE to", mode="d", nullable=True)
        self.train_button = PushButton(text="Train SAE on this slide")
        self.cancel_train_button = PushButton(text="Cancel training")
        self.train_progress = ProgressBar(value=0, min=0, max=1000, label="Training")
        self.status = Label(value="")
        super().__init__(
            widgets=[
                self.slide_layer, self.spots_layer, self.encoder, self.sae_dir, self.store, self.tile_um,
                self.patch_tokens, self.device, self.load_button, self.model_info, self.follow_view,
                self.whole_slide_button, self.cancel_slide_button, self.arch, self.expansion, self.k,
                self.train_output, self.train_button, self.cancel_train_button, self.train_progress, self.status,
            ]
        )  # fmt: skip
        self._cancel_training = False
        self._slide_progress = None
        self.load_button.changed.connect(self.load)
        self.follow_view.changed.connect(self._follow_changed)
        self.whole_slide_button.changed.connect(self.compute_whole_slide)
        self.cancel_slide_button.changed.connect(self.cancel_whole_slide)
        self.train_button.changed.connect(self.train)
        self.cancel_train_button.changed.connect(self.cancel_training)
        viewer.layers.events.inserted.connect(lambda _: self.reset_choices())
        viewer.layers.events.removed.connect(lambda _: self.reset_choices())

    # --- choices ------------------------------------------------------------------------------
    def _layers_of(self, kind: str) -> list:
        return [layer for layer in self._viewer.layers if layer.metadata.get("pathsae", {}).get("kind") == kind]

    def _slide_layers(self, _=None) -> list[str]:
        return [layer.name for layer in self._layers_of("slide")] or [NONE]

    def _spots_layers(self, _=None) -> list[str]:
        return [NONE] + [layer.name for layer in self._layers_of("spots")]

    # --- loading ------------------------------------------------------------------------------
    def _load_arguments(self) -> dict:
        if self.slide_layer.value in (None, NONE):
            raise PathsaeError("open a slide first (Open slide / Visium panel)")
        meta = self._viewer.layers[self.slide_layer.value].metadata["pathsae"]
        if not meta.get("path"):
            raise PathsaeError("this image has no file behind it; open the slide from a file")
        if re.fullmatch(r"tissue_(hires|lowres)_image\.png", Path(meta["path"]).name):
            raise PathsaeError("this is a Visium preview PNG; open the sample with its full-resolution slide")
        spots, spots_mpp = None, None
        if self.spots_layer.value not in (None, NONE):
            spots_meta = self._viewer.layers[self.spots_layer.value].metadata["pathsae"]
            spots, spots_mpp = spots_meta["path"], spots_meta.get("world_mpp")
        encoder = self.encoder.value.strip()
        if not encoder:
            raise PathsaeError("name an encoder")
        store = chosen_path(self.store)
        options = EmbedOptions(
            geometry=TileGeometry.from_options(tile_um=self.tile_um.value),
            patch_tokens=self.patch_tokens.value,
            slide_mpp=meta.get("mpp"),
            visium=spots,
        )
        sae = chosen_path(self.sae_dir)
        return {
            "slide_path": meta["path"],
            "store_path": store or str(default_store_path(meta["path"], encoder)),
            "encoder_spec": encoder,
            "sae_dir": sae,
            "options": options,
            "device": self.device.value,
            "spots": spots,
            "spots_mpp": spots_mpp,
        }

    def load(self):
        """Load encoder, store and SAE on a worker thread; the panels follow when it is done."""
        try:
            arguments = self._load_arguments()
        except PathsaeError as exc:
            self._fail(exc)
            return None
        self.status.value = f"loading {arguments['encoder_spec']}…"
        self.load_button.enabled = False
        return run_in_background(
            _open_session, arguments, on_done=self._loaded, on_error=lambda exc: self._fail(exc, reported=True)
        )

    def _loaded(self, session: ExplorerSession) -> None:
        self.load_button.enabled = True
        self.state.set_session(session)
        self.state.worker.whole_slide_progress.connect(self._slide_progressed)
        self.model_info.value = describe(session)
        self.status.value = f"store: {session.store.path}"
        if session.n_features:
            self._follow_changed(self.follow_view.value)

    def _fail(self, exc: Exception, reported: bool = False) -> None:
        self.load_button.enabled = True
        self.status.value = str(exc)
        if not reported:
            report_error(exc)

    # --- inference ------------------------------------------------------------------------------
    def _follow_changed(self, on: bool) -> None:
        if self.state.worker is not None:
            self.state.worker.follow_view(bool(on))

    def compute_whole_slide(self) -> None:
        if self.state.worker is None:
            report_error(PathsaeError("load a model first"))
            return
        total = self.state.worker.compute_whole_slide()
        if total == 0:
            self.status.value = "every tile is computed"
            return
        self._slide_progress = napari_progress(total=total, desc="pathsae: whole slide")

    def cancel_whole_slide(self) -> None:
        if self.state.worker is not None:
            self.state.worker.cancel_whole_slide()
        self._close_slide_progress("whole-slide run cancelled; computed tiles are kept in the store")

    def _slide_progressed(self, done: int, total: int) -> None:
        if self._slide_progress is not None:
            self._slide_progress.n = done
            self._slide_progress.refresh()
        self.status.value = f"whole slide: {done}/{total} tiles"
        if done >= total:
            self._close_slide_progress(f"whole slide done: {total} tiles computed")

    def _close_slide_progress(self, message: str) -> None:
        if self._slide_progress is not None:
            self._slide_progress.close()
            self._slide_progress = None
            self.status.value = message

    # --- training -----------------------------------------------------------------------------
    def train(self):
        """Train an SAE on this slide's store (every tile must be computed) on a worker thread."""
        from ...sae.train import TrainOptions

        session = self.state.session
        try:
            if session is None:
                raise PathsaeError("load a model first")
            if len(session.missing(None)) and not session.store.complete:
                raise PathsaeError("compute the whole slide before training (its embeddings are the training data)")
            if chosen_path(self.train_output) is None:
                raise PathsaeError("choose a folder to save the SAE to")
        except PathsaeError as exc:
            self._fail(exc)
            return None
        output = Path(self.train_output.value)
        options = TrainOptions(arch=self.arch.value, expansion=self.expansion.value, k=self.k.value)
        self._cancel_training = False
        self.train_button.enabled = False
        self.train_progress.value = 0

        def progress(step: int, steps: int, _metrics: dict) -> None:
            if self._cancel_training:
                raise TrainingCancelled("training cancelled; no SAE was saved")
            self.train_progress.value = int(1000 * step / steps)

        def finished(metrics: dict) -> None:
            self.train_button.enabled = True
            self.train_progress.value = 1000
            self.status.value = f"trained: FVU {metrics.get('fvu', float('nan')):.3f}, L0 {metrics.get('l0', 0):.1f}"
            self.sae_dir.value = output
            run_in_background(session.attach_sae, output, on_done=lambda _: self._loaded(session))

        def failed(exc: Exception) -> None:
            self.train_button.enabled = True
            self.status.value = str(exc)

        return run_in_background(
            train_to_folder, [session.store.path], output, options, progress, on_done=finished, on_error=failed
        )

    def cancel_training(self) -> None:
        self._cancel_training = True


def _open_session(arguments: dict) -> ExplorerSession:
    session = ExplorerSession.load(
        arguments["slide_path"],
        arguments["store_path"],
        arguments["encoder_spec"],
        arguments["sae_dir"],
        arguments["options"],
        device=arguments["device"],
    )
    if arguments["spots"]:
        try:
            session.attach_sample(open_visium(arguments["spots"], mpp=arguments["spots_mpp"]))
        except BaseException:
            session.close()
            raise
    return session


def describe(session: ExplorerSession) -> str:
    """Device, dtype, real or random weights, SAE width: what the user must know about the model."""
    encoder = session.computer.encoder
    weights = "RANDOM weights (not a trained encoder)" if encoder.random_init else "pretrained weights"
    sae = f"SAE {session.computer.sae_name}: {session.n_features} features" if session.n_features else "no SAE yet"
    dtype = str(encoder.dtype).removeprefix("torch.")
    return f"{encoder.spec} on {encoder.device} ({dtype}), {weights}; {sae}; {session.computer.n_tiles} tiles"
