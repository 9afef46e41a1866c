"""Dock widgets, one panel per file; each only wires events to engine and layer functions."""
