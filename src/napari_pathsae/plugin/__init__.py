"""The napari face of napari-pathsae: reader, sample data, layer builders and dock widgets."""
