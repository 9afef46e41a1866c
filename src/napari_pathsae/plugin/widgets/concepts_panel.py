"""Dock panel: concepts, i.e. tiles clustered by SAE activation profile, as a Labels layer with a legend,
and (with Visium spots) each concept's importance for a gene."""

import napari.viewer
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, SpinBox
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from ...analysis.concept_study import spot_importance
from ...analysis.features import CONCEPT_METHODS, concept_legend, concept_weights
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
        self.gene = LineEdit(label="Gene")
        self.importance_button = PushButton(text="Concept importance for gene (held-out)")
        self.legend = QTableWidget(0, 4)
        self.legend.setHorizontalHeaderLabels(["concept", "tiles", "strongest features", "coefficient"])
        self.legend.verticalHeader().setVisible(False)
        self.legend.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        widgets = [self.method, self.n_concepts, self.run_button, self.gene, self.importance_button, self.status]
        super().__init__(widgets=widgets)
        self.native.layout().addWidget(self.legend)
        self.layer = None
        self.weights = None  # (tiles, k) of the concepts shown
        self.run_button.changed.connect(self.run)
        self.importance_button.changed.connect(self.importance)

    def run(self):
        session = self.state.session
        if session is None or not session.n_features:
            report_error(PathsaeError("load a model with an SAE first (Model panel)"))
            return None
        self.run_button.enabled = False
        self.status.value = "clustering…"
        activations = session.activations.copy()
        return run_in_background(
            concept_weights, activations, self.n_concepts.value, self.method.value, on_done=self._show,
            on_error=self._failed,
        )  # fmt: skip

    def _failed(self, exc: Exception) -> None:
        self.run_button.enabled = True
        self.importance_button.enabled = True
        self.status.value = str(exc)

    def importance(self):
        """Ridge of the gene on the spots' concept shares over spatially blocked folds (`pathsae concepts
        --visium`): each concept's coefficient in the legend, the model's held-out r in the status line."""
        session, gene = self.state.session, self.gene.value.strip()
        try:
            if self.weights is None or session is None:
                raise PathsaeError("find concepts first")
            if session.sample is None:
                raise PathsaeError("concept importance needs the Visium spots (load the model with a spots layer)")
            if not gene:
                raise PathsaeError("type a gene")
        except PathsaeError as exc:
            self.status.value = str(exc)
            report_error(exc)
            return None
        self.importance_button.enabled = False
        self.status.value = f"regressing {gene} on the concepts…"
        return run_in_background(
            spot_importance, session.store, session.sample, self.weights, [gene], on_done=self._show_importance,
            on_error=self._failed,
        )  # fmt: skip

    def _show_importance(self, table) -> None:
        self.importance_button.enabled = True
        gene = str(table["target"].iloc[0])
        self.legend.setHorizontalHeaderItem(3, QTableWidgetItem(f"{gene} coefficient"))
        for row, record in enumerate(table.itertuples(index=False)):
            self.legend.setItem(row, 3, QTableWidgetItem(f"{record.coefficient:+.3f}"))
        self.legend.resizeColumnsToContents()
        top = table.loc[table["coefficient"].idxmax()]
        self.status.value = (
            f"{gene}: concepts predict it at held-out r = {top['model_r']:.2f}; "
            f"strongest concept {int(top['concept'])} (own r {top['concept_r']:+.2f})"
        )

    def _show(self, result) -> None:
        labels, profiles, self.weights = result
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
