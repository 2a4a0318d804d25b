"""Qt / magicgui faces. Nothing outside this package imports Qt or napari."""
