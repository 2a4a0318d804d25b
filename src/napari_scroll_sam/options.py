"""Options of a dataclass (``WalkConfig``, ``StopRule``…) as plain descriptions, and back.

A form (the Propagate panel's, built with magicgui) or a script reads what a dataclass
takes from here, so a field added to the dataclass shows up without editing the form::

    for opt in options_of(WalkConfig):      # name, kind, default, optional, choices, doc
        ...
    walk = build(WalkConfig, {"accept": 0.9, "snap": None})   # the others keep their defaults

``kind`` is ``"bool"``, ``"int"``, ``"float"`` or ``"choice"`` (a ``str`` field: its
choices from ``field.metadata["choices"]`` or the module's ``<NAME>S`` tuple, e.g.
``PRIORS`` for ``prior``). ``optional``: the field takes None (an off switch). The doc is
the field's line in the class docstring (``name : text``). Fields of other types (sets,
dicts) are not options. Values are checked by the dataclass itself (its ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing

from .errors import ScrollSamError

KINDS = ("bool", "int", "float", "choice")


class OptionError(ScrollSamError, ValueError):
    """An option name or value the dataclass does not take (names the option)."""


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    kind: str  # one of KINDS
    default: object
    optional: bool = False  # None is allowed (the option can be switched off)
    choices: tuple = ()
    doc: str = ""


def _hints(cls) -> dict:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def _split_optional(tp):
    """(the type without None, whether None was allowed)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else None), True
    return tp, False


def _docs(cls) -> dict[str, str]:
    """{field: its text} from docstring lines ``name : text`` or ``a, b, c : text`` (and their
    indented continuation lines)."""
    out, names = {}, []
    for line in (cls.__doc__ or "").splitlines():
        m = re.match(r"\s*([A-Za-z_][\w, ]*?)\s+:\s+(.*)", line)
        if m:
            names = [n.strip() for n in m.group(1).split(",")]
            for n in names:
                out[n] = m.group(2).strip()
        elif names and line.strip() and line.startswith("        "):
            for n in names:
                out[n] += " " + line.strip()
        else:
            names = []
    return out


def options_of(cls) -> list[Option]:
    """The options of dataclass ``cls``, in field order (see the module doc)."""
    hints, docs = _hints(cls), _docs(cls)
    module = sys.modules.get(cls.__module__)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, optional = _split_optional(hints.get(f.name, f.type))
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        choices = ()
        if tp is bool:
            kind = "bool"
        elif tp is int:
            kind = "int"
        elif tp is float:
            kind = "float"
        elif tp is str:
            choices = tuple(f.metadata.get("choices") or getattr(module, f"{f.name.upper()}S", ()) or ())
            if not choices:
                continue  # free text: not an option a form offers
            kind = "choice"
        else:
            continue
        out.append(Option(f.name, kind, default, optional, choices, docs.get(f.name, "")))
    return out


def build(cls, values: dict | None = None, base=None):
    """``cls(**fields)``: ``base``'s values (or the defaults) with ``values`` over them.
    An unknown name raises ``OptionError``; a bad value, the dataclass's own error."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = dict(values or {})
    unknown = sorted(set(values) - names)
    if unknown:
        raise OptionError(f"{cls.__name__} has no option {', '.join(map(repr, unknown))} "
                          f"(it takes {', '.join(sorted(names))})")
    if base is not None:
        values = {**{n: getattr(base, n) for n in names}, **values}
    return cls(**values)


def changed(obj) -> dict:
    """The fields of dataclass instance ``obj`` that differ from the defaults."""
    default = type(obj)()
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if f.init and getattr(obj, f.name) != getattr(default, f.name)}


__all__ = ["KINDS", "Option", "OptionError", "build", "changed", "options_of"]
