"""The "Sampling" dock widget and ``ModeSelector``, the reusable mode chooser.

A thin face over ``napari_scroll_sam.sampling``: the selector builds its controls
from ``MODES`` and returns mode objects; the widget shows ``sample_image`` for the
current slice as an RGB layer, and which slices ``mode.slices(volume)`` passes.
"""

from __future__ import annotations

from napari.layers import Image, Labels
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QListWidget, QPushButton, QSpinBox,
    QStackedWidget, QVBoxLayout, QWidget,
)

from ..io.volume import Volume
from ._layers import refill_combo, volume_image_names
from ._errors import call_or_show, clear_widget_error
from ..sampling import MODES, Filtered, make_mode, sample_image

INT_MAX = 1_000_000
NO_ARRAY = "(none)"
PREVIEW_SUFFIX = " [sampling preview]"
PREVIEW_OPACITY = 0.6
FIRST_FEW = 8


# --- one control per parameter kind ---------------------------------------------------


class _Control:
    """A parameter's widget: ``widget``, ``value()``, ``set_value(v)``; calls ``on_change``."""

    def __init__(self, param, on_change):
        self.param = param
        self.on_change = on_change


class _IntControl(_Control):
    def __init__(self, param, on_change):
        super().__init__(param, on_change)
        self.widget = self.spin = QSpinBox(toolTip=param.help)
        self.spin.setRange(int(param.minimum or 0), int(param.maximum or INT_MAX))
        self.spin.setValue(int(param.default))
        self.spin.valueChanged.connect(lambda _: on_change())

    def value(self):
        return self.spin.value()

    def set_value(self, v):
        self.spin.setValue(int(v))


class _FloatControl(_Control):
    def __init__(self, param, on_change, optional=False):
        super().__init__(param, on_change)
        self.spin = QDoubleSpinBox(toolTip=param.help, decimals=3, singleStep=0.05)
        self.spin.setRange(param.minimum if param.minimum is not None else -1e9,
                           param.maximum if param.maximum is not None else 1e9)
        self.spin.valueChanged.connect(lambda _: on_change())
        self.check = None
        if optional:
            self.check = QCheckBox(toolTip=param.help)
            self.check.toggled.connect(self._toggled)
            self.widget = _row(self.check, self.spin)
            self.spin.setValue(0.1)
            self.spin.setEnabled(False)
        else:
            self.widget = self.spin
            self.spin.setValue(float(param.default))

    def _toggled(self, on):
        self.spin.setEnabled(on)
        self.on_change()

    def value(self):
        if self.check is not None and not self.check.isChecked():
            return None
        return self.spin.value()

    def set_value(self, v):
        if self.check is not None:
            self.check.setChecked(v is not None)
        if v is not None:
            self.spin.setValue(float(v))


class _BoolControl(_Control):
    def __init__(self, param, on_change):
        super().__init__(param, on_change)
        self.widget = self.check = QCheckBox(toolTip=param.help)
        self.check.setChecked(bool(param.default))
        self.check.toggled.connect(lambda _: on_change())

    def value(self):
        return self.check.isChecked()

    def set_value(self, v):
        self.check.setChecked(bool(v))


class _RangeControl(_Control):
    """Optional ``(start, stop)``: a check box and two spin boxes."""

    def __init__(self, param, on_change):
        super().__init__(param, on_change)
        self.check = QCheckBox(toolTip=param.help)
        self.start, self.stop = QSpinBox(toolTip="start (included)"), QSpinBox(toolTip="stop (excluded)")
        self.start.setRange(0, INT_MAX - 1)
        self.stop.setRange(1, INT_MAX)
        self.stop.setValue(INT_MAX)
        self.widget = _row(self.check, self.start, QLabel("to"), self.stop)
        self.check.toggled.connect(self._toggled)
        self._toggled(False, notify=False)
        for s in (self.start, self.stop):
            s.valueChanged.connect(self._bounds)

    def _toggled(self, on, notify=True):
        self.start.setEnabled(on)
        self.stop.setEnabled(on)
        if notify:
            self.on_change()

    def _bounds(self, _):
        if self.stop.value() <= self.start.value():
            self.stop.setValue(self.start.value() + 1)
        self.on_change()

    def set_n_slices(self, n: int):
        """Stop defaults to the volume's depth."""
        if not self.check.isChecked() or self.stop.value() > n:
            self.stop.blockSignals(True)
            self.stop.setValue(max(n, 1))
            self.stop.blockSignals(False)

    def value(self):
        return (self.start.value(), self.stop.value()) if self.check.isChecked() else None

    def set_value(self, v):
        self.check.setChecked(v is not None)
        if v is not None:
            self.stop.setValue(int(v[1]))
            self.start.setValue(int(v[0]))
            self.stop.setValue(int(v[1]))


class _ArrayControl(_Control):
    """An optional array, chosen by name among ``set_choices({name: array})``."""

    def __init__(self, param, on_change):
        super().__init__(param, on_change)
        self.widget = self.combo = QComboBox(toolTip=param.help)
        self.choices: dict = {}
        self.set_choices({})
        self.combo.currentIndexChanged.connect(lambda _: on_change())

    def set_choices(self, choices: dict):
        current = self.combo.currentText()
        self.choices = dict(choices)
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems([NO_ARRAY, *self.choices])
        self.combo.setCurrentText(current if current in self.choices else NO_ARRAY)
        self.combo.blockSignals(False)
        if self.combo.currentText() != current:
            self.on_change()

    def name(self):
        name = self.combo.currentText()
        return name if name in self.choices else None

    def value(self):
        name = self.name()
        return None if name is None else self.choices[name]

    def set_value(self, v, name=None):
        if v is None:
            self.combo.setCurrentText(NO_ARRAY)
            return
        found = next((k for k, a in self.choices.items() if a is v), None)
        if found is None:
            found = name or "(given array)"
            self.set_choices({**self.choices, found: v})
        self.combo.setCurrentText(found)


def _row(*widgets):
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x, 1 if isinstance(x, (QSpinBox, QDoubleSpinBox)) else 0)
    return w


_CONTROLS = {"int": _IntControl, "float": _FloatControl, "bool": _BoolControl, "range": _RangeControl,
             "array": _ArrayControl, "optional_float": lambda p, cb: _FloatControl(p, cb, optional=True)}


# --- the selector -----------------------------------------------------------------------


class ModeSelector(QWidget):
    """Choose a sampling mode and its parameters; knows nothing of a viewer.

    ``mode()`` returns the mode object (``napari_scroll_sam.sampling``), ``set_mode(mode)``
    shows one, ``changed`` fires on every edit. ``set_arrays({name: array})`` offers
    arrays for the filter's ``mask`` / ``annotated`` rules; ``set_n_slices(n)`` sets
    the z range's default stop. ``modes`` restricts the names offered.
    """

    changed = Signal()

    def __init__(self, parent=None, modes=None):
        super().__init__(parent)
        self.names = [n for n in (modes or MODES) if n in MODES]
        self.mode_combo = QComboBox()
        self.stack = QStackedWidget()
        self.controls: dict = {}
        self.base: ModeSelector | None = None
        self.describe_label = QLabel(wordWrap=True, styleSheet="color: gray;")
        self._quiet = False
        for name in self.names:
            spec = MODES[name]
            self.mode_combo.addItem(spec.label, name)
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            self.controls[name] = {}
            for p in spec.params:
                if p.kind == "mode":
                    self.base = ModeSelector(modes=[m for m in MODES if m != name])
                    self.base.describe_label.hide()
                    self.base.changed.connect(self._emit)
                    self.base.mode_combo.setToolTip(p.help)
                    form.addRow("base", self.base)
                    continue
                ctl = _CONTROLS[p.kind](p, self._emit)
                ctl.widget.setToolTip(p.help)
                self.controls[name][p.name] = ctl
                form.addRow(p.name.replace("_", " "), ctl.widget)
            self.stack.addWidget(page)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.mode_combo)
        lay.addWidget(self.stack)
        lay.addWidget(self.describe_label)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self._on_mode(self.mode_combo.currentIndex())

    def _on_mode(self, i):
        self.stack.setCurrentIndex(i)
        self._emit()

    def _emit(self):
        # a page as tall as its own controls, not as the tallest page
        self.stack.setMaximumHeight(self.stack.currentWidget().sizeHint().height())
        if self._quiet:
            return
        try:
            self.describe_label.setText(self.mode().describe())
        except Exception as e:  # noqa: BLE001 - shown, not raised: the user is still typing
            self.describe_label.setText(str(e))
        self.changed.emit()

    def mode(self):
        """The sampling mode these controls describe."""
        name = self.mode_combo.currentData()
        params = {k: c.value() for k, c in self.controls[name].items()}
        if name == "filtered":
            for k in ("mask", "annotated"):
                params[f"{k}_name"] = self.controls[name][k].name() if k in self.controls[name] else None
            return Filtered(base=self.base.mode(), **params)
        return make_mode(name, **params)

    def set_mode(self, mode) -> None:
        """Show ``mode`` (a mode object or a name); emits ``changed`` once."""
        mode = make_mode(mode) if isinstance(mode, str) else mode
        if mode.name not in self.names:
            raise ValueError(f"this selector offers {', '.join(self.names)}, not {mode.name!r}")
        self._quiet = True
        try:
            self.mode_combo.setCurrentIndex(self.names.index(mode.name))
            for k, ctl in self.controls[mode.name].items():
                if isinstance(ctl, _ArrayControl):
                    ctl.set_value(getattr(mode, k), getattr(mode, f"{k}_name", None))
                else:
                    ctl.set_value(getattr(mode, k))
            if mode.name == "filtered":
                self.base.set_mode(mode.base)
        finally:
            self._quiet = False
        self._emit()

    def set_arrays(self, arrays: dict) -> None:
        """Offer these named arrays for the filter's ``mask`` and ``annotated`` rules."""
        for ctls in self.controls.values():
            for ctl in ctls.values():
                if isinstance(ctl, _ArrayControl):
                    ctl.set_choices(arrays)

    def set_n_slices(self, n: int) -> None:
        for ctls in self.controls.values():
            for ctl in ctls.values():
                if isinstance(ctl, _RangeControl):
                    ctl.set_n_slices(n)


# --- the dock widget ------------------------------------------------------------------------


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
