"""The SAE architectures by name: each architecture's file registers one entry carrying everything about its kind.

Training (train.py), the files (formats.py), the CLI's ``--arch`` and the panel's combo ask this registry, so an
architecture is added by one file in this folder (imported by the registration block of ``__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ...errors import PathsaeError

if TYPE_CHECKING:  # base.py imports torch and this module (for SAEConfig's dispatch)
    import torch

    from .base import SAE, SAEConfig


def _no_keys(_: Any) -> dict:
    return {}


@dataclass(frozen=True)
class Architecture:
    """One architecture: its classes, how its files look to SAELens, and its hooks into training."""

    name: str  # what --arch, the panel and cfg.json's pathsae.config call it
    sae: type[SAE]
    config: type[SAEConfig]  # its own hyper-parameters on top of SAEConfig's shape fields
    description: str  # one line for --help and tooltips
    saelens: str  # cfg.json "architecture": the inference form SAELens reads
    #: Whether files of that SAELens name load as this architecture (BatchTopK's files are JumpReLU's form,
    #: so they load as jumprelu; exactly one entry reads each SAELens name).
    reads_saelens: bool = True
    saelens_cfg: Callable[[SAEConfig], dict] = _no_keys  # extra cfg.json keys on save (topk: k)
    from_saelens: Callable[[dict], dict] = _no_keys  # config parameters from a loaded cfg.json
    #: Copies the architecture's own tensors of a loaded state dict into the SAE (jumprelu: threshold);
    #: W_enc, W_dec, b_enc and b_dec are copied for every architecture.
    load_weights: Callable[[SAE, dict[str, torch.Tensor]], None] | None = None
    #: Refuses, with a PathsaeError, a config that cannot train (k above the SAE width).
    check: Callable[[SAEConfig], None] | None = None
    #: Runs once on the first normalised batch before training (jumprelu: thresholds at the target L0).
    initialise: Callable[[SAE, torch.Tensor], None] | None = None

    def make_config(self, values: Mapping[str, Any]) -> SAEConfig:
        """This architecture's config from ``values`` (TrainOptions' fields, shape, ...): every config field
        named in ``values`` takes its value, the others keep their defaults, so options an architecture does
        not read (l1 for topk) are left out."""
        names = {f.name for f in fields(self.config)}
        return self.config(**{k: v for k, v in values.items() if k in names and k != "arch"}, arch=self.name)


_ENTRIES: dict[str, Architecture] = {}
#: Read-only live view: name -> entry, in registration order.
ENTRIES: Mapping[str, Architecture] = MappingProxyType(_ENTRIES)


def register(entry: Architecture) -> Architecture:
    """Add an architecture (called at the bottom of its file); a name or a read SAELens name used twice is a bug."""
    if entry.name in _ENTRIES:
        raise ValueError(f"SAE architecture {entry.name!r} registered twice")
    if entry.reads_saelens and any(e.reads_saelens and e.saelens == entry.saelens for e in _ENTRIES.values()):
        raise ValueError(f"two SAE architectures read SAELens {entry.saelens!r} files")
    _ENTRIES[entry.name] = entry
    return entry


def architectures() -> tuple[str, ...]:
    """The names, in registration order (the CLI's and the panel's choices)."""
    return tuple(_ENTRIES)


def descriptions() -> dict[str, str]:
    """Name -> one-line description, for help texts and tooltips."""
    return {name: entry.description for name, entry in _ENTRIES.items()}


def get(name: str) -> Architecture:
    """The entry called ``name``; a PathsaeError listing the known names otherwise."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise PathsaeError(f"unknown SAE architecture {name!r} ({', '.join(_ENTRIES)})") from None


def for_saelens(saelens: str | None) -> Architecture:
    """The entry that loads files whose cfg.json says ``architecture: saelens``."""
    readable = {e.saelens: e for e in _ENTRIES.values() if e.reads_saelens}
    if saelens not in readable:
        raise PathsaeError(f"unsupported SAE architecture {saelens!r} (SAELens {', '.join(readable)})")
    return readable[saelens]
