"""Dock panel: concepts, i.e. tiles clustered by SAE activation profile, as a Labels layer with a legend."""

import napari.viewer
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from ...analysis.features import CONCEPT_METHODS, concept_legend, concepts
from ...errors import PathsaeError
from ..background import run_in_background
from ..heatmap_layers import tile_labels_layer
from ..notify import report_error
from ..state import state_for


class ConceptsPanel(Container):
    """k-means or NMF over the computed tiles' activations."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.state = state_for(viewer)
        self.method = ComboBox(label="Method", choices=list(CONCEPT_METHODS), value="kmeans")
        self.n_concepts = SpinBox(label="Concepts", value=8, min=2, max=64)
        self.run_button = PushButton(text="Find concepts")
        self.status = Label(value="")
        self.legend = QTableWidget(0, 3)
        self.legend.setHorizontalHeaderLabels(["concept", "tiles", "strongest features"])
        self.legend.verticalHeader().setVisible(False)
        self.legend.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        super().__init__(widgets=[self.method, self.n_concepts, self.run_button, self.status])
        self.native.layout().addWidget(self.legend)
        self.layer = None
        self.run_button.changed.connect(self.run)

    def run(self):
        session = self.state.session
        if session is None or not session.n_features:
            report_error(PathsaeError("load a model with an SAE first (Model panel)"))
            return None
        self.run_button.enabled = False
        self.status.value = "clustering…"
        activations = session.activations.copy()
        return run_in_background(
            concepts, activations, self.n_concepts.value, self.method.value, on_done=self._show, on_error=self._failed
        )

    def _failed(self, exc: Exception) -> None:
        self.run_button.enabled = True
        self.status.value = str(exc)

    def _show(self, result) -> None:
        labels, profiles = result
        session = self.state.session
        self.run_button.enabled = True
        name = f"pathsae concepts ({self.method.value}, k={len(profiles)})"
        data, kwargs, _ = tile_labels_layer(session, labels, name, "concepts")
        if self.layer is not None and self.layer in self._viewer.layers:
            self._viewer.layers.remove(self.layer)
        self.layer = self._viewer.add_labels(data, **kwargs)
        legend = concept_legend(profiles, labels, session.labels)
        self.legend.setRowCount(len(legend))
        for row, record in enumerate(legend.itertuples(index=False)):
            swatch = QTableWidgetItem(str(record.concept))
            swatch.setBackground(QColor.fromRgbF(*map(float, self.layer.get_color(record.concept))))
            self.legend.setItem(row, 0, swatch)
            self.legend.setItem(row, 1, QTableWidgetItem(str(record.tiles)))
            self.legend.setItem(row, 2, QTableWidgetItem(record.top_features))
        self.legend.resizeColumnsToContents()
        self.status.value = f"{len(profiles)} concepts over {int((labels > 0).sum())} computed tiles"
