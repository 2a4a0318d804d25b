"""Slices → SAM's 3-channel uint8 images, windowed with the volume's contrast limits."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .modes import SamplingError, _as_volume, _take  # noqa: F401



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
