"""Analyses over stored activations: spots, correlation with genes."""
