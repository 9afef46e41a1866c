"""napari-pathsae: SAE features of pathology foundation models over slides and Visium spots."""

from ._version import __version__
from .errors import PathsaeError
from .io.frames import WorldFrame
from .io.slides import Slide, open_slide
from .io.visium import VisiumSample, open_visium

__all__ = ["PathsaeError", "Slide", "VisiumSample", "WorldFrame", "__version__", "open_slide", "open_visium"]
