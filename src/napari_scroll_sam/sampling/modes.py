"""Slice-sampling modes (every slice, tuples, random tuples): which slices SAM sees and
which three become R, G, B; the parameter checks every mode shares."""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass
from typing import ClassVar

import dask.array as da
import numpy as np

from ..errors import ScrollSamError
from ..io.volume import Volume, estimate_window



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



def _take(arr, zs):
    """``arr[zs]`` along z, a plain slice when ``zs`` is a run (simpler dask graphs)."""
    zs = np.asarray(zs, dtype=np.int64)
    if zs.size and zs[-1] - zs[0] == zs.size - 1 and np.all(np.diff(zs) == 1):
        return arr[int(zs[0]):int(zs[-1]) + 1]
    return arr[zs]
