"""What one exploration holds: a slide's tile computer, its SAE, an optional Visium sample, feature labels.

The napari panels are views on this object; it imports neither napari nor Qt, so notebooks can
use it too::

    session = ExplorerSession.load("slide.svs", "slide.zarr", "vit_small_patch16_224", "my_sae/")
    session.compute(session.missing())          # or only the tiles in view
    session.feature_table().sort_values("frequency")
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.features import feature_table
from ..data.outputs import atomic_output
from ..data.tiles import read_tiles
from ..data.viewport import GridPlacement
from ..errors import PathsaeError
from ..io.visium import VisiumSample
from ..names import feature_index, feature_name, layer_block
from .embed import EmbedOptions
from .tile_computer import TileComputer, is_imported_store
from .worker_process import TileWorkerProcess, WorkerSpec

LABELS_FILE = "feature_labels.json"

log = logging.getLogger(__name__)

#: Fewer tiles than this make no SAE worth browsing (4 tiles gave 94% dead features and FVU 0.000).
MIN_TRAINING_TILES = 32


@dataclass
class ExplorerSession:
    computer: TileComputer
    sae_dir: Path | None = None
    sample: VisiumSample | None = None
    labels: dict[int, str] = field(default_factory=dict)
    correlations: pd.DataFrame | None = None  # feature x gene table over the sample's spots
    stability: pd.DataFrame | None = None  # per feature: best-matched activation r in another seed's SAE
    sae_sha256: str | None = None  # the SAE's weights, which its cached activations and explorations are tied to
    _spot_weights: object = None

    # --- set-up -------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        slide_path: str | Path,
        store_path: str | Path,
        encoder_spec: str = "vit_small_patch16_224",
        sae_dir: str | Path | None = None,
        options: EmbedOptions | None = None,
        device: str = "auto",
        allow_random: bool | None = None,
        architecture: str | None = None,
        dtype: str = "auto",
        worker_process: bool = False,
    ) -> ExplorerSession:
        """Load the encoder, open or create the slide's store, and attach the SAE when given. A store of imported
        features (`pathsae import`) is opened as it is: no encoder is loaded, ``encoder_spec`` is not used.

        ``worker_process``: the encoder runs in a separate process (the viewer's), this one only reads the store."""
        from ..models.encoders import load_encoder
        from ..models.sae.formats import read_cfg, sae_layer

        options = options or EmbedOptions()
        if sae_dir is not None:
            layer = sae_layer(read_cfg(sae_dir))
            if (block := layer_block(layer)) is not None:
                options = replace(options, layers=(block,))
        if is_imported_store(store_path):  # another tool's features: no encoder runs, the SAE reads them
            computer = TileComputer(slide_path, store_path, None, options)
        elif worker_process:
            spec = WorkerSpec(str(slide_path), str(store_path), encoder_spec, options, architecture, device, dtype,
                              allow_random)  # fmt: skip
            remote = TileWorkerProcess(spec)
            try:
                computer = TileComputer(slide_path, store_path, None, options, remote)
            except BaseException:
                remote.stop()
                raise
        else:
            encoder = load_encoder(encoder_spec, architecture, device=device, dtype=dtype, allow_random=allow_random)
            computer = TileComputer(slide_path, store_path, encoder, options)
        session = cls(computer)
        if sae_dir is not None:
            try:
                session.attach_sae(sae_dir)
            except BaseException:
                session.close()  # a worker process is not left behind
                raise
        return session

    def attach_sae(self, sae_dir: str | Path) -> None:
        """Use this SAE folder's SAE; its labels are loaded and its cached activations reused."""
        from ..models.sae.formats import load_sae, sae_provenance

        sae_dir = Path(sae_dir)
        sae, cfg = load_sae(sae_dir)
        provenance = sae_provenance(sae_dir, cfg)
        self.computer.set_sae(sae, sae_dir.name, provenance)
        self.sae_dir, self.sae_sha256 = sae_dir, provenance["weights_sha256"]
        self.labels = read_labels(sae_dir)
        self.stability = read_stability(sae_dir, provenance["weights_sha256"])
        self.correlations = None

    def train_sae(self, output: str | Path, options, progress=None) -> dict:
        """Train an SAE on this slide's embeddings (every tile computed), save it to ``output`` and use it."""
        from .encode import train_to_folder

        missing = int((~self.computer.embedded).sum())
        if self.computer.n_tiles < MIN_TRAINING_TILES:
            raise PathsaeError(
                f"{self.computer.n_tiles} tissue tiles are too few to train an SAE (need {MIN_TRAINING_TILES});"
                " use smaller tiles or a larger slide"
            )
        if missing:
            raise PathsaeError(f"{missing} tiles are not computed yet; compute the whole slide before training")
        metrics = train_to_folder([self.store.path], output, options, progress)
        self.attach_sae(output)
        self.compute(self.missing())  # every tile is embedded: this only applies the new SAE (milliseconds)
        return metrics

    def fresh_sae_folder(self, name: str) -> Path:
        """``<store stem>.<name>`` beside the store, numbered (-2, -3, …) so that no folder is overwritten."""
        base = self.store.path.parent / f"{self.store.path.stem}.{name}"
        candidate, n = base, 1
        while candidate.exists():
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        return candidate

    def attach_sample(self, sample: VisiumSample) -> None:
        from ..analysis.spots import check_same_section, spot_tile_weights

        check_same_section(self.store, sample)
        self.sample = sample
        self._spot_weights = spot_tile_weights(
            self.store, sample.spots_level0_xy, sample.spot_diameter_fullres, shape=sample.spot_shape
        )
        self.correlations = None

    # --- what the panels read (they talk to the session, never to its computer) ----------------
    @property
    def encoder(self):
        return self.computer.encoder

    @property
    def sae_name(self) -> str | None:
        return self.computer.sae_name

    @property
    def n_tiles(self) -> int:
        return self.computer.n_tiles

    @property
    def embedded(self) -> np.ndarray:
        """(N,) bool: tiles whose embeddings are computed."""
        return self.computer.embedded

    def activated(self) -> np.ndarray:
        """(N,) bool: tiles with the current SAE's activations."""
        return self.computer.activated()

    @property
    def batch_size(self) -> int:
        return self.computer.options.batch_size

    def patch_activations(self, indices: np.ndarray, feature: int) -> np.ndarray:
        return self.computer.patch_activations(indices, feature)

    def tile_pixels(self, indices: np.ndarray) -> np.ndarray:
        """(n, px, px, 3) uint8 pixels of the tiles ``indices`` (slow: call off the UI thread)."""
        return read_tiles(self.computer.slide, self.computer.grid, indices)

    # --- state --------------------------------------------------------------------------------
    @property
    def store(self):
        return self.computer.store

    @property
    def n_features(self) -> int:
        return 0 if self.computer.activations is None else self.computer.activations.shape[1]

    @property
    def activations(self) -> np.ndarray:
        if self.computer.activations is None:
            raise PathsaeError("no SAE loaded: choose an SAE folder or train one")
        return self.computer.activations

    @property
    def grid_index(self) -> np.ndarray:
        return self.computer.grid.grid_index

    @property
    def frame(self):
        """The world frame: the Visium sample's when one is loaded, else the slide's."""
        return self.sample.frame if self.sample is not None else self.computer.slide.frame

    @property
    def placement(self) -> GridPlacement:
        """The tile grid in the world frame."""
        frame = self.frame
        shape = tuple(int(v) + 1 for v in self.grid_index.max(axis=0))
        grid = self.computer.grid
        return GridPlacement(grid.step0, frame.world_per_fullres_px, shape, grid.origin0)

    @property
    def world_units(self) -> str:
        """napari units of the world frame: µm when the µm/px is known, else pixels."""
        return "micrometer" if self.frame.mpp else "pixel"

    def missing(self, indices: np.ndarray | None = None) -> np.ndarray:
        return self.computer.missing(np.arange(self.computer.n_tiles) if indices is None else indices)

    def compute(self, indices: np.ndarray) -> np.ndarray:
        values = self.computer.compute(indices)
        self.correlations = None
        return values

    # --- features -----------------------------------------------------------------------------
    def feature_values(self, feature: int) -> np.ndarray:
        """(N,) activation of one feature per tile, NaN where not computed."""
        if not 0 <= feature < self.n_features:
            raise PathsaeError(f"feature {feature} does not exist (the SAE has {self.n_features})")
        return self.activations[:, feature]

    def feature_table(self) -> pd.DataFrame:
        """Frequency, max, mean activation, the user's label, the top gene when spots are correlated (ranked
        by the spatial test: its Spearman r and q_spatial) and the cross-seed stability when the SAE folder
        has a stability.csv (``pathsae report --other-sae``)."""
        table = feature_table(self.activations)
        table["label"] = [self.labels.get(int(f), "") for f in table.feature]
        table["top_gene"] = ""
        table["top_gene_r"] = table["top_gene_q"] = np.nan
        if self.correlations is not None and len(self.correlations):
            best = self.correlations.sort_values("spearman_r_bound", ascending=False).drop_duplicates("feature")
            best.index = best.feature.map(feature_index)
            found = best.reindex(table.feature.astype(int))
            table["top_gene"] = found.gene.fillna("").to_numpy()
            table["top_gene_r"] = found.spearman_r.to_numpy()
            table["top_gene_q"] = found.q_spatial.to_numpy()
        table["stability_r"] = np.nan
        if self.stability is not None:
            table["stability_r"] = self.stability.reindex(table.feature.astype(int)).stability_r.to_numpy()
        return table

    def set_label(self, feature: int, label: str) -> None:
        """Name a feature; saved at once beside the SAE (feature_labels.json)."""
        if self.sae_dir is None:
            raise PathsaeError("no SAE loaded to label")
        label = label.strip()
        if label:
            self.labels[int(feature)] = label
        else:
            self.labels.pop(int(feature), None)
        try:  # replaced whole: a crash mid-write keeps the previous labels
            with atomic_output(self.sae_dir / LABELS_FILE, overwrite=True) as temp:
                temp.write_text(json.dumps({str(k): v for k, v in sorted(self.labels.items())}, indent=1))
        except (OSError, PathsaeError) as exc:
            cause = exc.strerror if isinstance(exc, OSError) else exc
            raise PathsaeError(f"cannot save the feature labels in {self.sae_dir} ({cause})") from None

    def feature_name(self, feature: int) -> str:
        label = self.labels.get(int(feature))
        return f"{feature_name(feature)} {label}" if label else feature_name(feature)

    # --- spots --------------------------------------------------------------------------------
    def spot_values(self, values: np.ndarray) -> np.ndarray:
        """Tile values (N,) or (N, K) averaged over each spot's disk (overlap-weighted; NaN: no computed tile)."""
        from ..analysis.spots import spot_means

        if self.sample is None:
            raise PathsaeError("no Visium sample loaded")
        return spot_means(self._spot_weights, values)

    def tiles_under_spots(self, spots: np.ndarray) -> np.ndarray:
        """Indices of the tiles any of these spots' disks overlaps."""
        return np.unique(self._spot_weights[spots].indices)

    def correlate(self, genes: list[str] | None = None, top_genes: int | None = 2000) -> pd.DataFrame:
        """Every feature against the ``top_genes`` most variable genes (or ``genes``) over the spots; kept."""
        self.correlations = self._correlation_table(genes, None if genes else top_genes)
        return self.correlations

    def _correlation_table(self, genes: list[str] | None, top_genes: int | None) -> pd.DataFrame:
        from ..analysis.spots import correlate_activations

        if self.sample is None:
            raise PathsaeError("no Visium sample loaded")
        return correlate_activations(
            self.store, self.sample, self.activations, genes, top_genes, everything=True, weights=self._spot_weights
        )

    def concept_importance(self, weights: np.ndarray, genes: list[str]) -> pd.DataFrame:
        """Each concept's importance for ``genes`` over the spots (``weights``: (N, k) tile concept weights)."""
        from ..analysis.concept_study import spot_importance

        if self.sample is None:
            raise PathsaeError("concept importance needs the Visium spots (load the model with a spots layer)")
        return spot_importance(self.store, self.sample, weights, genes)

    def predict_gene(self, gene: str, model: str = "ridge"):
        """``gene`` predicted from the computed tiles' features, held out spatially (a GenePrediction)."""
        from ..analysis.gene_prediction import predict_genes

        if self.sample is None:
            raise PathsaeError("attach a Visium sample to predict genes")
        return predict_genes(self.store, self.sample, [gene], model=model, sae=self.computer.sae_name)

    def genes_for_feature(self, feature: int, top: int = 15) -> pd.DataFrame:
        return self._ranked("feature", feature_name(feature), top)

    def features_for_gene(self, gene: str, top: int = 15) -> pd.DataFrame:
        """Features ranked by the spatial test with ``gene``; a gene outside the correlated set is correlated now."""
        if self.correlations is not None and gene not in set(self.correlations.gene):
            self.correlations = pd.concat([self.correlations, self._correlation_table([gene], None)], ignore_index=True)
        return self._ranked("gene", gene, top)

    def _ranked(self, column: str, key: str, top: int) -> pd.DataFrame:
        if self.correlations is None:
            raise PathsaeError("correlate features with genes first")
        rows = self.correlations[self.correlations[column] == key]
        if rows.empty and column == "gene":
            raise PathsaeError(f"gene {key!r} was not correlated (not detected in enough spots?)")
        return rows.sort_values("spearman_r_bound", ascending=False).head(top).reset_index(drop=True)

    def restart_worker(self) -> None:
        """Start a new worker process after the last one stopped (the viewer's sessions only)."""
        if self.computer.remote is None:
            raise PathsaeError("this session computes in its own process: there is no worker to restart")
        self.computer.restart_remote()

    def close(self) -> None:
        self.computer.close()


def read_stability(sae_dir: Path, weights_sha256: str) -> pd.DataFrame | None:
    """Per-feature cross-seed stability written by ``pathsae report --other-sae`` (indexed by feature number);
    None when absent or written for other weights (the SAE was replaced since)."""
    from ..analysis.sae_report import STABILITY_FILE

    path = sae_dir / STABILITY_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
        table.index = table.feature.map(feature_index)
        if set(table.get("sae_weights_sha256", [])) != {weights_sha256}:
            log.warning("%s was written for other weights of this SAE: not shown (run pathsae report again)", path)
            return None
        return table[["stability_r", "stable"]]
    except (ValueError, KeyError, AttributeError, pd.errors.ParserError):
        raise PathsaeError(f"{path}: damaged stability table (run pathsae report again, or delete it)") from None


def read_labels(sae_dir: Path) -> dict[int, str]:
    path = sae_dir / LABELS_FILE
    if not path.is_file():
        return {}
    try:
        return {int(k): str(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, json.JSONDecodeError, AttributeError):
        raise PathsaeError(f"{path}: damaged feature labels (fix or delete the file)") from None
