"""The intensity window of a volume from a bounded sample (napari does not compute
contrast limits for lazy data)."""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np

log = logging.getLogger(__name__)


def dtype_range(dtype) -> tuple:
    dtype = np.dtype(dtype)
    if dtype == bool:
        return (0.0, 1.0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return (float(info.min), float(info.max))
    return (0.0, 1.0)


#: most bytes of stored chunks the intensity-window estimate decodes when a volume opens
WINDOW_BYTES = 64 * 2**20
#: side of the (y, x) patch read from each sampled chunk
WINDOW_SIDE = 512


def _chunk_around(arr, ax, centre):
    """(start, stop) of the chunk of axis ``ax`` holding ``centre``: arithmetic for a
    regular chunking (O(1) in the shape), dask's chunk table otherwise."""
    if isinstance(arr, da.Array):
        bounds = np.cumsum((0,) + arr.chunks[ax])
        k = int(np.searchsorted(bounds, centre, side="right") - 1)
        return int(bounds[k]), int(bounds[k + 1])
    c = int(arr.chunks[ax])
    k = centre // c
    return k * c, min((k + 1) * c, int(arr.shape[ax]))


def estimate_window(arr, max_chunks: int = 3, percentiles=(0.5, 99.5), budget: int = WINDOW_BYTES) -> tuple:
    """Contrast limits from percentiles of a bounded sample.

    At slices 1/4, 1/2 and 3/4 of the depth, a patch of at most WINDOW_SIDE² around the
    (y, x) centre is read, from the chunk holding it. A chunk is read only while the
    chunks read so far stay within ``budget`` bytes (64 MiB: a chunk is decoded whole),
    so opening costs at most that whatever the chunking; when no chunk fits, or the
    sample holds one value, the dtype's range is used. Non-finite values are ignored.
    ``arr`` is a dask array, or a zarr array (read directly: no dask graph).
    """
    if getattr(arr, "size", 1) == 0 or 0 in tuple(arr.shape):
        return dtype_range(arr.dtype)
    if not isinstance(arr, da.Array) and not hasattr(arr, "chunks"):  # in memory: chunk = slice
        arr = da.from_array(arr, chunks=(1,) + tuple(arr.shape[1:]))
    itemsize = np.dtype(arr.dtype).itemsize
    zs = sorted({int(arr.shape[0] * f) for f in (0.5, 0.25, 0.75)})[:max_chunks]
    boxes, spent, skipped = [], 0, 0
    for z in zs:
        sl, chunk_bytes = [slice(z, z + 1)], itemsize
        chunk_bytes *= _chunk_around(arr, 0, z)[1] - _chunk_around(arr, 0, z)[0]
        for ax in (1, 2):
            centre = int(arr.shape[ax]) // 2
            a, b = _chunk_around(arr, ax, centre)
            chunk_bytes *= b - a
            lo = max(a, centre - WINDOW_SIDE // 2)
            sl.append(slice(lo, min(b, lo + WINDOW_SIDE)))
        if spent + chunk_bytes > budget:
            skipped += 1
            continue
        spent += chunk_bytes
        boxes.append(arr[tuple(sl)])
    if not boxes:
        log.warning(
            "intensity window: the dtype's range, since one chunk is larger than the %d MiB read budget",
            budget // 2**20)
        return dtype_range(arr.dtype)
    if isinstance(arr, da.Array):
        # here and now, never on a cluster a dask client may have made the default
        sample = np.asarray(da.concatenate([b.ravel() for b in boxes]).compute(scheduler="sync"))
    else:
        sample = np.concatenate([np.asarray(b).ravel() for b in boxes])
    if sample.dtype == bool:
        return (0.0, 1.0)
    sample = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.floating) else sample
    if sample.size == 0:
        return dtype_range(arr.dtype)
    lo, hi = np.percentile(sample, percentiles)
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if not hi > lo:
        if np.issubdtype(arr.dtype, np.floating):
            return (float(lo) - 0.5, float(lo) + 0.5)
        return dtype_range(arr.dtype)
    return (float(lo), float(hi))
