"""Dataclass fields as form options, and back (options.py)."""

from __future__ import annotations

import dataclasses

import pytest

from napari_scroll_sam.options import OptionError, build, changed, options_of
from napari_scroll_sam.propagation import StopRule, WalkConfig

MODES = ("fast", "slow")


@dataclasses.dataclass
class Config:
    """A test config.

    mode : how to go
    steps, size : how many and how big
        (continued here)
    """

    mode: str | None = "fast"
    steps: int = 3
    size: float | None = None
    on: bool = True
    name: str = "free text"
    stops: frozenset = frozenset()
    other: str = dataclasses.field(default="a", metadata={"choices": ("a", "b")})


def test_options_of_a_dataclass():
    opts = {o.name: o for o in options_of(Config)}
    assert list(opts) == ["mode", "steps", "size", "on", "other"]  # free text and sets are not options
    assert (opts["mode"].kind, opts["mode"].choices, opts["mode"].optional) == ("choice", MODES, True)
    assert (opts["steps"].kind, opts["steps"].default, opts["steps"].optional) == ("int", 3, False)
    assert (opts["size"].kind, opts["size"].default, opts["size"].optional) == ("float", None, True)
    assert opts["other"].choices == ("a", "b") and opts["on"].kind == "bool"
    assert opts["mode"].doc == "how to go"
    assert opts["size"].doc == opts["steps"].doc == "how many and how big (continued here)"


def test_the_walk_and_stop_options():
    walk = {o.name: o for o in options_of(WalkConfig)}
    assert set(walk) == {f.name for f in dataclasses.fields(WalkConfig)}
    assert walk["prior"].kind == "choice" and walk["prior"].optional and "flow" in walk["prior"].choices
    assert walk["snap"].optional and walk["corridor"].optional and not walk["accept"].optional
    stop = {o.name: o for o in options_of(StopRule)}
    assert "stop_slices" not in stop and stop["max_empty"].optional and stop["max_empty"].kind == "int"


def test_build_and_changed():
    assert build(WalkConfig, {"snap": None}) == WalkConfig(snap=None)
    assert changed(build(StopRule, {"max_empty": None}, base=StopRule(min_pred_iou=0.3))) == {
        "max_empty": None, "min_pred_iou": 0.3}
    with pytest.raises(OptionError, match="WalkConfig has no option 'speed'"):
        build(WalkConfig, {"speed": 2})
