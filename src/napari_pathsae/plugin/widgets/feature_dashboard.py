"""Dock panel for the selected feature: its top tiles (click one to go there), histogram, correlated genes."""

import napari.viewer
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ...analysis.features import top_tiles
from ...errors import PathsaeError
from ...tiles import read_tiles
from ...viewport import tiles_in_view
from ..background import run_in_background
from ..heatmap_layers import patch_heatmap_layer
from ..notify import report_error
from ..state import state_for
from ..viewport_worker import camera_of, visible_world_box

GALLERY_TILES = 12
THUMBNAIL_PX = 96


def pixmap_of(tile: np.ndarray) -> QPixmap:
    tile = np.ascontiguousarray(tile[..., :3])
    image = QImage(tile.data, tile.shape[1], tile.shape[0], 3 * tile.shape[1], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class FeatureDashboard(QWidget):
    """Follows the first selected feature of the feature browser."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = state_for(viewer)
        self.title = QLabel("select a feature in the feature browser")
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMinimumHeight(2 * THUMBNAIL_PX + 40)
        self.figure = Figure(figsize=(4, 4.5), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(320)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(QLabel("Top-activating tiles (click to go there)"))
        layout.addWidget(self.gallery)
        layout.addWidget(self.canvas)
        self.patch_button = QPushButton("Paint at patch-token resolution (tiles in view)")
        layout.addWidget(self.patch_button)
        self.patch_button.clicked.connect(self.paint_patches)
        self.feature: int | None = None
        self.tiles: np.ndarray = np.empty(0, int)
        self.gallery.itemClicked.connect(self._go_to_item)
        self.state.selection_changed.connect(self.show_features)
        self.state.correlations_changed.connect(lambda: self.show_features(self.state.selected))
        self.state.labels_changed.connect(lambda: self.show_features(self.state.selected))

    def show_features(self, features: list[int]) -> None:
        session = self.state.session
        if session is None or not features:
            return
        self.feature = feature = features[0]
        values = session.feature_values(feature)
        self.tiles = top_tiles(values, GALLERY_TILES)
        active = np.mean(values[np.isfinite(values)] > 0)
        self.title.setText(f"<b>{session.feature_name(feature)}</b>: active in {active:.1%} of computed tiles")
        self.gallery.clear()
        if len(self.tiles):
            computer = session.computer
            run_in_background(read_tiles, computer.slide, computer.grid, self.tiles, on_done=self._fill_gallery)
        self._plot(values)

    def _fill_gallery(self, pixels: np.ndarray) -> None:
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
        hist.hist(finite[finite > 0], bins=40, color="tab:orange")
        hist.set_yscale("log")
        hist.set_title(f"activation over {len(finite)} tiles ({int((finite <= 0).sum())} at 0 not shown)", fontsize=9)
        genes = self.figure.add_subplot(2, 1, 2)
        if session.correlations is not None:
            ranked = session.genes_for_feature(self.feature, 10)
            genes.barh(ranked.gene[::-1], ranked.r[::-1], color="tab:blue")
            genes.set_xlabel("Pearson r over spots", fontsize=9)
            genes.tick_params(labelsize=8)
        else:
            genes.text(
                0.5,
                0.5,
                "genes: load Visium spots and press\n'Correlate' in the Spots panel",
                ha="center",
                va="center",
                fontsize=9,
            )
            genes.set_axis_off()
        self.canvas.draw_idle()

    def paint_patches(self):
        """The selected feature on each patch token of the computed tiles in view (ViT encoders)."""
        session = self.state.session
        try:
            if session is None or self.feature is None:
                raise PathsaeError("select a feature first")
            in_view = tiles_in_view(session.grid_index, session.placement, visible_world_box(self.viewer))
            in_view = in_view[session.computer.embedded[in_view]]
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
        """Centre the camera on a tile and zoom to show a few tiles around it."""
        placement = self.state.session.placement
        box = placement.tile_box_world(self.state.session.grid_index[[index]])[0]
        camera = camera_of(self.viewer)
        camera.center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        camera.zoom = canvas_width(self.viewer) / (5 * (box[2] - box[0]))


def canvas_width(viewer) -> float:
    """Width of the world box the canvas shows, in screen px (camera zoom is screen px per world unit)."""
    box = visible_world_box(viewer)
    return float(abs(box[1, 1] - box[0, 1]) * camera_of(viewer).zoom)
