"""Outputs written whole or not at all: a temporary file or folder beside the target, renamed onto it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import PathsaeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def writable_target(path: str | Path, overwrite: bool = False) -> Path:
    """``path``, once sure it may be written: not there already (unless ``overwrite``), in a folder that is."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise PathsaeError(f"{path} exists; remove it or pass --overwrite")
    if not path.parent.is_dir():
        raise PathsaeError(f"no folder {path.parent} for the output")
    try:  # a real write, not os.access: read-only mounts, ACLs and root all answer truthfully
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise PathsaeError(
            f"{path.parent} is not writable ({exc.strerror or exc}); choose another output folder"
        ) from None
    return path


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it on success and removed on failure."""
    path = writable_target(path, overwrite)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temp)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the result from the user's group
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A hidden staging folder beside ``path``, renamed onto it when filled and removed on failure."""
    path = writable_target(path, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
