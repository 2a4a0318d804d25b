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
"""

from __future__ import annotations

from .errors import ScrollSamError

import hashlib
import operator
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from typing import Any, ClassVar, NamedTuple

import dask
import dask.array as da
import numpy as np

from .io.volume import Volume, estimate_window

#: ``not_blank``: a slice is blank when the std of its windowed intensities (in [0, 1]) is at most this
BLANK_STD = 1e-3
_CACHE_SIZE = 64
_slice_cache: OrderedDict = OrderedDict()


class SamplingError(ScrollSamError, ValueError):
    """Bad sampling input; the message names the parameter (or slice) and what is wrong."""


class SliceIndexError(SamplingError, IndexError):
    """A slice index outside the volume (an ``IndexError`` as well as a ``SamplingError``)."""


# --- parameter checks ---------------------------------------------------------------


def _int(name: str, value, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SamplingError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise SamplingError(f"{name} must be >= {minimum}, got {value}")
    return value


def _fraction(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SamplingError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= v <= 1.0:
        raise SamplingError(f"{name} must be a number in [0, 1], got {value!r}")
    return v


def _check_n(n_slices) -> int:
    return _int("n_slices", n_slices, 1)


def _check_z(z, n_slices) -> int:
    n = _check_n(n_slices)
    try:
        z = operator.index(z)
    except TypeError:
        raise SamplingError(f"slice z must be an integer, got {z!r}") from None
    if not 0 <= z < n:
        raise SliceIndexError(f"slice z={z} is outside the volume: z must be in [0, {n - 1}] ({n} slices)")
    return z


def _as_volume(volume) -> Volume:
    """A ``Volume`` as is (or anything with ``data``, ``shape`` and ``contrast_limits``);
    a 3D array is wrapped, its window estimated from a few chunks."""
    if isinstance(volume, Volume) or all(hasattr(volume, a) for a in ("data", "shape", "contrast_limits")):
        return volume
    if getattr(volume, "ndim", None) == 3:
        return Volume(levels=[volume], contrast_limits=estimate_window(volume))
    raise SamplingError(f"expected a Volume or a 3D (z, y, x) array, got {type(volume).__name__}")


def _fingerprint(arr) -> str:
    """``dask:<name>`` for dask arrays (the graph's token); a hash of shape, dtype and
    bytes for anything else."""
    shape = "x".join(map(str, arr.shape))
    if isinstance(arr, da.Array):
        return f"dask:{arr.name}({shape})"
    a = np.ascontiguousarray(np.asarray(arr))
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return f"blake2b:{h.hexdigest()}({shape})"


def _as_array(name: str, value, ndims: tuple):
    if value is None:
        return None
    if not isinstance(value, (np.ndarray, da.Array)):
        value = da.asarray(value) if hasattr(value, "shape") and hasattr(value, "dtype") else np.asarray(value)
    if value.ndim not in ndims:
        want = " or ".join(f"{n}D" for n in ndims)
        raise SamplingError(f"{name} must be a {want} array, got {value.ndim}D of shape {tuple(value.shape)}")
    return value


# --- modes ----------------------------------------------------------------------------


class _Mode:
    name: ClassVar[str] = ""
    #: whether ``slices()`` reads arrays (image content, masks, labels): worth a button, not a live update
    needs_compute: ClassVar[bool] = False

    def slices(self, volume) -> list[int]:
        return list(range(_as_volume(volume).shape[0]))

    def __str__(self) -> str:
        return self.key()


@dataclass(frozen=True)
class EverySlice(_Mode):
    """Slices ``0, stride, 2*stride, ...``; slice ``z`` as grey (R = G = B = z)."""

    stride: int = 1
    name: ClassVar[str] = "every"

    def __post_init__(self):
        object.__setattr__(self, "stride", _int("stride", self.stride, 1))

    def slices(self, volume) -> list[int]:
        return list(range(0, _as_volume(volume).shape[0], self.stride))

    def channels(self, z, n_slices) -> tuple:
        z = _check_z(z, n_slices)
        return (z, z, z)

    def key(self) -> str:
        return f"every(stride={self.stride})"

    def describe(self) -> str:
        s = self.stride
        which = "every slice" if s == 1 else f"slices 0, {s}, {2 * s}, … (stride {s})"
        return f"{which}; slice z in grey (R = G = B = z)"


@dataclass(frozen=True)
class Tuples(_Mode):
    """Every slice; slices ``(z - d, z, z + d)`` as R, G, B, clamped into the volume at its ends."""

    d: int = 1
    name: ClassVar[str] = "tuples"

    def __post_init__(self):
        object.__setattr__(self, "d", _int("d", self.d, 0))

    def channels(self, z, n_slices) -> tuple:
        z = _check_z(z, n_slices)
        n = int(n_slices)
        return (max(z - self.d, 0), z, min(z + self.d, n - 1))

    def key(self) -> str:
        return f"tuples(d={self.d})"

    def describe(self) -> str:
        return (f"every slice; R, G, B = slices z−{self.d}, z, z+{self.d} (2.5D context; "
                "clamped to the first / last slice at the volume's ends)")


@dataclass(frozen=True)
class RandomTuples(_Mode):
    """Every slice; three distinct slices of ``[z - window, z + window]`` (clipped to the
    volume) drawn by ``default_rng([seed, z])``, sorted, as R, G, B."""

    window: int = 5
    seed: int = 0
    name: ClassVar[str] = "random"

    def __post_init__(self):
        object.__setattr__(self, "window", _int("window", self.window, 1))
        object.__setattr__(self, "seed", _int("seed", self.seed, 0))

    def channels(self, z, n_slices) -> tuple:
        z = _check_z(z, n_slices)
        lo, hi = max(z - self.window, 0), min(z + self.window, int(n_slices) - 1)
        rng = np.random.default_rng([self.seed, z])
        window = np.arange(lo, hi + 1)
        if window.size >= 3:
            pick = rng.choice(window, size=3, replace=False)
        else:  # 1 or 2 slices: each of them, then repeats drawn from them
            pick = np.concatenate([window, rng.choice(window, size=3 - window.size)])
        return tuple(sorted(int(p) for p in pick))

    def key(self) -> str:
        return f"random(window={self.window}, seed={self.seed})"

    def describe(self) -> str:
        return (f"every slice; R, G, B = 3 different slices drawn from z±{self.window} (seed {self.seed}), "
                "sorted; the same slices for the same seed and z")


@dataclass(frozen=True, eq=False)
class Filtered(_Mode):
    """The base mode's slices that pass *all* the given rules; channels from the base.

    Rules (``None`` / ``False``: not applied), cheapest first:

    ``z_range=(a, b)``
        ``a <= z < b``.
    ``mask``
        a 2D ``(y, x)`` or 3D ``(z, y, x)`` array (numpy, dask, zarr) in the volume's
        frame; nonzero is "inside". 3D: a slice passes if its mask slice has any pixel
        set. 2D: every slice passes if the mask has any pixel set. Either way the
        content rules below then only look at pixels inside the mask.
    ``annotated``
        a 3D labels array of the volume's shape: slices whose labels are not all zero.
    ``min_content=f`` with ``threshold=t``
        at least a fraction ``f`` of the pixels (inside the mask) have a windowed
        intensity ``(v - lo) / (hi - lo)`` (clipped to [0, 1]) of at least ``t``.
    ``not_blank=True``
        the std of the windowed intensities (inside the mask) exceeds ``BLANK_STD``.

    ``slices(volume)`` reads only the slices that survive the cheaper rules, chunk
    by chunk through dask, and caches the answer per (volume data token, window,
    mode). ``mask_name`` / ``annotated_name`` name the arrays in ``key()`` instead of
    a content fingerprint (stable across sessions for lazy arrays; the caller
    vouches that the name means the content). A mode takes its arrays as they are
    when first fingerprinted: after editing an array in place, make a new mode.
    """

    base: Any = field(default_factory=EverySlice)
    z_range: tuple | None = None
    min_content: float | None = None
    threshold: float = 0.5
    mask: Any = field(default=None, repr=False)
    mask_name: str | None = None
    annotated: Any = field(default=None, repr=False)
    annotated_name: str | None = None
    not_blank: bool = False
    name: ClassVar[str] = "filtered"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        base = make_mode(self.base) if isinstance(self.base, str) else self.base
        if not isinstance(base, _Mode):
            raise SamplingError(f"base must be a sampling mode or a mode name, got {self.base!r}")
        set_("base", base)
        if self.z_range is not None:
            try:
                a, b = self.z_range
            except (TypeError, ValueError):
                raise SamplingError(f"z_range must be (start, stop), got {self.z_range!r}") from None
            a, b = _int("z_range start", a, 0), _int("z_range stop", b, 0)
            if b <= a:
                raise SamplingError(f"z_range must have start < stop, got ({a}, {b})")
            set_("z_range", (a, b))
        if self.min_content is not None:
            set_("min_content", _fraction("min_content", self.min_content))
        set_("threshold", _fraction("threshold", self.threshold))
        set_("mask", _as_array("mask", self.mask, (2, 3)))
        set_("annotated", _as_array("annotated", self.annotated, (3,)))
        set_("not_blank", bool(self.not_blank))

    @property
    def needs_compute(self) -> bool:  # type: ignore[override]
        return (self.mask is not None or self.annotated is not None or self.min_content is not None
                or self.not_blank or self.base.needs_compute)

    def channels(self, z, n_slices) -> tuple:
        """The base's channels (for any z: whether z passes is ``slices``' business)."""
        return self.base.channels(z, n_slices)

    @cached_property
    def _fingerprints(self) -> dict:
        return {k: _fingerprint(getattr(self, k)) for k in ("mask", "annotated") if getattr(self, k) is not None}

    def key(self) -> str:
        """``filtered(base=<base key>, <rules>)``: the rules set (z_range, min_content,
        mask, annotated, not_blank), ``threshold`` always; an array by its name if
        given, else by ``_fingerprint`` (content hash; dask: the graph token)."""
        return self._key(names=True)

    def _key(self, names: bool) -> str:
        parts = [f"base={self.base.key()}"]
        if self.z_range is not None:
            parts.append(f"z_range=({self.z_range[0]}, {self.z_range[1]})")
        if self.min_content is not None:
            parts.append(f"min_content={self.min_content!r}")
        parts.append(f"threshold={self.threshold!r}")
        for k in ("mask", "annotated"):
            if getattr(self, k) is not None:
                label = getattr(self, f"{k}_name")
                parts.append(f"{k}=" + (f"name:{label}" if names and label else self._fingerprints[k]))
        if self.not_blank:
            parts.append("not_blank=True")
        return f"filtered({', '.join(parts)})"

    def __eq__(self, other):
        return type(other) is type(self) and self._key(False) == other._key(False)

    def __hash__(self):
        return hash(self._key(False))

    def describe(self) -> str:
        rules = []
        if self.z_range is not None:
            rules.append(f"z in [{self.z_range[0]}, {self.z_range[1]})")
        if self.mask is not None:
            rules.append(f"mask {self.mask_name or ''} has pixels on the slice".replace("  ", " "))
        if self.annotated is not None:
            rules.append(f"labels {self.annotated_name or ''} not all zero".replace("  ", " "))
        where = " inside the mask" if self.mask is not None else ""
        if self.min_content is not None:
            rules.append(f"≥ {self.min_content:.0%} of pixels{where} at ≥ {self.threshold:g} of the window")
        if self.not_blank:
            rules.append(f"not blank{where}")
        return f"{self.base.describe()}; only slices with " + (" and ".join(rules) if rules else "no rule (all)")

    # --- which slices pass -----------------------------------------------------
    def slices(self, volume, cache: bool = True) -> list[int]:
        vol = _as_volume(volume)
        n, shape = vol.shape[0], tuple(vol.shape)
        if self.mask is not None and tuple(self.mask.shape) != shape[3 - self.mask.ndim:]:
            raise SamplingError(f"mask has shape {tuple(self.mask.shape)}, the volume {shape}: expected "
                                f"{shape[1:]} (y, x) or {shape} (z, y, x)")
        if self.annotated is not None and tuple(self.annotated.shape) != shape:
            raise SamplingError(f"annotated has shape {tuple(self.annotated.shape)}, expected the volume's {shape}")
        token = (getattr(vol.data, "name", id(vol.data)), shape, tuple(vol.contrast_limits), self._key(False))
        if cache and token in _slice_cache:
            _slice_cache.move_to_end(token)
            return list(_slice_cache[token])
        zs = np.asarray(self.base.slices(vol), dtype=np.int64)
        if self.z_range is not None:
            zs = zs[(zs >= self.z_range[0]) & (zs < self.z_range[1])]
        zs = self._array_rules(zs)
        if zs.size and (self.min_content is not None or self.not_blank):
            zs = self._content_rules(vol, zs)
        out = [int(z) for z in zs]
        if cache:
            _slice_cache[token] = tuple(out)
            while len(_slice_cache) > _CACHE_SIZE:
                _slice_cache.popitem(last=False)
        return out

    def _array_rules(self, zs):
        checks = []
        if self.mask is not None and self.mask.ndim == 2:
            checks.append((self.mask != 0).any())
        for arr in (self.mask if self.mask is not None and self.mask.ndim == 3 else None, self.annotated):
            if arr is not None and zs.size:
                checks.append((_take(arr, zs) != 0).any(axis=(1, 2)))
        for ok in dask.compute(*checks):
            zs = zs[np.asarray(ok, dtype=bool)] if np.ndim(ok) else (zs if ok else zs[:0])
        return zs

    def _content_rules(self, vol, zs):
        lo, hi = _limits(vol.contrast_limits)
        img = _take(vol.data, zs)
        w = ((img.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))).clip(0, 1)
        if self.mask is None:
            inside = None
            count = np.float64(img.shape[1] * img.shape[2])
        else:
            m = da.asarray(self.mask)
            m = (_take(m, zs) if m.ndim == 3 else m[None]) != 0
            inside = m.rechunk(img.chunks if m.shape[0] == img.shape[0] else (1,) + img.chunks[1:])
            count = inside.sum(axis=(1, 2))
        sel = (lambda a: a) if inside is None else (lambda a: a * inside)  # noqa: E731
        stats = {"count": count}
        if self.min_content is not None:
            stats["on"] = sel(w >= np.float32(self.threshold)).sum(axis=(1, 2))
        if self.not_blank:
            stats["s1"] = sel(w).sum(axis=(1, 2), dtype=np.float64)
            stats["s2"] = sel(w * w).sum(axis=(1, 2), dtype=np.float64)
        got = dict(zip(stats, dask.compute(*stats.values())))
        count = np.maximum(np.asarray(got["count"], dtype=np.float64), 1)
        keep = np.ones(zs.shape, bool)
        if self.min_content is not None:
            keep &= got["on"] / count >= self.min_content
        if self.not_blank:
            mean = got["s1"] / count
            keep &= np.sqrt(np.maximum(got["s2"] / count - mean * mean, 0)) > BLANK_STD
        return zs[keep]


def _take(arr, zs):
    """``arr[zs]`` along z, a plain slice when ``zs`` is a run (simpler dask graphs)."""
    zs = np.asarray(zs, dtype=np.int64)
    if zs.size and zs[-1] - zs[0] == zs.size - 1 and np.all(np.diff(zs) == 1):
        return arr[int(zs[0]):int(zs[-1]) + 1]
    return arr[zs]


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


# --- images -------------------------------------------------------------------------


def _limits(contrast_limits) -> tuple:
    try:
        lo, hi = (float(v) for v in contrast_limits)
    except (TypeError, ValueError):
        raise SamplingError(f"contrast_limits must be (lo, hi), got {contrast_limits!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise SamplingError(f"contrast_limits must be finite with hi > lo, got ({lo}, {hi})")
    return lo, hi


@lru_cache(maxsize=16)
def _lut(dtype_str: str, lo: float, hi: float) -> np.ndarray:
    dtype = np.dtype(dtype_str)
    if dtype == bool:
        values = np.array([0.0, 1.0])
    else:
        info = np.iinfo(dtype)
        values = np.arange(info.min, info.max + 1, dtype=np.float64)
    return _scale(values, lo, hi)


def _scale(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The formula, in place on float64 ``f``: ``clip(rint((f - lo) * (255 / (hi - lo))), 0, 255)``."""
    f -= lo
    f *= 255.0 / (hi - lo)
    np.nan_to_num(f, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.rint(f, out=f)
    np.clip(f, 0, 255, out=f)
    return f.astype(np.uint8)


def window_to_uint8(raw, contrast_limits) -> np.ndarray:
    """Window intensities to uint8 with fixed limits (not per-slice min–max).

    ``clip(rint((raw - lo) * (255 / (hi - lo))), 0, 255)`` computed in float64 (NaN -> 0),
    for any numeric dtype: ``lo`` maps to 0, ``hi`` to 255. 8- and 16-bit integers and
    bool go through a lookup table (exactly the same numbers, faster)."""
    lo, hi = _limits(contrast_limits)
    raw = np.asarray(raw)
    if raw.dtype == bool or (raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2):
        lut = _lut(raw.dtype.str, lo, hi)
        if raw.dtype.kind == "i":  # signed: shift into table index order
            bits = np.dtype(f"u{raw.dtype.itemsize}")
            return lut[raw.view(bits) ^ bits.type(1 << (8 * raw.dtype.itemsize - 1))]
        return lut[raw.view(np.uint8) if raw.dtype == bool else raw]
    if raw.dtype.kind not in "iuf":
        raise SamplingError(f"cannot window an array of dtype {raw.dtype}")
    out = np.empty(raw.shape, np.uint8)
    flat, dst = raw.reshape(-1), out.reshape(-1)
    step = 1 << 22  # bounded float64 temporaries for huge slices
    for i in range(0, flat.size, step):
        dst[i:i + step] = _scale(flat[i:i + step].astype(np.float64), lo, hi)
    return out


def _channel_table(vol, zs, mode) -> np.ndarray:
    n = vol.shape[0]
    return np.array([mode.channels(z, n) for z in zs], dtype=np.int64).reshape(-1, 3)


def _read(vol, zs_unique) -> np.ndarray:
    """The slices ``zs_unique`` (sorted, distinct) of the volume in one dask compute."""
    return np.asarray(_take(vol.data, zs_unique).compute())


def sample_raw(volume, zs, mode) -> np.ndarray:
    """Raw channel stacks ``(B, 3, H, W)`` for the slices ``zs`` (a batch), in one read.

    The contract for the embedding code: item ``b``, channel ``c`` is slice
    ``mode.channels(zs[b], n)[c]`` of ``volume.data``, in the volume's own dtype,
    *not* windowed. Each distinct slice is read once, in a single dask compute,
    however many tuples share it. To get what SAM sees, apply
    ``volume.contrast_limits`` exactly as ``window_to_uint8`` does
    (``clip(rint((x - lo) * 255 / (hi - lo)), 0, 255)``), then SAM's own
    normalisation (pixel mean / std) — e.g. in torch on the GPU.
    """
    vol = _as_volume(volume)
    table = _channel_table(vol, np.atleast_1d(np.asarray(zs, dtype=object)).tolist(), mode)
    if table.size == 0:
        return np.empty((0, 3) + tuple(vol.shape[1:]), dtype=vol.data.dtype)
    uniq, inv = np.unique(table, return_inverse=True)
    return _read(vol, uniq)[inv.reshape(table.shape)]


def sample_image(volume, z, mode) -> np.ndarray:
    """What SAM sees for slice ``z``: ``(H, W, 3)`` uint8, channels ``mode.channels(z, n)``,
    windowed by ``volume.contrast_limits``. Reads only the (at most 3) slices needed."""
    vol = _as_volume(volume)
    table = _channel_table(vol, [z], mode)
    uniq, inv = np.unique(table[0], return_inverse=True)
    u8 = window_to_uint8(_read(vol, uniq), vol.contrast_limits)
    return np.ascontiguousarray(np.moveaxis(u8[inv.reshape(3)], 0, -1))


__all__ = [
    "BLANK_STD", "EverySlice", "Filtered", "MODES", "ModeSpec", "Param", "RandomTuples", "SamplingError",
    "SliceIndexError", "Tuples", "make_mode", "sample_image", "sample_raw", "window_to_uint8",
]
