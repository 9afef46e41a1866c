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
from qtpy.QtWidgets import QSizePolicy

from ...data.tiles import TileGeometry
from ...engine.embed import EmbedOptions
from ...engine.session import ExplorerSession
from ...errors import Cancelled, PathsaeError
from ...io.visium import open_visium, refuse_preview
from ...models.encoders import PRESETS
from ...models.encoders.device import DTYPES
from ...models.sae import architectures
from ...models.sae.train import SECTION_DEFAULTS, TrainOptions
from ...names import LayerKind, layer_kind
from .. import exploration_io
from ..background import on_gui_thread, run_in_background
from ..notify import report_error
from ..state import state_for
from .fields import chosen_path, compact
from .panel import Panel

NONE = "(none)"


class TrainingCancelled(Cancelled):
    pass


NO_MODEL = "no model loaded"
UNLOADED = "slide layer removed: model unloaded (its tiles are kept in the store); open the slide and Load to go on"


def default_store_path(slide_path: str, encoder_spec: str) -> Path:
    """``<slide>.<encoder>.zarr`` beside the slide: the same store `pathsae embed` would be pointed at."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", encoder_spec).strip("-")
    path = Path(slide_path)
    return path.with_name(f"{path.stem}.{slug}.zarr")


class ModelPanel(Panel, Container):
    """Slide + encoder + SAE → a session; viewport/whole-slide inference; SAE training with cancel."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.state = state_for(viewer)
        self.last_error: str | None = None  # the last failure shown in the status line (the demo stops on it)
        self.slide_layer = ComboBox(label="Slide layer", choices=self._slide_layers, tooltip="the slide to compute")
        self.spots_layer = ComboBox(
            label="Visium spots", choices=self._spots_layers, tooltip="spots of the same section (genes, predictions)"
        )
        self.encoder = LineEdit(
            label="Encoder",
            value="vit_small_patch16_224",
            tooltip="foundation model: a preset (" + ", ".join(PRESETS) + "), a timm name or hf-hub:ORG/NAME",
        )
        self.sae_dir = FileEdit(
            label="SAE folder", mode="d", nullable=True, tooltip="a trained SAE (SAELens layout); blank: train below"
        )
        self.imported = FileEdit(
            label="Or import", mode="r", nullable=True,
            tooltip="features another tool computed for this slide (TRIDENT, CLAM or STAMP .h5, a LazySlide "
            ".zarr): Load imports them into the store instead of running the encoder (docs/interop.md)",
        )  # fmt: skip
        self.store = FileEdit(
            label="Store", mode="w", nullable=True,
            tooltip="where embeddings and activations are cached; blank: <slide>.<encoder>.zarr beside the slide",
        )  # fmt: skip
        self.tile_um = FloatSpinBox(
            label="Tile µm", value=112.0, min=8.0, max=2048.0, step=8.0, tooltip="side of one tile on the tissue"
        )
        self.patch_tokens = CheckBox(
            text="Store patch tokens (patch-level heatmaps)", value=False,
            tooltip="also keep each tile's ViT patch tokens (~150 KB a tile) for patch-resolution heatmaps",
        )  # fmt: skip
        self.device = ComboBox(
            label="Device", choices=["auto", "cpu", "cuda", "mps"], value="auto", tooltip="auto: a GPU when present"
        )
        self.dtype = ComboBox(
            label="Precision", choices=["auto", *DTYPES], value="auto",
            tooltip="auto: bf16 where the GPU or CPU does it natively, else fp32. In bf16 a tile's embedding varies "
            "slightly with the tiles batched beside it, so a store computed here and one from `pathsae embed` can "
            "differ near a TopK threshold; fp32 gives the same numbers whatever the batch",
        )  # fmt: skip
        self.load_button = PushButton(text="Load model", tooltip="load the encoder (and SAE) and open the store")
        self.model_info = Label(value=NO_MODEL, tooltip="the encoder, its weights and the SAE in use")
        self.follow_view = CheckBox(
            text="Compute tiles in view", value=True, tooltip="compute the tiles the camera shows as you pan"
        )
        self.whole_slide_button = PushButton(text="Compute whole slide", tooltip="compute every tissue tile")
        self.cancel_slide_button = PushButton(
            text="Cancel", tooltip="stop the whole-slide run; tiles computed so far stay in the store"
        )
        self.restart_button = PushButton(
            text="Restart inference", tooltip="start a new inference worker after the last one stopped", visible=False
        )
        self.arch = ComboBox(
            label="SAE", choices=architectures(), value=SECTION_DEFAULTS["arch"],
            tooltip="SAE architecture: topk keeps the k largest latents of each tile",
        )  # fmt: skip
        self.expansion = SpinBox(
            label="×", value=SECTION_DEFAULTS["expansion"], min=1, max=64,
            tooltip="SAE features per embedding dimension",
        )  # fmt: skip
        self.k = SpinBox(
            label="k", value=SECTION_DEFAULTS["k"], min=1, max=4096, tooltip="active features a tile (topk)"
        )
        self.train_output = FileEdit(
            label="Save SAE to", mode="d", nullable=True,
            tooltip="a new folder; blank: <store>.<arch>-x<expansion>-k<k> beside the store (never overwritten)",
        )  # fmt: skip
        self.train_button = PushButton(text="Train SAE on this slide", tooltip="train on this slide's embeddings")
        self.cancel_train_button = PushButton(text="Cancel", tooltip="stop training; no SAE is saved")
        self.train_progress = ProgressBar(value=0, min=0, max=1000, label="Training", tooltip="training steps done")
        self.save_button = PushButton(
            text="Save exploration",
            tooltip="save selection, correlations, concepts, regions, camera and layer settings beside the store "
            "(also done when the window closes; restored when this slide, store and SAE are loaded again)",
        )
        self.status = Label(value="", tooltip="what the panel is doing")
        for label in (self.model_info, self.status):
            label.native.setWordWrap(True)
        for combo in (self.slide_layer, self.spots_layer):
            compact(combo)
        for cancel in (self.cancel_slide_button, self.cancel_train_button):
            cancel.native.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)

        def row(*widgets, labels: bool = False) -> Container:
            return Container(layout="horizontal", widgets=list(widgets), labels=labels)

        super().__init__(
            widgets=[
                self.slide_layer, self.spots_layer, self.encoder, self.imported, self.sae_dir, self.store,
                row(self.tile_um, self.device, labels=True), self.dtype, self.patch_tokens,
                self.load_button, self.model_info,
                self.follow_view, row(self.whole_slide_button, self.cancel_slide_button), self.restart_button,
                row(self.arch, self.expansion, self.k, labels=True), self.train_output,
                row(self.train_button, self.cancel_train_button), self.train_progress, self.save_button, self.status,
            ],
        )  # fmt: skip
        self._training = False
        self._train_after_slide: tuple | None = None  # (output, options) waiting for the whole slide
        self._slide_progress = None
        self.load_button.changed.connect(self.load)
        self.follow_view.changed.connect(self._follow_changed)
        self.whole_slide_button.changed.connect(self.compute_whole_slide)
        self.cancel_slide_button.changed.connect(self.cancel_whole_slide)
        self.train_button.changed.connect(self.train)
        self.cancel_train_button.changed.connect(self.cancel_training)
        self.save_button.changed.connect(self.save_exploration)
        self.state.tiles_computed.connect(self._tiles_computed)
        self.state.session_changed.connect(self._session_changed)
        self.state.whole_slide_progress.connect(self._slide_progressed)
        self.state.worker_stopped.connect(self._worker_stopped)
        self.restart_button.changed.connect(self.restart_worker)
        viewer.layers.events.inserted.connect(lambda _: self._layers_changed())
        viewer.layers.events.removed.connect(lambda _: self._layers_changed())
        self._layers_changed()

    # --- choices ------------------------------------------------------------------------------
    def _layers_of(self, kind: str) -> list:
        return [layer for layer in self._viewer.layers if layer_kind(layer) == kind]

    def _slide_layers(self, _=None) -> list[str]:
        return [layer.name for layer in self._layers_of(LayerKind.SLIDE)] or [NONE]

    def _spots_layers(self, _=None) -> list[str]:
        return [NONE] + [layer.name for layer in self._layers_of(LayerKind.SPOTS)]

    def _layers_changed(self) -> None:
        self.reset_choices()
        spots = self._spots_layers()[1:]
        if self.spots_layer.value in (None, NONE) and len(spots) == 1:
            self.spots_layer.value = spots[0]  # the only spots layer is the one meant

    # --- loading ------------------------------------------------------------------------------
    def _load_arguments(self) -> dict:
        self._layers_changed()  # layers may have been renamed (spots are named after what they show)
        if self.slide_layer.value in (None, NONE):
            raise PathsaeError("open a slide first (Open slide / Visium panel)")
        meta = self._viewer.layers[self.slide_layer.value].metadata["pathsae"]
        if not meta.get("path"):
            raise PathsaeError("this image has no file behind it; open the slide from a file")
        if not meta.get("world_mpp"):
            raise PathsaeError(
                "this slide's µm/px is unknown (tiles are sized in µm): open it again in the Open panel with its µm/px"
            )
        refuse_preview(meta["path"])
        spots, spots_mpp = None, None
        if self.spots_layer.value not in (None, NONE):
            spots_meta = self._viewer.layers[self.spots_layer.value].metadata["pathsae"]
            spots, spots_mpp = spots_meta["path"], spots_meta.get("world_mpp")
        encoder = self.encoder.value.strip()
        if not encoder:
            raise PathsaeError("name an encoder")
        store, imported = chosen_path(self.store), chosen_path(self.imported)
        if imported and not store:
            store = str(default_store_path(meta["path"], f"{Path(imported).stem}-imported"))
        options = EmbedOptions(
            geometry=TileGeometry.from_options(tile_um=self.tile_um.value),
            patch_tokens=self.patch_tokens.value,
            slide_mpp=meta.get("mpp"),
            visium=spots,
            slide_backend=meta.get("backend"),
        )
        sae = chosen_path(self.sae_dir)
        return {
            "slide_path": meta["path"],
            "store_path": store or str(default_store_path(meta["path"], encoder)),
            "encoder_spec": encoder,
            "sae_dir": sae,
            "options": options,
            "device": self.device.value,
            "dtype": self.dtype.value,
            "spots": spots,
            "spots_mpp": spots_mpp,
            "imported": imported,
        }

    def load(self):
        """Load encoder, store and SAE on a worker thread; the panels follow when it is done."""
        try:
            arguments = self._load_arguments()
        except PathsaeError as exc:
            self._fail(exc)
            return None
        imported = arguments["imported"]
        self.status.value = f"importing {Path(imported).name}…" if imported else f"loading {arguments['encoder_spec']}…"
        self.load_button.enabled = False
        return run_in_background(
            _open_session, arguments, on_done=self._loaded, on_error=lambda exc: self._fail(exc, reported=True)
        )

    def _loaded(self, session: ExplorerSession) -> None:
        self.load_button.enabled = True
        self.state.set_session(session)  # the fields follow (_session_changed)
        if session.n_features:
            self._restore_exploration()
        self._follow_changed(self.follow_view.value)  # embeddings are worth computing before an SAE exists

    def _session_changed(self) -> None:
        """The fields say what the session is (loaded here, imported, or a slide opened by the Cohort panel),
        so that Load or Train act on the slide on screen, not on what was typed before."""
        session = self.state.session
        if session is None:  # unloaded: its slide layer was removed
            self._train_after_slide = None
            self._close_slide_progress(None)
            self.model_info.value = NO_MODEL
            self.status.value = UNLOADED
            self._update_train_button()
            return
        provenance = session.store.provenance
        self.store.value = session.store.path
        self.imported.value = None
        self.sae_dir.value = session.sae_dir
        tile_um = float(provenance["geometry"]["tile_um"])
        self.tile_um.value = min(max(tile_um, self.tile_um.min), self.tile_um.max)
        self.encoder.value = provenance["encoder"]["spec"]
        self.model_info.value = describe(session)
        self.status.value = f"store: {session.store.path}"
        self._update_train_button()

    def _restore_exploration(self) -> None:
        try:
            if exploration_io.restore(self.state):
                self.status.value = f"exploration restored from beside {self.state.session.store.path.name}"
        except PathsaeError as exc:
            self._fail(exc)

    def save_exploration(self):
        """Save the exploration beside the store; returns its folder (None when there is nothing to save)."""
        try:
            if self.state.session is None or not self.state.session.n_features:
                raise PathsaeError("load a model with an SAE first: an exploration is saved per SAE")
            folder = exploration_io.save(self.state)
        except PathsaeError as exc:
            self._fail(exc)
            return None
        self.status.value = f"exploration saved to {folder}"
        return folder

    def _fail(self, exc: Exception, reported: bool = False) -> None:
        self.load_button.enabled = True
        self.status.value = self.last_error = str(exc)
        if not reported:
            report_error(exc)

    # --- inference ------------------------------------------------------------------------------
    def _follow_changed(self, on: bool) -> None:
        if self.state.worker is not None:
            self.state.worker.follow_view(bool(on))

    def _tiles_computed(self, _indices=None) -> None:
        session = self.state.session
        if session is not None:
            self.model_info.value = describe(session)  # the computed count moves as tiles arrive
            self._update_train_button()

    def _worker_stopped(self, exc: Exception) -> None:
        """The inference process died (napari did not): one line, and a button to start a new one."""
        self._train_after_slide = None
        self._close_slide_progress(None)
        self.fail(PathsaeError(f"{exc}; click Restart inference to go on"))
        self.restart_button.visible = True

    def restart_worker(self):
        session = self.state.session
        if session is None:
            return None
        self.restart_button.enabled = False
        self.say("restarting the inference worker…")

        def restarted(_=None) -> None:
            self.restart_button.enabled, self.restart_button.visible = True, False
            self.say("inference worker restarted")
            if self.follow_view.value and self.state.worker is not None:
                self.state.worker.request_view()

        def failed(_exc) -> None:
            self.restart_button.enabled = True

        return self.in_background(session.restart_worker, on_done=restarted, on_error=failed)

    def compute_whole_slide(self) -> int:
        """Queue every tile not computed yet; returns how many."""
        if self.state.worker is None:
            self.fail(PathsaeError("load a model first"))
            return 0
        total = self.state.worker.compute_whole_slide()
        self._close_slide_progress(None)
        if total == 0:
            self.status.value = "every tile is computed"
            self._whole_slide_done()
            return 0
        self._slide_progress = napari_progress(total=total, desc="pathsae: whole slide")
        self.status.value = f"whole slide: 0/{total} tiles"
        return total

    def cancel_whole_slide(self) -> None:
        if self.state.worker is not None:
            self.state.worker.cancel_whole_slide()
        self._train_after_slide = None
        self._close_slide_progress("whole-slide run cancelled; computed tiles are kept in the store")

    def _slide_progressed(self, done: int, total: int) -> None:
        if self._slide_progress is None:
            return  # a run already closed (cancelled, or replaced by a new one)
        self._slide_progress.n = done
        self._slide_progress.refresh()
        self.status.value = f"whole slide: {done}/{total} tiles"
        if done >= total:
            self._close_slide_progress(f"whole slide done: {total} tiles computed")
            self._whole_slide_done()

    def _close_slide_progress(self, message: str | None) -> None:
        if self._slide_progress is not None:
            self._slide_progress.close()
            self._slide_progress = None
        if message:
            self.status.value = message

    def _whole_slide_done(self) -> None:
        if self._train_after_slide is not None:
            output, options = self._train_after_slide
            self._train_after_slide = None
            self._start_training(output, options)

    # --- training -----------------------------------------------------------------------------
    def _missing_embeddings(self) -> int:
        session = self.state.session
        return 0 if session is None else int((~session.embedded).sum())

    def _update_train_button(self) -> None:
        missing = self._missing_embeddings()
        self.train_button.text = (
            f"Compute {missing} missing tiles, then train" if missing else "Train SAE on this slide"
        )

    def _train_options(self) -> TrainOptions:
        return TrainOptions.for_section(
            self.state.session.n_tiles, arch=self.arch.value, expansion=self.expansion.value, k=self.k.value
        )

    def _train_output(self) -> Path:
        session = self.state.session
        chosen = chosen_path(self.train_output)
        if chosen is None:
            return session.fresh_sae_folder(f"{self.arch.value}-x{self.expansion.value}-k{self.k.value}")
        if Path(chosen).exists():
            raise PathsaeError(f"{chosen} exists; choose a new folder for the SAE (nothing is overwritten)")
        return Path(chosen)

    def train(self):
        """Train an SAE on this slide's embeddings on a worker thread; missing tiles are computed first."""
        try:
            if self.state.session is None:
                raise PathsaeError("load a model first")
            if self._training or self._train_after_slide is not None:
                raise PathsaeError("training is already running")
            output, options = self._train_output(), self._train_options()
        except PathsaeError as exc:
            self._fail(exc)
            return None
        self.state.cancel_training.clear()
        missing = self._missing_embeddings()
        if missing:
            self._train_after_slide = (output, options)
            self.compute_whole_slide()
            self.status.value = f"computing the {missing} missing tiles first; training follows"
            return None
        return self._start_training(output, options)

    def _start_training(self, output: Path, options):
        session = self.state.session
        self._training = True
        self.train_button.enabled = False
        self.train_progress.value = 0
        self.status.value = f"training {options.arch} x{options.expansion} on {session.n_tiles} tiles…"
        show_progress = on_gui_thread(self._training_progressed)

        def progress(step: int, steps: int, _metrics: dict) -> None:  # runs on the worker thread
            if self.state.cancel_training.is_set():
                raise TrainingCancelled("training cancelled; no SAE was saved")
            show_progress(step, steps)

        def finished(metrics: dict) -> None:
            self._training_ended()
            self.train_progress.value = 1000
            self.sae_dir.value = output
            if self.state.session is not session:  # unloaded meanwhile (its slide layer was removed)
                self.status.value = f"the SAE is saved in {output}; {UNLOADED}"
                return
            self._loaded(session)
            self.status.value = training_summary(output, metrics)
            self.status.tooltip = f"the SAE is saved in {output}"

        def failed(exc: Exception) -> None:
            self._training_ended()
            self.say(str(exc))

        return run_in_background(session.train_sae, output, options, progress, on_done=finished, on_error=failed)

    def _training_progressed(self, step: int, steps: int) -> None:
        if self._training:
            self.train_progress.value = int(1000 * step / steps)

    def _training_ended(self) -> None:
        self._training = False
        self.train_button.enabled = True
        self._update_train_button()

    def cancel_training(self) -> None:
        """Stop training at its next step, or the whole-slide run it was waiting for."""
        if self._train_after_slide is not None:
            self.cancel_whole_slide()
            self.status.value = "training cancelled before it started; computed tiles are kept"
        self.state.cancel_training.set()


def _open_session(arguments: dict) -> ExplorerSession:
    if arguments["imported"]:  # another tool's features become the store first; no encoder is loaded then
        from ...engine.import_embeddings import import_embeddings

        options = arguments["options"]
        import_embeddings(
            arguments["imported"], arguments["slide_path"], arguments["store_path"],
            slide_mpp=options.slide_mpp, slide_backend=options.slide_backend,
        )  # fmt: skip
    session = ExplorerSession.load(
        arguments["slide_path"],
        arguments["store_path"],
        arguments["encoder_spec"],
        arguments["sae_dir"],
        arguments["options"],
        device=arguments["device"],
        dtype=arguments["dtype"],
        worker_process=True,  # a crash or a busy encoder never takes napari with it
        # offline, a preset still opens, with random weights: the panel's status line says so in capitals
        allow_random=True,
    )
    if arguments["spots"]:
        try:
            session.attach_sample(open_visium(arguments["spots"], mpp=arguments["spots_mpp"]))
        except BaseException:
            session.close()
            raise
    return session


def training_summary(output: Path, metrics: dict) -> str:
    """One line on what training produced and where it is."""
    nan = float("nan")
    return (
        f"trained {output.name} beside the store ({metrics.get('seconds', 0):.0f} s): {metrics.get('d_sae', 0)} "
        f"features, {metrics.get('dead_fraction', nan):.0%} never active, FVU {metrics.get('fvu', nan):.3f}"
    )


def describe(session: ExplorerSession) -> str:
    """Device, dtype, real or random weights, SAE width: what the user must know about the model."""
    encoder = session.encoder
    sae = f"SAE {session.sae_name}: {session.n_features} features" if session.n_features else "no SAE yet"
    computed = int(session.embedded.sum())
    if encoder is None:
        spec = session.store.provenance["encoder"]["spec"]
        return f"{spec}: imported features (no encoder runs here); {sae}; {computed}/{session.n_tiles} tiles"
    weights = "RANDOM weights (not a trained encoder)" if encoder.random_init else "pretrained weights"
    dtype = str(encoder.dtype).removeprefix("torch.")
    return (
        f"{encoder.spec} on {encoder.device} ({dtype}), {weights}; {sae}; {computed}/{session.n_tiles} tiles computed"
    )
