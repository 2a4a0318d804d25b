"""``Filtered``: the base mode's slices that pass all the given rules (z range, mask,
annotated, content, not blank), computed in one pass over the slices and memoised."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np

from .images import _limits
from .modes import EverySlice, SamplingError, _as_array, _as_volume, _fingerprint, _fraction, _int, _Mode, _take

#: ``not_blank``: a slice is blank when the std of its windowed intensities (in [0, 1]) is at most this
BLANK_STD = 1e-3
_CACHE_SIZE = 64
_slice_cache: OrderedDict = OrderedDict()


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
        if isinstance(self.base, str):
            from . import make_mode  # the registry knows every mode
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
