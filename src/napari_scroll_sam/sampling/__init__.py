"""Slice sampling: which slices SAM sees, and how its three channels are made.

SAM takes an RGB uint8 image. A *mode* decides, for a volume, which slices are
used (``slices(volume)``) and which three slices become R, G and B for a slice
``z`` (``channels(z, n_slices)``):

``EverySlice(stride=1)``
    slices ``0, stride, 2*stride, ...``; slice ``z`` is grey: ``(z, z, z)``.
``Tuples(d=1)``
    every slice; ``(z - d, z, z + d)`` as R, G, B (2.5D context). At the ends of
    the volume the indices are clamped into ``[0, n - 1]``: slice 0 with ``d=1``
    is ``(0, 0, 1)``.
``RandomTuples(window=5, seed=0)``
    every slice; three slices drawn without replacement from
    ``[z - window, z + window]`` clipped to the volume, sorted, as R, G, B. The
    generator is ``np.random.default_rng([seed, z])``: the draw for ``z`` is the
    same whatever else was drawn before. A window of fewer than 3 slices (at the
    end of a volume with ``window=1``, or a volume of 1 or 2 slices) gives each of
    its slices, then repeats one of them drawn at random.
``Filtered(base, z_range=, min_content=, threshold=, mask=, annotated=, not_blank=)``
    the base mode's slices that pass *all* given rules; channels are the base's.

Every mode is a frozen dataclass (a value: equal parameters, equal modes) with
``slices``, ``channels``, ``key()`` (a stable string for cache keys, e.g.
``"tuples(d=2)"``) and ``describe()``. ``make_mode(name, **params)`` builds one
from a name, and ``MODES`` lists the names with their parameters and defaults.

Intensities are windowed with the volume's ``contrast_limits`` (``lo -> 0``,
``hi -> 255``, clipped), never stretched per slice: see ``window_to_uint8``.
Nothing here imports Qt, napari or torch.

The package: ``modes.py`` (every slice, tuples, random tuples, shared checks),
``filtered.py`` (``Filtered``), ``images.py`` (slices → SAM's uint8 RGB); the names
above are all importable from ``napari_scroll_sam.sampling``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

from .filtered import BLANK_STD, Filtered
from .images import sample_image, sample_raw, window_to_uint8
from .modes import EverySlice, RandomTuples, SamplingError, SliceIndexError, Tuples, _Mode


# --- building modes by name ---------------------------------------------------------


class Param(NamedTuple):
    """One parameter of a mode, for widgets and the CLI.

    ``kind``: ``"int"``, ``"float"``, ``"bool"``, ``"optional_float"`` (``None``: rule off),
    ``"range"`` (optional ``(start, stop)``), ``"array"`` (optional array), ``"mode"`` (a base mode name).
    """

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


class ModeSpec(NamedTuple):
    name: str
    cls: type
    label: str
    params: tuple


MODES: dict = {
    "every": ModeSpec("every", EverySlice, "Every slice", (
        Param("stride", "int", 1, 1, None, "use slices 0, stride, 2·stride, …"),)),
    "tuples": ModeSpec("tuples", Tuples, "Tuples (z−d, z, z+d)", (
        Param("d", "int", 1, 0, None, "R, G, B = slices z−d, z, z+d"),)),
    "random": ModeSpec("random", RandomTuples, "Random tuples", (
        Param("window", "int", 5, 1, None, "draw 3 slices from z±window"),
        Param("seed", "int", 0, 0, None, "random seed (same seed, same slices)"))),
    "filtered": ModeSpec("filtered", Filtered, "Filtered", (
        Param("base", "mode", "every", help="which slices / channels before filtering"),
        Param("z_range", "range", None, 0, None, "only slices start ≤ z < stop"),
        Param("min_content", "optional_float", None, 0.0, 1.0, "least fraction of pixels at ≥ threshold"),
        Param("threshold", "float", 0.5, 0.0, 1.0, "content threshold, as a fraction of the window"),
        Param("mask", "array", None, help="only slices where the mask has pixels (content counted inside it)"),
        Param("annotated", "array", None, help="only slices where these labels are not all zero"),
        Param("not_blank", "bool", False, help="only slices that are not blank (std in the window)"))),
}
_ALIASES = {"every_slice": "every", "everyslice": "every", "tuple": "tuples", "random_tuples": "random",
            "randomtuples": "random", "filter": "filtered"}


def make_mode(name, **params):
    """A mode from its name (``"every"``, ``"tuples"``, ``"random"``, ``"filtered"``) and
    parameters. For ``"filtered"``, ``base`` is a mode or a name, and parameters that are
    not the filter's go to the base: ``make_mode("filtered", base="tuples", d=2, z_range=(0, 9))``."""
    if isinstance(name, _Mode):
        if params:
            raise SamplingError(f"make_mode: give parameters with a mode name, not with the mode {name.key()}")
        return name
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in MODES:
        raise SamplingError(f"unknown sampling mode {name!r}; known modes: {', '.join(MODES)}")
    cls = MODES[key].cls
    own = {f.name for f in fields(cls)}
    if cls is Filtered:
        base = params.pop("base", "every")
        rest = {k: params.pop(k) for k in list(params) if k not in own}
        if isinstance(base, str):
            base = make_mode(base, **rest)
        elif rest:
            raise SamplingError(f"unknown parameter(s) {', '.join(map(repr, rest))} for mode 'filtered'; it takes: "
                                + ", ".join(sorted(own)))
        return Filtered(base=base, **params)
    bad = sorted(set(params) - own)
    if bad:
        raise SamplingError(f"unknown parameter(s) {', '.join(map(repr, bad))} for mode {key!r}; it takes: "
                            + (", ".join(sorted(own)) or "no parameters"))
    return cls(**params)


def mode_values(mode) -> dict:
    """A mode's parameters by the names ``MODES`` lists (what a form shows): ``{name: value}``,
    the base mode of ``filtered`` under ``"base"`` and an array parameter's name under
    ``"<param>_name"``. ``make_mode(mode.name, **mode_values(mode))`` is the same mode."""
    mode = make_mode(mode)
    out = {}
    for p in MODES[mode.name].params:
        out[p.name] = getattr(mode, p.name)
        if p.kind == "array":
            out[f"{p.name}_name"] = getattr(mode, f"{p.name}_name", None)
    return out


__all__ = [
    "mode_values",
    "BLANK_STD", "EverySlice", "Filtered", "MODES", "ModeSpec", "Param", "RandomTuples", "SamplingError",
    "SliceIndexError", "Tuples", "make_mode", "sample_image", "sample_raw", "window_to_uint8",
]
