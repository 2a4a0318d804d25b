"""Any array a format gives → (z, y, x): 2D as one slice, singleton axes dropped, one channel
of a 4D array with an obvious channel axis. Used by every format module."""

from __future__ import annotations

import dask.array as da

from .checks import VolumeError


def as_3d(arr, path, axes: str | None = None, channel: int = 0):
    """Bring an array to (z, y, x), and say how many channels it had.

    2D becomes a one-slice volume; leading singleton axes (t, c of OME-Zarr) are
    dropped; a 4D array with an obvious channel axis (``axes`` names it ``C``/``S``,
    or it is first or last and has at most 4 entries while the others are larger)
    keeps ``channel``. Anything else is an error naming the file.
    Returns ``(array, n_channels)``.
    """
    if not isinstance(arr, da.Array):
        arr = da.asarray(arr)
    axes = axes.upper() if axes else None
    shape = tuple(arr.shape)
    if arr.ndim == 2:
        return arr[None], 1
    while arr.ndim > 3 and arr.shape[0] == 1 and not (axes and axes[0] in "CS" and arr.ndim == 4):
        arr = arr[0]
        axes = axes[1:] if axes else None
    if arr.ndim == 3:
        if axes and axes[-1] in "CS" and arr.shape[-1] <= 4:
            # a single RGB(A) image: a one-slice volume of one channel
            return _pick_channel(arr, 2, channel, path)[None], arr.shape[-1]
        return arr, 1
    if arr.ndim == 4:
        cax = None
        if axes and ("C" in axes or "S" in axes):
            cax = axes.index("C") if "C" in axes else axes.index("S")
        else:
            others = lambda i: [n for j, n in enumerate(arr.shape) if j != i]
            if arr.shape[-1] <= 4 and min(others(3)) > 4:
                cax = 3
            elif arr.shape[0] <= 4 and min(others(0)) > 4:
                cax = 0
        if cax is not None:
            return _pick_channel(arr, cax, channel, path), arr.shape[cax]
    raise VolumeError(
        f"{path}: cannot read an array of shape {shape}"
        + (f" (axes {axes})" if axes else "")
        + " as a volume: expected 3 axes (z, y, x), a 2D image, or 4 axes with an obvious channel axis"
    )


def _pick_channel(arr, axis, channel, path):
    n = arr.shape[axis]
    if not 0 <= channel < n:
        raise VolumeError(f"{path}: no channel {channel}; it has {n}")
    return da.take(arr, channel, axis=axis)
