"""``ModeSelector``: the sampling-mode chooser the Sampling, Segment and Train widgets share;
it builds one control per parameter from ``sampling.MODES`` and returns mode objects."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox, QStackedWidget, QVBoxLayout,
    QWidget,
)

from ..sampling import MODES, make_mode, mode_values

INT_MAX = 1_000_000
NO_ARRAY = "(none)"


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
        """The sampling mode these controls describe (``make_mode`` of the controls' values)."""
        name = self.mode_combo.currentData()
        params = {k: c.value() for k, c in self.controls[name].items()}
        params.update({f"{k}_name": c.name() for k, c in self.controls[name].items() if isinstance(c, _ArrayControl)})
        if name == "filtered":
            params["base"] = self.base.mode()
        return make_mode(name, **params)

    def set_mode(self, mode) -> None:
        """Show ``mode`` (a mode object or a name: ``sampling.mode_values``); emits ``changed`` once."""
        mode = make_mode(mode)
        if mode.name not in self.names:
            raise ValueError(f"this selector offers {', '.join(self.names)}, not {mode.name!r}")
        values = mode_values(mode)
        self._quiet = True
        try:
            self.mode_combo.setCurrentIndex(self.names.index(mode.name))
            for k, ctl in self.controls[mode.name].items():
                ctl.set_value(values[k], *([values[f"{k}_name"]] if isinstance(ctl, _ArrayControl) else []))
            if "base" in values:
                self.base.set_mode(values["base"])
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


__all__ = ["ModeSelector"]
