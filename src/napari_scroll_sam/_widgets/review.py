"""Review 3D: the committed objects in 3D, in seconds, on top of the image.

``review_3d(viewer, image, masks, scratch)``: a small lazy image is computed once and kept
in memory (its Volume kept in ``metadata["volume"]``, so the embedding cache still finds
it), other label layers (ground truth such as the sample's ``sheets`` / ``ink``) are
hidden, the objects go on top as shaded surfaces (``iso_categorical``) and the camera
looks obliquely. ``viewer.dims.ndisplay = 2`` goes back.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Labels

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
