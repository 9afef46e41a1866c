"""Dock panel: colour Visium spots by a gene or a feature; gene → ranked features, feature → ranked genes."""

import napari.viewer
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...errors import PathsaeError
from ...names import feature_index
from ..background import run_in_background
from ..layers import gene_vector
from ..notify import report_error
from ..state import state_for
from .panel import Panel


class SpotsPanel(Panel, QWidget):
    """Needs a model loaded with a Visium spots layer (Model panel)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.state = state_for(viewer)
        self.gene = QLineEdit(placeholderText="gene symbol, e.g. ERBB2")
        self.gene.setToolTip("a gene of the sample (Enter: colour the spots by it and rank the features)")
        self.colour_gene_button = QPushButton("Colour spots by gene")
        self.colour_gene_button.setToolTip("spots coloured by the gene's counts")
        self.colour_feature_button = QPushButton("Colour spots by current feature")
        self.colour_feature_button.setToolTip("spots coloured by the feature's mean activation over each spot")
        self.correlate_button = QPushButton("Correlate features with genes")
        self.correlate_button.setToolTip("Pearson and Spearman r of every feature with the 2,000 most variable genes")
        self.predict_button = QPushButton("Predict gene from features (held-out)")
        self.predict_button.setToolTip(
            "ridge regression of the gene on the features over 5 spatially blocked folds; spots show the prediction"
        )
        self.status = QLabel("")
        self.status.setWordWrap(True)
        headers = ["feature/gene", "spearman r", "q spatial", "effective spots", "pearson r"]
        self.ranked = QTableWidget(0, len(headers))
        self.ranked.setHorizontalHeaderLabels(headers)
        tips = [
            "ranked by the spatial test: Spearman r's 95% bound over the effective spots (click a row to follow it)",
            "Spearman rank correlation over the spots (feature: spot-mean activation; gene: log1p counts per 10k)",
            "Benjamini-Hochberg q of the spatial test: neighbouring spots are not independent, so the evidence is "
            "that of the effective spots",
            "effective number of independent spots, from both variables' spatial autocorrelation (Dutilleul)",
            "Pearson r over the spots (naive: sensitive to a few extreme spots)",
        ]
        for column, tip in enumerate(tips):
            self.ranked.horizontalHeaderItem(column).setToolTip(tip)
        self.ranked.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.ranked.verticalHeader().setVisible(False)
        self.figure = Figure(figsize=(4, 3), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(170)
        row = QHBoxLayout()
        row.addWidget(self.colour_gene_button)
        row.addWidget(self.colour_feature_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.gene)
        layout.addLayout(row)
        layout.addWidget(self.correlate_button)
        layout.addWidget(self.predict_button)
        layout.addWidget(self.status)
        self.ranked_caption = QLabel("Ranked by Pearson r over spots (click a row to follow it)")
        self.ranked_caption.setWordWrap(True)
        layout.addWidget(self.ranked_caption)
        layout.addWidget(self.ranked)
        layout.addWidget(self.canvas)
        self.colour_gene_button.clicked.connect(lambda: self._guarded(self.colour_by_gene, self.gene.text().strip()))
        self.colour_feature_button.clicked.connect(lambda: self._guarded(self.colour_by_feature))
        self.gene.returnPressed.connect(lambda: self._guarded(self.show_gene, self.gene.text().strip()))
        self.correlate_button.clicked.connect(self.correlate)
        self.predict_button.clicked.connect(self.predict)
        self.ranked.cellClicked.connect(self._row_clicked)
        self.state.session_changed.connect(self._session_changed)
        self.state.current_changed.connect(self._current_changed)
        self.state.correlations_changed.connect(self._correlated)
        self._showing = ""  # "gene" or "feature"
        self._session_changed()

    # --- helpers ------------------------------------------------------------------------------
    def _guarded(self, action, *args):
        try:
            return action(*args)
        except PathsaeError as exc:
            self.fail(exc)
            return None

    def _session(self):
        session = self.state.session
        if session is None or session.sample is None:
            raise PathsaeError("load a model with a Visium spots layer first (Model panel)")
        return session

    def spots_layer(self):
        self._session()
        layer = self.state.painter.spots_layer()
        if layer is None:
            raise PathsaeError("the spots layer was removed; open the Visium sample again")
        return layer

    def _current_changed(self, feature: int | None) -> None:
        if self.state.session is None or self.state.session.sample is None:
            return
        if feature is None:
            self._clear_plot("select a feature in the feature browser")
            return
        self._guarded(self.show_feature, feature)

    def _clear_plot(self, message: str) -> None:
        self.figure.clear()
        axes = self.figure.add_subplot(1, 1, 1)
        axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=9)
        axes.set_axis_off()
        self.canvas.draw_idle()

    def _session_changed(self) -> None:
        session = self.state.session
        self.ranked.setRowCount(0)
        self._clear_plot("")
        if session is not None and session.sample is not None:
            completer = QCompleter(list(map(str, session.sample.adata.var_names)))
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            self.gene.setCompleter(completer)

    # --- colouring ----------------------------------------------------------------------------
    def _colour(self, column: str, values: np.ndarray, what: str) -> None:
        self.state.painter.colour_spots(self.spots_layer(), column, values, what)

    def colour_by_gene(self, gene: str) -> None:
        session = self._session()
        self._colour(gene, gene_vector(session.sample, gene), f"{gene} (counts per spot)")
        self.status.setText(f"spots coloured by {gene} counts")

    def colour_by_feature(self, feature: int | None = None) -> None:
        session = self._session()
        if feature is None:
            if self.state.current is None:
                raise PathsaeError("select a feature in the feature browser")
            feature = self.state.current
        values = session.spot_values(session.feature_values(feature))
        name = session.feature_name(feature)
        self._colour(name, np.nan_to_num(values, nan=0.0), f"{name} (spot mean activation)")
        covered = np.isfinite(values).sum()
        self.status.setText(f"spots coloured by {session.feature_name(feature)} ({covered} spots with computed tiles)")

    # --- correlation --------------------------------------------------------------------------
    def correlate(self):
        try:
            session = self._session()
        except PathsaeError as exc:
            report_error(exc)
            return None
        self.status.setText("correlating every feature with every detected gene…")
        self.correlate_button.setEnabled(False)
        return run_in_background(
            session.correlate, on_done=lambda _: self.state.correlations_changed.emit(), on_error=self._failed
        )

    def _failed(self, exc: Exception) -> None:
        self.correlate_button.setEnabled(True)
        self.predict_button.setEnabled(True)
        self.say(str(exc))

    # --- prediction ---------------------------------------------------------------------------
    def predict(self):
        """Predict the typed gene from the computed tiles' features (5 spatially blocked folds), colour the
        spots by the held-out prediction and select the features that carry it."""
        gene = self.gene.text().strip()
        try:
            session = self._session()
            if not gene:
                raise PathsaeError("type the gene to predict")
        except PathsaeError as exc:
            self.fail(exc)
            return None
        self.status.setText(f"predicting {gene} over 5 spatially held-out folds…")
        self.predict_button.setEnabled(False)
        return run_in_background(session.predict_gene, gene, on_done=self._predicted, on_error=self._failed)

    def _predicted(self, result) -> None:
        self.predict_button.setEnabled(True)
        session = self._session()
        row = result.table.iloc[0]
        gene = str(row["gene"])
        values = np.full(session.sample.adata.n_obs, np.nan)
        values[session.sample.adata.obs_names.get_indexer(result.spots["barcode"])] = result.spots[f"predicted_{gene}"]
        self._colour(
            f"predicted {gene}",
            np.where(np.isfinite(values), values, np.nanmin(values)),
            f"{gene} predicted, held out (log1p CP10k)",
        )
        top = result.features["feature"].head(3).str.removeprefix(result.feature_prefix).astype(int).tolist()
        names = ", ".join(session.feature_name(f) for f in top)
        self.status.setText(
            f"{gene}: held-out r = {row['r']:.2f} over {int(row['n_spots'])} spots; carried most by {names} (selected)"
        )
        if result.feature_prefix == "f":
            self.state.select(top)

    def _correlated(self) -> None:
        self.correlate_button.setEnabled(True)
        table = self.state.session.correlations
        if table is not None:
            spots = int(table.n_spots.iloc[0])
            self.status.setText(f"{table.feature.nunique()} features x {table.gene.nunique()} genes over {spots} spots")
            if self.state.current is not None:
                self._guarded(self.show_feature, self.state.current)

    def show_gene(self, gene: str) -> None:
        """Features ranked by their correlation with ``gene``; spots coloured by it."""
        session = self._session()
        self.colour_by_gene(gene)
        if session.correlations is None:
            return
        self._fill(session.features_for_gene(gene), "feature", session)
        self._showing = "gene"
        self.ranked_caption.setText(
            f"Features ranked by the spatial test with {gene} over spots (click one to paint it)"
        )

    def show_feature(self, feature: int) -> None:
        """Genes ranked by their correlation with ``feature``; scatter against the best one."""
        session = self._session()
        if session.correlations is None:
            gene = self.gene.text().strip()
            if gene in set(map(str, session.sample.adata.var_names)):
                self.scatter(feature, gene)  # the typed gene against the new feature
            else:
                self._clear_plot(f"{session.feature_name(feature)}: type a gene, or press Correlate")
            return
        ranked = session.genes_for_feature(feature)
        self._fill(ranked, "gene", session)
        self._showing = "feature"
        name = session.feature_name(feature)
        self.ranked_caption.setText(f"Genes ranked by the spatial test with {name} (click one to plot it)")
        if len(ranked):
            self.scatter(feature, str(ranked.gene.iloc[0]))

    def _fill(self, ranked, key: str, session) -> None:
        self.ranked.setRowCount(len(ranked))
        self.ranked.horizontalHeaderItem(0).setText(key)
        for row, record in enumerate(ranked.itertuples(index=False)):
            name = getattr(record, key)
            if key == "feature":
                name = session.feature_name(feature_index(name))
            cells = [
                name,
                f"{record.spearman_r:.3f}",
                f"{record.q_spatial:.2g}",
                f"{record.n_eff:.0f}",
                f"{record.r:.3f}",
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, getattr(record, key))
                self.ranked.setItem(row, column, item)
        self.ranked.resizeColumnsToContents()

    def _row_clicked(self, row: int, _column: int) -> None:
        key = self.ranked.item(row, 0).data(Qt.ItemDataRole.UserRole)
        if self._showing == "gene":  # a feature: select it (paints its heatmap)
            self.state.select([feature_index(key)])
        else:  # a gene: colour by it and plot it against the feature
            self.gene.setText(key)
            self._guarded(self.colour_by_gene, key)
            if self.state.current is not None:
                self._guarded(self.scatter, self.state.current, key)

    def scatter(self, feature: int, gene: str) -> None:
        """Feature (spot-aggregated) against gene (log1p normalised) over spots."""
        from ...analysis.spots import normalised_expression

        session = self._session()
        x = session.spot_values(session.feature_values(feature))
        y = normalised_expression(session.sample, [gene])[gene].to_numpy()
        keep = np.isfinite(x) & np.isfinite(y)
        self.figure.clear()
        axes = self.figure.add_subplot(1, 1, 1)
        axes.scatter(x[keep], y[keep], s=6, alpha=0.6)
        r = np.corrcoef(x[keep], y[keep])[0, 1] if keep.sum() > 2 else np.nan
        axes.set_xlabel(f"{session.feature_name(feature)} (spot mean)", fontsize=9)
        axes.set_ylabel(f"{gene} log1p CP10k", fontsize=9)
        axes.set_title(f"r = {r:.3f} over {keep.sum()} spots", fontsize=9)
        self.canvas.draw_idle()
