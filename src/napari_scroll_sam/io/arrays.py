"""In-memory arrays as volumes: ``open_volume(array, voxel_size=…, window=…)``.

numpy, dask and zarr arrays (and anything array-like with ``shape``/``dtype``/
``__getitem__``, such as a napari layer's data) become the same lazy ``Volume`` a
file gives: 2D is a one-slice volume, 4D needs an obvious channel axis, and the
window is estimated from at most three chunks when not given, as for files.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from .axes import as_3d
from .volume import Volume, VolumeError, estimate_window


def is_array(obj) -> bool:
    return isinstance(obj, (np.ndarray, da.Array)) or (
        all(hasattr(obj, a) for a in ("shape", "dtype", "__getitem__")) and not isinstance(obj, (str, bytes)))


def is_layer(obj) -> bool:
    """A napari Image layer, by its attributes (core code does not import napari)."""
    return all(hasattr(obj, a) for a in ("data", "scale", "translate", "contrast_limits", "multiscale")) \
        and not is_array(obj)


def open_layer(layer, *, channel: int = 0) -> Volume:
    """A napari image layer as a ``Volume``: its data (all levels), scale as voxel size, contrast
    limits as window, translate as the crop offset (in voxels, rounded)."""
    import dataclasses

    data = list(layer.data) if layer.multiscale else layer.data
    scale = tuple(float(s) for s in layer.scale)[-3:]
    vol = open_array(data, voxel_size=scale if len(scale) == 3 else None, window=tuple(layer.contrast_limits),
                     name=str(layer.name), channel=channel)
    translate = tuple(float(t) for t in layer.translate)[-3:]
    if len(translate) == 3:
        vol = dataclasses.replace(vol, offset=tuple(int(round(t / s)) for t, s in zip(translate, vol.voxel_size)))
    return vol


def _check_voxel(voxel_size, name):
    if voxel_size is None:
        return (1.0, 1.0, 1.0), "pixel"
    vs = np.broadcast_to(np.asarray(voxel_size, dtype=float), (3,)) if np.ndim(voxel_size) == 0 else \
        np.asarray(voxel_size, dtype=float)
    if vs.shape != (3,) or not np.all(np.isfinite(vs)) or not np.all(vs > 0):
        raise VolumeError(f"{name}: voxel_size {voxel_size!r} must be one or three finite positive numbers (z, y, x)")
    return tuple(float(v) for v in vs), None


def open_array(arr, *, voxel_size=None, window=None, unit: str | None = None, name: str = "array",
               channel: int = 0, chunks=None) -> Volume:
    """A lazy ``Volume`` over an in-memory (or zarr) array; see the module docstring."""
    if isinstance(arr, list):  # a napari multiscale layer's data: full resolution first
        levels = [open_array(a, voxel_size=voxel_size, window=window, name=name, channel=channel).data
                  for a in arr]
        vol = open_array(arr[-1], voxel_size=voxel_size, window=window, unit=unit, name=name, channel=channel)
        vol.levels = levels
        return vol
    dtype = np.dtype(arr.dtype)
    if dtype.kind not in "biuf":
        raise VolumeError(f"{name}: arrays of dtype {dtype} cannot be a volume (need bool, integer or float)")
    voxel, default_unit = _check_voxel(voxel_size, name)
    lazy = arr if isinstance(arr, da.Array) else da.from_array(arr, chunks=chunks or "auto",
                                                             asarray=not hasattr(arr, "chunks"))
    lazy, n_channels = as_3d(lazy, name, channel=channel)
    sources = [arr] if (getattr(arr, "ndim", 0) == 3 and not isinstance(arr, (np.ndarray, da.Array))
                        and hasattr(arr, "chunks")) else []
    metadata = {"format": "array", "array_type": type(arr).__module__ + "." + type(arr).__name__}
    if isinstance(arr, np.ndarray) and dtype.kind == "f":  # in memory already: count what is not finite
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad and bad == arr.size:
            raise VolumeError(f"{name}: every voxel is NaN or infinite")
        if bad:
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            metadata["non_finite"] = bad
            metadata["first_non_finite"] = first
    if window is None:
        window = estimate_window(lazy)  # ignores NaN / inf
    else:
        window = tuple(float(w) for w in window)
        if len(window) != 2 or not (np.all(np.isfinite(window)) and window[1] > window[0]):
            raise VolumeError(f"{name}: window {window!r} must be two finite numbers, low < high")
    return Volume(levels=[lazy], voxel_size=voxel, unit=unit or default_unit or "µm", contrast_limits=window,
                  name=name, n_channels=n_channels, channel=channel, sources=sources, metadata=metadata)
