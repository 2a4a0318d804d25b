"""The "Sampling" dock widget (``ModeSelector``, the reusable mode chooser: mode_selector.py).

A thin face over ``napari_scroll_sam.sampling``: the selector builds its controls
from ``MODES`` and returns mode objects; the widget shows ``sample_image`` for the
current slice as an RGB layer, and which slices ``mode.slices(volume)`` passes.
"""

from __future__ import annotations

from napari.layers import Image, Labels
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget,
)

from ..io.volume import Volume
from ..sampling import Filtered, sample_image
from ._errors import call_or_show, clear_widget_error
from ._layers import refill_combo, volume_image_names
from .mode_selector import ModeSelector
PREVIEW_SUFFIX = " [sampling preview]"
PREVIEW_OPACITY = 0.6
FIRST_FEW = 8


class SamplingWidget(QWidget):
    """Try sampling modes on an image layer: what SAM sees on the current slice, and which slices pass.

    Public parts: ``image_combo``, ``selector`` (a ``ModeSelector``), ``live_check``,
    ``preview_button``, ``channels_label``, ``compute_button``, ``slices_label``,
    ``slices_list`` (click: go to that slice), ``error_label``; ``preview_layer``.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.preview_layer: Image | None = None
        self.image_combo = QComboBox(toolTip="the image layer to sample")
        self.selector = ModeSelector()
        self.live_check = QCheckBox("Live preview", checked=True,
                                    toolTip="show what SAM sees on the current slice, as a semi-transparent RGB layer over the "
                                            "image (off: the layer goes)")
        self.preview_button = QPushButton("Preview")
        self.channels_label = QLabel()
        self.compute_button = QPushButton("Compute", toolTip="read the volume to find the slices that pass")
        self.slices_label = QLabel(wordWrap=True)
        self.slices_list = QListWidget(toolTip="slices that pass; click one to go there")
        self.error_label = QLabel(wordWrap=True, styleSheet="color: #e04040;", visible=False)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        preview_row = QHBoxLayout()
        preview_row.addWidget(self.live_check)
        preview_row.addWidget(self.preview_button)
        preview_row.addStretch(1)
        slices_row = QHBoxLayout()
        slices_row.addWidget(self.slices_label, 1)
        slices_row.addWidget(self.compute_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.selector)
        lay.addLayout(preview_row)
        lay.addWidget(self.channels_label)
        lay.addWidget(self.error_label)
        lay.addLayout(slices_row)
        lay.addWidget(self.slices_list, 10)
        lay.addStretch(1)  # takes the room when the list is hidden

        self._timer = QTimer(self, singleShot=True, interval=15)
        self._timer.timeout.connect(self.update_preview)
        self.image_combo.currentIndexChanged.connect(self._on_image)
        self.selector.changed.connect(self._on_mode)
        self.live_check.toggled.connect(lambda on: self._schedule() if on else self.remove_preview())
        self.preview_button.clicked.connect(self.update_preview)
        self.compute_button.clicked.connect(lambda: self.update_slices(compute=True))
        self.slices_list.itemClicked.connect(lambda item: self.go_to(int(item.text().split()[-1])))
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        for ly in self.viewer.layers:
            ly.events.name.connect(self._on_layers)
        self._window_of = None  # the layer whose contrast limits window the preview
        self.viewer.layers.events.removed.connect(self._on_layers)
        self.viewer.dims.events.current_step.connect(lambda _: self._schedule())
        self._on_layers()

    # --- the image and its volume ------------------------------------------------
    @property
    def layer(self) -> Image | None:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def volume(self) -> Volume | None:
        """The chosen layer as a Volume (``layers.volume_from_layer``), or None."""
        from ..layers import volume_from_layer

        return None if self.layer is None else volume_from_layer(self.layer)

    def current_z(self) -> int | None:
        """The viewer's current slice in the layer's voxels (``dims.current_step[0]`` for a plain layer)."""
        layer, vol = self.layer, self.volume()
        if layer is None or vol is None:
            return None
        dims = self.viewer.dims
        axis = dims.ndim - layer.ndim
        z = round((dims.point[axis] - layer.translate[0]) / layer.scale[0])
        return z if 0 <= z < vol.shape[0] else None

    def go_to(self, z: int) -> None:
        layer = self.layer
        if layer is not None:
            self.viewer.dims.set_point(self.viewer.dims.ndim - layer.ndim, layer.translate[0] + z * layer.scale[0])

    # --- actions ----------------------------------------------------------------------
    def update_preview(self) -> None:
        """Show ``sample_image(volume, current z, mode)`` as ``"<image> [sampling preview]"``."""
        self._timer.stop()
        layer, vol, z = self.layer, self.volume(), self.current_z()
        if layer is None or vol is None:
            self.channels_label.setText("no image layer")
            return
        if z is None:
            self.channels_label.setText("the current slice is outside this volume")
            return
        mode = self._try(self.selector.mode)
        if mode is None:
            return
        rgb = self._try(lambda: sample_image(vol, z, mode))
        if rgb is None:
            return
        r, g, b = mode.channels(z, vol.shape[0])
        self.channels_label.setText(f"slice {z}: R = {r}, G = {g}, B = {b}")
        name = layer.name + PREVIEW_SUFFIX
        pl = self.preview_layer
        if pl is not None and (pl not in self.viewer.layers or pl.name != name):
            if pl in self.viewer.layers:
                self.viewer.layers.remove(pl)
            pl = None
        if pl is None:
            # semi-transparent, over the image it previews; removed when Live preview is off
            pl = self.viewer.add_image(
                rgb, rgb=True, name=name, scale=tuple(layer.scale[-2:]), translate=tuple(layer.translate[-2:]),
                opacity=PREVIEW_OPACITY, blending="translucent_no_depth", metadata={"sampling_preview": layer.name})
            self.preview_layer = pl
            # keep the image layer selected (adding a layer selects it)
            self.viewer.layers.selection.active = layer
        else:
            pl.data = rgb
        pl.metadata.update(z=z, mode=mode.key())

    def remove_preview(self) -> None:
        """Take the preview layer out of the viewer (Live preview off, or the widget closed)."""
        pl, self.preview_layer = self.preview_layer, None
        if pl is not None and pl in self.viewer.layers:
            self.viewer.layers.remove(pl)

    def closeEvent(self, event):  # noqa: N802 - Qt
        self.remove_preview()
        super().closeEvent(event)

    def update_slices(self, compute: bool = False) -> None:
        """Which slices pass: directly when that needs no reading, else on ``compute``."""
        vol = self.volume()
        mode = self._try(self.selector.mode) if vol is not None else None
        self.slices_list.clear()
        self.compute_button.setEnabled(bool(mode is not None and mode.needs_compute))
        if mode is None:
            self.slices_label.setText("no image layer" if vol is None else "")
            return
        n = vol.shape[0]
        if mode.needs_compute and not compute:
            self.slices_label.setText(f"{n} slices; press Compute to read which pass")
            return
        zs = self._try(lambda: mode.slices(vol))
        if zs is None:
            self.slices_label.setText("")
            return
        few = ", ".join(map(str, zs[:FIRST_FEW])) + (", …" if len(zs) > FIRST_FEW else "")
        self.slices_label.setText(f"{len(zs)} of {n} slices pass" + (f": {few}" if zs else ""))
        if isinstance(mode, Filtered):
            self.slices_list.addItems([f"slice {z}" for z in zs])
        self.slices_list.setVisible(isinstance(mode, Filtered))

    # --- events ---------------------------------------------------------------------------
    def _on_layers(self, *_):
        if refill_combo(self.image_combo, volume_image_names(self.viewer)):
            self._on_image()
        else:
            self._offer_arrays()

    def _offer_arrays(self):
        """Labels and image layers of a fitting shape, for the mask / annotated rules."""
        vol = self.volume()
        arrays = {}
        if vol is not None:
            for ly in self.viewer.layers:
                if ly is self.layer or "sampling_preview" in ly.metadata or not isinstance(ly, (Labels, Image)):
                    continue
                data = ly.data[0] if ly.multiscale else ly.data
                if getattr(ly, "rgb", False):
                    continue
                if tuple(data.shape) in (tuple(vol.shape), tuple(vol.shape[1:])):
                    arrays[ly.name] = data
        self.selector.set_arrays(arrays)

    def _on_inserted(self, event):
        event.value.events.name.connect(self._on_layers)
        self._on_layers()

    def _on_image(self, *_):
        if self._window_of is not None:
            self._window_of.events.contrast_limits.disconnect(self._schedule)
            self._window_of = None
        layer = self.layer
        if layer is not None and not isinstance(layer.metadata.get("volume"), Volume):
            layer.events.contrast_limits.connect(self._schedule)  # a wrapped layer: its window is the layer's
            self._window_of = layer
        vol = self.volume()
        if vol is not None:
            self.selector.set_n_slices(vol.shape[0])
        self._offer_arrays()
        self.update_slices()
        self._schedule()

    def _on_mode(self):
        self.update_slices()
        self._schedule()

    def _schedule(self, *_):
        if self.live_check.isChecked():
            self._timer.start()

    def _try(self, fn):
        """``fn()``, or None with the error in the red label and a napari notification."""
        clear_widget_error(self.error_label)
        return call_or_show(self.error_label, fn)


__all__ = ["ModeSelector", "SamplingWidget"]
