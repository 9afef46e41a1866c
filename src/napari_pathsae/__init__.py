"""napari-pathsae: SAE features of pathology foundation models over slides and Visium spots."""

from .errors import PathsaeError
from .io.frames import WorldFrame
from .io.slides import Slide, open_slide
from .io.visium import VisiumSample, open_visium

__version__ = "0.1.0"
__all__ = ["PathsaeError", "Slide", "VisiumSample", "WorldFrame", "open_slide", "open_visium"]
