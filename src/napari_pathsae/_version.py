"""The package version, in one place (the store and provenance record it; nothing here imports)."""

__version__ = "0.1.0"
