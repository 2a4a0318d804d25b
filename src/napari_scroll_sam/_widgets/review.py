"""Review 3D: the committed objects in 3D, in seconds, on top of the image.

``review_3d(viewer, image, masks, scratch)``: a small lazy image is computed once and kept
in memory (its Volume kept in ``metadata["volume"]``, so the embedding cache still finds
it), other label layers (ground truth such as the sample's ``sheets`` / ``ink``) are
hidden, the objects go on top as shaded surfaces (``iso_categorical``) and the camera
looks obliquely. ``viewer.dims.ndisplay = 2`` goes back. ``Review3DButton``: a "Show 3D" /
"Show 2D" toggle doing that, which follows napari's own 2D/3D button.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QPushButton

from ..layers import volume_from_layer

#: lazy images up to this many bytes are computed once for the 3D view
IN_MEMORY_MAX_BYTES = 512 << 20
CAMERA_ANGLES = (-20.0, 35.0, 60.0)


def review_3d(viewer, image, masks, scratch=None) -> list[str]:
    """Show ``masks`` (and the current object) over ``image`` in 3D; returns the names of
    the layers it hid."""
    vol = volume_from_layer(image)
    if not isinstance(image.data, np.ndarray) and not image.multiscale and vol.data.nbytes <= IN_MEMORY_MAX_BYTES:
        image.metadata["volume"] = vol  # the same identity for the embedding cache
        image.data = np.asarray(vol.data)  # computed once, not at every 3D redraw
    hidden = []
    ours = {id(masks), id(scratch)}
    for ly in viewer.layers:
        if isinstance(ly, Labels) and id(ly) not in ours and ly.visible:
            ly.visible = False
            hidden.append(ly.name)
    if scratch is not None and isinstance(scratch.data, np.ndarray) and not scratch.data.any():
        scratch.visible = False  # an empty current object: one volume less to ray-cast
        scratch = None
    for ly in (masks, scratch):
        if ly is not None:
            viewer.layers.move(viewer.layers.index(ly), len(viewer.layers))
            ly.rendering = "iso_categorical"
            ly.opacity = 1.0
            ly.visible = True
    image.opacity = 0.6
    viewer.dims.ndisplay = 3
    scene = getattr(viewer, "scene", None)  # napari >= 0.9: viewer.scene.camera
    (scene.camera if scene is not None else viewer.camera).angles = CAMERA_ANGLES
    return hidden


class Review3DButton(QPushButton):
    """Checked: ``review_3d`` of ``layers()`` → (image, masks, scratch) (plain 3D while there is
    no masks layer); unchecked: 2D. ``reviewed(list of hidden layer names)`` after a review."""

    reviewed = Signal(list)

    def __init__(self, viewer, layers, tooltip: str = "review the masks in 3D over the image"):
        super().__init__("Show 3D", checkable=True, toolTip=tooltip)
        self.viewer, self.layers = viewer, layers
        self.toggled.connect(self.show_3d)
        viewer.dims.events.ndisplay.connect(lambda event=None: self._set(viewer.dims.ndisplay == 3))

    def show_3d(self, on: bool = True) -> None:
        self._set(bool(on))
        image, masks, scratch = self.layers()
        if not on:
            self.viewer.dims.ndisplay = 2
        elif image is not None and masks is not None:
            self.reviewed.emit(review_3d(self.viewer, image, masks, scratch))
        else:
            self.viewer.dims.ndisplay = 3

    def _set(self, on: bool) -> None:
        self.blockSignals(True)
        self.setChecked(on)
        self.setText("Show 2D" if on else "Show 3D")
        self.blockSignals(False)
