"""Dock panel for the selected feature: its top tiles (click one to go there), histogram, correlated genes."""

import napari.viewer
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ...analysis.features import top_tiles
from ...data.viewport import tiles_in_view
from ...errors import PathsaeError
from ...names import LayerKind, layer_kind
from ..background import run_in_background
from ..heatmap_layers import patch_heatmap_layer
from ..notify import report_error
from ..state import state_for
from ..tile_focus import go_to_tile
from ..viewport_worker import visible_world_box
from .panel import Panel

GALLERY_TILES = 12
THUMBNAIL_PX = 96
#: While tiles arrive, the dashboard is redrawn at most this often.
REDRAW_MS = 2000


def pixmap_of(tile: np.ndarray) -> QPixmap:
    tile = np.ascontiguousarray(tile[..., :3])
    image = QImage(tile.data, tile.shape[1], tile.shape[0], 3 * tile.shape[1], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class FeatureDashboard(Panel, QWidget):
    """Follows the current feature: the one last clicked in the feature browser (or selected elsewhere)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = state_for(viewer)
        self.title = QLabel("select a feature in the feature browser")
        self.title.setWordWrap(True)
        self.gallery = QListWidget()
        self.gallery.setToolTip("tiles where the feature is strongest, with their activation; click one to go there")
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMinimumHeight(THUMBNAIL_PX + 40)
        self.figure = Figure(figsize=(4, 4.5), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(170)
        self.canvas.setToolTip("top: how often each activation occurs; bottom: genes correlated with the feature")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(QLabel("Top-activating tiles (click to go there)"))
        layout.addWidget(self.gallery)
        layout.addWidget(self.canvas)
        self.patch_button = QPushButton("Paint at patch-token resolution (tiles in view)")
        self.patch_button.setToolTip("the feature on each ViT patch token (needs a store made with patch tokens)")
        layout.addWidget(self.patch_button)
        self.patch_button.clicked.connect(self.paint_patches)
        self.feature: int | None = None
        self.tiles: np.ndarray = np.empty(0, int)
        self.gallery.itemClicked.connect(self._go_to_item)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self.state.current_changed.connect(self.show_feature)
        self.state.session_changed.connect(lambda: self.show_feature(None))
        self.state.correlations_changed.connect(self.redraw)
        self.state.labels_changed.connect(self.redraw)
        self.state.tiles_computed.connect(lambda _: self._redraw_timer.isActive() or self._redraw_timer.start())
        self.show_feature(self.state.current)

    def redraw(self) -> None:
        self.show_feature(self.state.current)

    def show_features(self, features: list[int]) -> None:
        """The first of ``features`` (scripts; the panel itself follows the current feature)."""
        self.show_feature(features[0] if features else None)

    def show_feature(self, feature: int | None) -> None:
        session = self.state.session
        if session is None or not session.n_features or feature is None:
            self.feature, self.tiles = None, np.empty(0, int)
            self.gallery.clear()
            self.figure.clear()
            self.canvas.draw_idle()
            self.title.setText("select a feature in the feature browser" if session is not None and session.n_features
                               else "load a model with an SAE (Model panel)")  # fmt: skip
            return
        self.feature = feature
        values = session.feature_values(feature)
        self.tiles = top_tiles(values, GALLERY_TILES)
        computed = values[np.isfinite(values)]
        active = f"active in {np.mean(computed > 0):.1%} of {len(computed)} computed tiles" if len(computed) else (
            "no tile computed yet")  # fmt: skip
        self.title.setText(f"<b>{session.feature_name(feature)}</b>: {active}")
        self.gallery.clear()
        if len(self.tiles):
            run_in_background(session.tile_pixels, self.tiles, on_done=self._fill_gallery)
        self._plot(values)

    def _fill_gallery(self, pixels: np.ndarray) -> None:
        if self.feature is None or len(pixels) != len(self.tiles):
            return  # the feature changed while the tiles were read
        values = self.state.session.feature_values(self.feature)
        self.gallery.clear()
        for index, tile in zip(self.tiles, pixels, strict=True):
            item = QListWidgetItem(QIcon(pixmap_of(tile)), f"{values[index]:.2f}")
            item.setData(Qt.ItemDataRole.UserRole, int(index))
            self.gallery.addItem(item)

    def _plot(self, values: np.ndarray) -> None:
        session = self.state.session
        self.figure.clear()
        hist = self.figure.add_subplot(2, 1, 1)
        finite = values[np.isfinite(values)]
        if (finite > 0).any():
            hist.hist(finite[finite > 0], bins=40, color="tab:orange")
            hist.set_yscale("log")
            hist.set_xlabel("SAE activation", fontsize=8)
            hist.set_ylabel("tiles", fontsize=8)
            hist.set_title(
                f"activation over {len(finite)} tiles ({int((finite <= 0).sum())} at 0 not shown)", fontsize=9
            )
        else:
            hist.text(0.5, 0.5, "never active on the computed tiles", ha="center", va="center", fontsize=9)
            hist.set_axis_off()
        genes = self.figure.add_subplot(2, 1, 2)
        if session.correlations is not None:
            ranked = session.genes_for_feature(self.feature, 10)
            genes.barh(ranked.gene[::-1], ranked.r[::-1], color="tab:blue")
            genes.set_xlabel("Pearson r over spots", fontsize=9)
            genes.tick_params(labelsize=8)
        else:
            if session.sample is not None:
                hint = "genes: press 'Correlate features with genes'\nin the Spots panel"
            elif any(layer_kind(layer) == LayerKind.SPOTS for layer in self.viewer.layers):
                hint = "genes: load the model with the Visium spots\nlayer (Model panel), then Correlate"
            else:
                hint = "genes: no Visium spots are open for this slide"
            genes.text(0.5, 0.5, hint, ha="center", va="center", fontsize=9)
            genes.set_axis_off()
        self.canvas.draw_idle()

    def paint_patches(self):
        """The selected feature on each patch token of the computed tiles in view (ViT encoders)."""
        session = self.state.session
        try:
            if session is None or self.feature is None:
                raise PathsaeError("select a feature first")
            in_view = tiles_in_view(session.grid_index, session.placement, visible_world_box(self.viewer))
            in_view = in_view[session.embedded[in_view]]
            data, kwargs, _ = patch_heatmap_layer(session, self.feature, in_view)
        except PathsaeError as exc:
            report_error(exc)
            return None
        name = kwargs["name"]
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        return self.viewer.add_image(data, **kwargs)

    def _go_to_item(self, item: QListWidgetItem) -> None:
        self.go_to_tile(int(item.data(Qt.ItemDataRole.UserRole)))

    def go_to_tile(self, index: int) -> None:
        """Centre the camera on a tile, zoom to show a few tiles around it, and outline it."""
        go_to_tile(self.viewer, self.state.session, index)
