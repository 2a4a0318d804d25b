"""Write labels to zarr (chunked, compressed) or TIFF, atomically.

Everything is written under a temporary name beside the target and renamed
into place at the end, so a crash or a cancel never leaves a half-written file.
"""

from __future__ import annotations
from ..errors import ScrollSamError

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

ZARR_SUFFIXES = (".zarr",)
TIFF_SUFFIXES = (".tif", ".tiff")


class WriteError(ScrollSamError, ValueError):
    """Labels cannot be written; names the path and what is wrong."""


def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``; a previous ``path`` (file or folder) is replaced."""
    if path.is_dir() and not path.is_symlink():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _check_labels(data, path):
    dtype = np.dtype(data.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise WriteError(f"{path}: labels must be integers, got {dtype}")
    if data.ndim not in (2, 3):
        raise WriteError(f"{path}: labels must be 2D or 3D, got shape {tuple(data.shape)}")


def write_labels(path, data, *, chunks=None, overwrite: bool = True) -> Path:
    """Write a labels array (numpy, dask or zarr) to ``*.zarr`` or ``*.tif``.

    zarr: format 3, ``chunks`` (default 64 × 256 × 256), zstd-compressed, written
    chunk by chunk from dask (a larger-than-memory array is fine). TIFF: one
    multipage file, zlib-compressed. Both atomic. Returns the written path.
    """
    path = Path(path)
    name = path.name.lower()
    _check_labels(data, path)
    if not path.parent.is_dir():
        raise WriteError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise WriteError(f"{path}: exists already")
    if not os.access(path.parent, os.W_OK):
        raise WriteError(f"{path}: folder {path.parent} is not writable")
    tmp = _tmp_beside(path)
    try:
        if name.endswith(ZARR_SUFFIXES):
            _write_zarr(tmp, data, chunks)
        elif name.endswith(TIFF_SUFFIXES):
            _write_tiff(tmp, data)
        else:
            raise WriteError(f"{path}: unknown extension; use .zarr, .tif or .tiff")
        _replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
    return path


def _write_zarr(tmp: Path, data, chunks):
    import dask.array as da
    import zarr
    from zarr.codecs import BloscCodec

    dtype = np.uint32 if np.dtype(data.dtype) == bool else data.dtype
    if chunks is None:
        chunks = (64, 256, 256)[-data.ndim:]
    chunks = tuple(min(c, n) for c, n in zip(chunks, data.shape))
    out = zarr.create_array(store=str(tmp), shape=data.shape, chunks=chunks, dtype=dtype,
                            compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
                            fill_value=0, zarr_format=3)
    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data) if not hasattr(data, "chunks")
                                                                 else data, chunks=chunks)
    da.store(arr.astype(dtype).rechunk(chunks), out, lock=False)


def _write_tiff(tmp: Path, data):
    import tifffile

    arr = np.asarray(data.compute() if hasattr(data, "compute") else data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    tifffile.imwrite(tmp, arr, compression="zlib", bigtiff=arr.nbytes > 2**31,
                     metadata={"axes": "ZYX"[-arr.ndim:]})


# npe2 writer hook -----------------------------------------------------------------


def napari_write_labels(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: a napari Labels layer to ``.zarr`` / ``.tif``."""
    p = Path(path)
    if not p.name.lower().endswith(ZARR_SUFFIXES + TIFF_SUFFIXES):
        p = p.with_name(p.name + ".zarr")
    if isinstance(data, list):  # multiscale labels: write full resolution
        data = data[0]
    return [str(write_labels(p, data))]
