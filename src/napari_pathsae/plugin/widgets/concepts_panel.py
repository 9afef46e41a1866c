"""Dock panel: concepts, i.e. tiles clustered by SAE activation profile, as a Labels layer with a legend,
and (with Visium spots) each concept's importance for a gene."""

import napari.viewer
from magicgui.widgets import ComboBox, Container, LineEdit, PushButton, SpinBox
from qtpy.QtWidgets import QTableWidgetItem

from ...analysis.features import CONCEPT_METHODS, concept_legend, concept_weights
from ...data.exploration import Concepts
from ...errors import PathsaeError
from ...names import LayerKind
from ..background import run_in_background
from ..state import state_for
from .label_legend import fill_legend, legend_table
from .panel import Panel, status_label


class ConceptsPanel(Panel, Container):
    """k-means or NMF over the computed tiles' activations."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.state = state_for(viewer)
        self.method = ComboBox(
            label="Method", choices=list(CONCEPT_METHODS), value="kmeans",
            tooltip="kmeans: each tile in one concept; nmf: tiles as mixtures of concepts",
        )  # fmt: skip
        self.n_concepts = SpinBox(label="Concepts", value=8, min=2, max=64, tooltip="how many concepts to find")
        self.run_button = PushButton(text="Find concepts", tooltip="cluster the computed tiles' activations")
        self.status = status_label("what the panel did last")
        self.gene = LineEdit(label="Gene", tooltip="a gene of the Visium sample")
        self.importance_button = PushButton(
            text="Concept importance for gene (held-out)",
            tooltip="ridge of the gene on the spots' concept shares over spatially blocked folds",
        )
        self.legend = legend_table(
            ["concept", "tiles", "strongest features", "coefficient"],
            [
                "the concept's colour in the map (hover a tile to read its concept)",
                "tiles in the concept",
                "features with the largest mean activation in the concept",
                "standardised ridge coefficient of the concept for the gene",
            ],
        )
        widgets = [self.method, self.n_concepts, self.run_button, self.gene, self.importance_button, self.status]
        super().__init__(widgets=widgets)
        self.native.layout().addWidget(self.legend)
        self.layer = None
        self.weights = None  # (tiles, k) of the concepts shown
        self.run_button.changed.connect(self.run)
        self.state.concepts_changed.connect(self._concepts_changed)
        self.state.session_changed.connect(self._concepts_changed)
        self._concepts_changed()
        self.importance_button.changed.connect(self.importance)

    def run(self):
        session = self.state.session
        if session is None or not session.n_features:
            self.fail(PathsaeError("load a model with an SAE first (Model panel)"))
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
        self.say(str(exc))

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
            self.fail(exc)
            return None
        self.importance_button.enabled = False
        self.status.value = f"regressing {gene} on the concepts…"
        return run_in_background(
            session.concept_importance, self.weights, [gene], on_done=self._show_importance,
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
        labels, profiles, weights = result
        self.run_button.enabled = True
        self.state.set_concepts(Concepts(self.method.value, labels, profiles, weights))

    def _concepts_changed(self) -> None:
        """Fill the legend from the state's concepts (found here, or restored with the exploration)."""
        concepts, session = self.state.concepts, self.state.session
        self.weights = None if concepts is None else concepts.weights
        layers = self.state.painter.layers_of(LayerKind.CONCEPTS) if session is not None else []
        self.layer = layers[0] if layers else None
        if concepts is None or self.layer is None:
            self.legend.setRowCount(0)
            self.status.value = ""  # what it said was about concepts now gone (an unloaded model, another SAE)
            return
        legend = concept_legend(concepts.profiles, concepts.labels, session.labels)
        records = legend.itertuples(index=False)
        rows = [(int(r.concept), [str(r.concept), str(r.tiles), r.top_features]) for r in records]
        fill_legend(self.legend, self.layer, rows)
        computed = int((concepts.labels > 0).sum())
        self.status.value = f"{len(concepts.profiles)} concepts ({concepts.method}) over {computed} computed tiles"
