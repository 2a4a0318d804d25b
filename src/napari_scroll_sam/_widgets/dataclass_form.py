"""A magicgui form built from a dataclass's fields (``options.options_of``): the Propagate
panel's walk options (``WalkConfig``) and stop rule (``StopRule``). A field added to the
dataclass appears here without editing the form.

One row per option: a check box (bool), a spin box (int / float), a combo box (a choice).
An option that takes None gets an "on" switch beside its value (off: None). Options named
in ``main`` come first; the others go into a folded "more" section.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, SpinBox

from ..options import build, options_of
from ._layout import section

#: the value a switched-off option (default None) shows when switched on
OFF_VALUE = {"float": 0.5, "int": 5}
MAX_VALUE = 1_000_000


def _label(name: str) -> str:
    return " ".join("IoU" if w == "iou" else w for w in name.split("_"))


class _Row:
    """One option: its value widget, and its on switch when it takes None."""

    def __init__(self, opt):
        self.opt = opt
        kind, default = opt.kind, opt.default
        value = OFF_VALUE.get(kind) if default is None else default
        if kind == "bool":
            self.value_widget = CheckBox(value=bool(default), text="")
        elif kind == "choice":
            choices = [(c, c) for c in opt.choices] + ([("off", None)] if opt.optional else [])
            self.value_widget = ComboBox(choices=choices, value=default)
        elif kind == "int":
            self.value_widget = SpinBox(value=int(value), min=0, max=MAX_VALUE)
        else:
            step = 0.05 if abs(value) <= 1 else 0.5
            if 0 < abs(value) < 0.01:
                step = abs(value) / 10
            self.value_widget = FloatSpinBox(value=float(value), min=0.0, max=float(MAX_VALUE), step=step)
        self.switch = None
        widgets = [self.value_widget]
        if opt.optional and kind != "choice":
            self.switch = CheckBox(value=default is not None, text="on", tooltip=f"off: no {_label(opt.name)}")
            self.switch.changed.connect(self._sync)
            widgets.append(self.switch)
            self._sync()
        self.widget = Container(widgets=widgets, layout="horizontal", labels=False, label=_label(opt.name),
                                tooltip=opt.doc or None)
        self.widget.margins = (0, 0, 0, 0)
        for w in widgets:
            w.tooltip = w.tooltip or opt.doc or None

    def _sync(self, *_):
        self.value_widget.enabled = bool(self.switch.value)

    def get(self):
        if self.switch is not None and not self.switch.value:
            return None
        return self.value_widget.value

    def set(self, value) -> None:
        if self.switch is not None:
            self.switch.value = value is not None
        if value is not None or self.switch is None:
            self.value_widget.value = value


class DataclassForm:
    """The form of dataclass ``cls``: ``value()`` the instance (the dataclass checks it),
    ``get(name)`` / ``set(name, value)`` one option (None: off), ``widget`` the QWidget,
    ``rows`` {name: row}."""

    def __init__(self, cls, main=None, title: str | None = None):
        self.cls = cls
        self.rows = {opt.name: _Row(opt) for opt in options_of(cls)}
        first = [n for n in (main or self.rows) if n in self.rows]
        rest = [n for n in self.rows if n not in first]
        widgets = ([Label(value=title)] if title else []) + [self.rows[n].widget for n in first]
        self.container = Container(widgets=widgets, labels=True)
        self.container.margins = (0, 0, 0, 0)
        self.more = None
        if rest:
            more = Container(widgets=[self.rows[n].widget for n in rest], labels=True)
            more.margins = (0, 0, 0, 0)
            self.more = section(f"more {title.lower() if title else 'options'}", more.native, expanded=False)
            self.container.native.layout().addWidget(self.more)
        self.widget = self.container.native

    def get(self, name: str):
        return self.rows[name].get()

    def set(self, name: str, value) -> None:
        self.rows[name].set(value)

    def value(self, **extra):
        """The dataclass of the form's values (``extra`` over them)."""
        return build(self.cls, {**{n: r.get() for n, r in self.rows.items()}, **extra})


__all__ = ["DataclassForm"]
