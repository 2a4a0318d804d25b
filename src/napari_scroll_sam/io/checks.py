"""Guards every format uses: voxel sizes, source signatures, chunk counts, and reads
whose errors name the file and the chunk."""

from __future__ import annotations

import hashlib
import os

import dask.array as da
import numpy as np

from ..errors import ScrollSamError


class VolumeError(ScrollSamError, ValueError):
    """A volume cannot be opened; the message names the file and what is wrong."""


VolumeError.__module__ = "napari_scroll_sam.io.volume"  # where users import it from


def check_voxel_size(values, where: str) -> tuple:
    """Voxel sizes must be finite numbers > 0; ``where`` names the file and the key."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise VolumeError(f"{where}: {v!r} is not a number") from None
        if not (np.isfinite(f) and f > 0):
            raise VolumeError(f"{where}: {list(values)} holds {v!r}; voxel sizes must be finite and > 0")
        out.append(f)
    return tuple(out)


def stat_signature(path) -> str:
    """``size:mtime_ns`` of a file or folder (``missing`` when it is gone): one stat."""
    try:
        st = os.stat(path)
    except OSError:
        return f"missing:{path}"
    return f"{st.st_size}:{st.st_mtime_ns}"


#: most dask chunks a volume (level) may have: dask enumerates every chunk key on each
#: compute, so a hostile declared shape of 10^9 per axis would cost minutes and GBs
MAX_CHUNKS = 2**22


def check_chunk_count(shape, chunks, path) -> None:
    """Refuse, before any dask array is built, a shape/chunking with more than MAX_CHUNKS chunks."""
    n = 1
    for size, c in zip(shape, chunks):
        n *= -(-int(size) // max(int(c), 1))
    if n > MAX_CHUNKS:
        raise VolumeError(f"{path}: declares shape {tuple(int(v) for v in shape)} in chunks of "
                          f"{tuple(int(c) for c in chunks)}: {n:.3g} chunks, more than the {MAX_CHUNKS} this "
                          f"plugin can index; rechunk it into larger chunks")


class _Checked:
    """A zarr-like array whose read errors (corrupt chunk, missing file) become a
    VolumeError naming the file and the region read."""

    def __init__(self, arr, path):
        self.arr, self.path = arr, path
        self.shape, self.dtype, self.ndim = tuple(arr.shape), np.dtype(arr.dtype), len(arr.shape)

    def __getitem__(self, key):
        try:
            return np.asarray(self.arr[key])
        except VolumeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any codec / store error becomes one clear message
            region = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                               for k in (key if isinstance(key, tuple) else (key,)))
            first = str(exc).strip().splitlines()
            raise VolumeError(f"{self.path}: cannot read the chunk(s) at [{region}] "
                              f"({type(exc).__name__}: {first[0] if first else 'no message'})") from exc


def checked_dask(arr, path, name: str | None = None) -> da.Array:
    """``da.from_zarr`` for a zarr (or zarr-like) array, with read errors naming the file."""
    chunks = tuple(int(c) for c in getattr(arr, "chunks", arr.shape))
    check_chunk_count(arr.shape, chunks, path)
    token = name or f"checked-{getattr(arr, 'path', '')}-{path}"
    token = "zarr-" + hashlib.sha1(f"{token}:{arr.shape}:{arr.dtype}:{chunks}".encode()).hexdigest()[:16]
    return da.from_array(_Checked(arr, path), chunks=chunks, name=token, asarray=False, fancy=False,
                         meta=np.empty((0,) * len(chunks), np.dtype(arr.dtype)))
