"""Dock panel: draw a rectangle or polygon, export its tiles' activations (and its Visium spots) to a table."""

from pathlib import Path

import napari.viewer
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton

from ...errors import PathsaeError
from ...report.export import FORMATS, TILE_FORMATS, export_spots, export_tiles, region_mask
from ..background import run_in_background
from ..exploration_io import add_region_layer
from ..state import state_for
from .fields import chosen_path, compact
from .panel import Panel, status_label


def shapes_to_polygon(shapes_data: list[np.ndarray], world_per_px: float):
    """Union of a Shapes layer's 2D shapes (world (row, col) vertices) as a level-0 (x, y) shapely polygon.

    World w·p is the centre of level-0 pixel p, i.e. continuous coordinate p + 0.5.
    """
    import shapely
    from shapely.geometry import Polygon

    polygons = []
    for vertices in shapes_data:
        rowcol = np.asarray(vertices, dtype=float)[:, -2:]
        if len(rowcol) < 3:
            continue
        xy = rowcol[:, ::-1] / world_per_px + 0.5
        polygons.append(shapely.make_valid(Polygon(xy)))
    region = shapely.union_all(polygons) if polygons else None
    if region is None or region.is_empty or region.area == 0:
        raise PathsaeError("draw a rectangle or polygon in the region layer first")
    return region


def output_paths(path: Path, with_spots: bool) -> tuple[Path, Path | None]:
    """The tile table path and, for Visium, ``<stem>_spots<suffix>`` beside it (.csv beside a tile-only format)."""
    suffix = ".csv" if path.suffix.lower() in TILE_FORMATS else path.suffix
    spots = path.with_name(f"{path.stem}_spots{suffix}") if with_spots else None
    return path, spots


class RegionExport(Panel, Container):
    """Tiles whose centre lies in the drawn shapes; missing tiles are computed first."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.state = state_for(viewer)
        self.shapes = ComboBox(
            label="Region layer", choices=self._shape_layers, tooltip="the Shapes layer whose shapes make the region"
        )
        self.new_region = PushButton(
            text="New region layer (draw a rectangle)", tooltip="add a Shapes layer in rectangle mode; drag"
        )
        self.output = FileEdit(
            label="Save to", mode="w", filter="*.csv *.parquet *.h5ad", nullable=True,
            tooltip="the tile table; with Visium, <name>_spots beside it. The format follows the suffix",
        )  # fmt: skip
        self.format = ComboBox(
            label="Format", choices=list(FORMATS), value=".csv", tooltip="used when the file name has no suffix"
        )
        self.export_button = PushButton(
            text="Export region", tooltip="compute the region's missing tiles, then write its activations"
        )
        self.status = status_label("what the export did")
        compact(self.shapes)
        super().__init__(
            widgets=[self.shapes, self.new_region, self.output, self.format, self.export_button, self.status]
        )
        self.new_region.changed.connect(self.add_region_layer)
        self.output.changed.connect(self._output_changed)
        self.export_button.changed.connect(self.export)
        viewer.layers.events.inserted.connect(lambda _: self.reset_choices())
        viewer.layers.events.removed.connect(lambda _: self.reset_choices())

    def _shape_layers(self, _=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if layer._type_string == "shapes"]

    def add_region_layer(self):
        units = self.state.session.world_units if self.state.session is not None else "pixel"
        layer = add_region_layer(self._viewer, units)
        self.shapes.value = layer.name
        return layer

    def _output_changed(self, _=None) -> None:
        """The Format box follows the suffix typed or picked."""
        suffix = Path(str(self.output.value)).suffix.lower()
        if suffix in FORMATS:
            self.format.value = suffix

    def _target(self) -> Path:
        if chosen_path(self.output) is None:
            raise PathsaeError("choose a file to save to")
        path = Path(self.output.value)
        suffix = path.suffix.lower()
        if not suffix:
            return path.with_suffix(self.format.value)
        if suffix not in FORMATS:
            raise PathsaeError(f"cannot write {suffix} files; name the file {', '.join(FORMATS)}")
        if suffix != self.format.value:
            raise PathsaeError(f"the file name says {suffix} but Format says {self.format.value}; make them agree")
        return path

    def export(self):
        """Compute the region's missing tiles in the background, then write the table(s) atomically."""
        session = self.state.session
        try:
            if session is None or not session.n_features:
                raise PathsaeError("load a model with an SAE first (Model panel)")
            if not self.shapes.value:
                raise PathsaeError("add a region layer and draw a rectangle or polygon")
            polygon = shapes_to_polygon(self._viewer.layers[self.shapes.value].data, session.placement.world_per_px)
            path = self._target()
            tiles_path, spots_path = output_paths(path, session.sample is not None)
            for target in (tiles_path, spots_path):
                if target is not None and target.exists():
                    raise PathsaeError(f"{target} exists; choose another name")
        except PathsaeError as exc:
            self.fail(exc)
            return None
        self.export_button.enabled = False
        self.status.value = "computing the region's tiles…"
        features = list(self.state.selected)  # the features painted: QuPath's measurements in a .geojson
        return run_in_background(
            export_region, session, polygon, tiles_path, spots_path, features,
            on_done=self._done, on_error=self._failed,
        )  # fmt: skip

    def _done(self, message: str) -> None:
        self.export_button.enabled = True
        self.status.value = message

    def _failed(self, exc: Exception) -> None:
        self.export_button.enabled = True
        self.say(str(exc))


def export_region(
    session, polygon, tiles_path: Path, spots_path: Path | None, features: list[int] | None = None
) -> str:
    """Compute the tiles the region needs, then write its tile table (and spot table); returns a summary.
    ``features``: the measurements of a QuPath .geojson (default: the ten strongest)."""
    inside = np.flatnonzero(region_mask(session.store.tile_centres, polygon=polygon))
    if len(inside) == 0:
        raise PathsaeError("no tissue tile lies in the region")
    needed = inside
    if spots_path is not None:
        spots = np.flatnonzero(region_mask(session.sample.spots_level0_xy, polygon=polygon))
        needed = np.union1d(inside, session.tiles_under_spots(spots))
    missing = session.missing(needed)
    if len(missing):
        session.compute(missing)
    sae = session.sae_name
    rows = export_tiles(session.store, tiles_path, sae=sae, polygon=polygon, features=features or None)
    message = f"{rows} tiles → {tiles_path.name}"
    if spots_path is not None:
        try:
            n = export_spots(session.store, session.sample, spots_path, sae=sae, polygon=polygon)
            message += f"; {n} spots → {spots_path.name}"
        except PathsaeError as exc:
            message += f"; no spot table ({exc})"
    return message + f" ({len(missing)} tiles computed first)"
