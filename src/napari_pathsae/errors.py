"""Errors a user can cause: each carries one clear line for the CLI or a napari notification."""


class PathsaeError(Exception):
    """A problem with the user's input (file, folder, option), reported as one line."""


class UnsupportedFileError(PathsaeError):
    """The path is not a slide, image or Visium sample that napari-pathsae can open."""
