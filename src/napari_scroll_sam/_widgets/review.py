"""Review 3D: the committed objects in 3D, in seconds, on top of the image.

``review_3d(viewer, image, masks, scratch)``: a small lazy image is computed once and kept
in memory (its Volume kept in ``metadata["volume"]``, so the embedding cache still finds
it), other label layers (ground truth such as the sample's ``sheets`` / ``ink``) are
hidden, the objects go on top as shaded surfaces (``iso_categorical``) in bright colours
(``REVIEW_COLORS``; the current object keeps its yellow), the image is dimmed and the
camera looks obliquely. Leaving 3D (``viewer.dims.ndisplay = 2``: napari's 2D/3D button,
"Show 2D", a script) ends the review: every layer gets back the visibility, opacity,
rendering and colormap it had (``end_review``); the layer order stays, the masks on top.
``Review3DButton``: a "Show 3D" / "Show 2D" toggle doing that, which follows napari's own
2D/3D button.
"""

from __future__ import annotations

import weakref

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QPushButton

from ..layers import volume_from_layer

#: lazy images up to this many bytes are computed once for the 3D view
IN_MEMORY_MAX_BYTES = 512 << 20
CAMERA_ANGLES = (-20.0, 35.0, 60.0)
#: the committed objects' colours while reviewing (object 1 first), bright on the dimmed image
#: and after iso shading; not the current object's yellow
REVIEW_COLORS = ("#00e5ff", "#ff4fd8", "#7dff3a", "#ff9a1f", "#6f8bff", "#ff5a5a", "#d9ff00", "#b36bff")
IMAGE_OPACITY = 0.6

#: viewer -> the layer settings a review changed, put back when the viewer leaves 3D
_ACTIVE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def review_colormap():
    """A cyclic label colormap of ``REVIEW_COLORS`` (0 transparent)."""
    from napari.utils.colormaps import CyclicLabelColormap
    from napari.utils.colormaps.standardize_color import transform_color

    return CyclicLabelColormap(colors=[[0, 0, 0, 0], *transform_color(list(REVIEW_COLORS))])


class _Review:
    """The settings a review changed, each layer's old values; ``restore`` puts them back."""

    def __init__(self):
        self.saved: list = []  # (layer, {attribute: old value})
        self.moves: list = []  # (layer, its index before it went to the top)
        self.callback = None

    def to_top(self, layers, layer) -> None:
        i = layers.index(layer)
        self.moves.append((layer, i))
        layers.move(i, len(layers))

    def set(self, layer, **values) -> None:
        self.saved.append((layer, {k: getattr(layer, k) for k in values}))
        for k, v in values.items():
            setattr(layer, k, v)

    def restore(self, layers) -> None:
        for layer, old in reversed(self.saved):
            if layer in layers:  # a layer deleted meanwhile has nothing to get back
                for k, v in old.items():
                    setattr(layer, k, v)
        for layer, i in reversed(self.moves):  # the layer list's order as it was
            if layer in layers:
                layers.move(layers.index(layer), min(i, len(layers) - 1))


def reviewing(viewer) -> bool:
    return viewer in _ACTIVE


def end_review(viewer) -> bool:
    """Put back what ``review_3d`` changed (the viewer stays in the view it is in); False when
    no review was on."""
    review = _ACTIVE.pop(viewer, None)
    if review is None:
        return False
    viewer.dims.events.ndisplay.disconnect(review.callback)
    review.restore(viewer.layers)
    return True


def review_3d(viewer, image, masks, scratch=None) -> list[str]:
    """Show ``masks`` (and the current object) over ``image`` in 3D; returns the names of
    the layers it hid. Leaving 3D puts every layer's settings back (``end_review``)."""
    end_review(viewer)  # a review already on: from the settings before it
    vol = volume_from_layer(image)
    if not isinstance(image.data, np.ndarray) and not image.multiscale and vol.data.nbytes <= IN_MEMORY_MAX_BYTES:
        image.metadata["volume"] = vol  # the same identity for the embedding cache
        image.data = np.asarray(vol.data)  # computed once, not at every 3D redraw
    review = _Review()
    hidden = []
    ours = {id(masks), id(scratch)}
    for ly in viewer.layers:
        if isinstance(ly, Labels) and id(ly) not in ours and ly.visible:
            review.set(ly, visible=False)
            hidden.append(ly.name)
    if scratch is not None and isinstance(scratch.data, np.ndarray) and not scratch.data.any():
        review.set(scratch, visible=False)  # an empty current object: one volume less to ray-cast
        scratch = None
    for ly in (masks, scratch):
        if ly is not None:
            review.to_top(viewer.layers, ly)
            review.set(ly, rendering="iso_categorical", opacity=1.0, visible=True)
    if masks is not None:
        review.set(masks, colormap=review_colormap())
    review.set(image, opacity=IMAGE_OPACITY)
    viewer.dims.ndisplay = 3
    scene = getattr(viewer, "scene", None)  # napari >= 0.9: viewer.scene.camera
    (scene.camera if scene is not None else viewer.camera).angles = CAMERA_ANGLES
    ref = weakref.ref(viewer)

    def left_3d(event=None):
        v = ref()
        if v is not None and v.dims.ndisplay != 3:
            end_review(v)

    review.callback = left_3d
    _ACTIVE[viewer] = review
    viewer.dims.events.ndisplay.connect(left_3d)
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
