"""Errors a user can cause: each carries one clear line for the CLI or a napari notification."""

from collections.abc import Iterator
from contextlib import contextmanager


class PathsaeError(Exception):
    """A problem with the user's input (file, folder, option), reported as one line."""


class Cancelled(PathsaeError):
    """The user stopped the work (training, a whole-slide run): said as information, not as an error."""


class UnsupportedFileError(PathsaeError):
    """The path is not a slide, image or Visium sample that napari-pathsae can open."""


@contextmanager
def reported_as(message: str) -> Iterator[None]:
    """Any failure of a third-party reader or codec becomes one PathsaeError line: ``message (cause)``."""
    try:
        yield
    except PathsaeError:
        raise
    except Exception as exc:
        raise PathsaeError(f"{message} ({exc})") from None
