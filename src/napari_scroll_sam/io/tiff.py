"""Slice folders (TIFF, PNG…), single images, and multipage / BigTIFF / OME-TIFF files.

A slice folder becomes one dask chunk per slice, or finer for large slices:
a 7888 x 8096 Vesuvius slice is read tile by tile (tiled TIFF) or strip by
strip (striped TIFF) through tifffile's zarr store, so a 512² crop reads only
the strips or tiles that hold it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile

from .checks import check_voxel_size, checked_dask, stat_signature
from .axes import as_3d
from .slices import TIFF_SUFFIXES, list_slices
from .volume import Volume, VolumeError, estimate_window

# A slice bigger than this (bytes) is split into row blocks / tiles.
MAX_SLICE_CHUNK_BYTES = 32 * 2**20
MAX_HEADERS = 256


class SliceInfo:
    """What the header of one 2D slice file says: shape, dtype, layout."""

    __slots__ = ("shape", "dtype", "tiled", "block", "end")

    def __init__(self, shape, dtype, tiled=False, block=None, end=0):
        self.shape, self.dtype, self.tiled, self.block, self.end = tuple(shape), np.dtype(dtype), tiled, block, end


def read_slice_info(path: Path) -> SliceInfo:
    """Header of a slice (no pixels): raises VolumeError naming the file if unreadable."""
    path = Path(path)
    if path.name.lower().endswith(TIFF_SUFFIXES):
        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                shape, dtype = page.shape, page.dtype
                tiled = bool(page.is_tiled)
                block = (page.tilelength, page.tilewidth) if tiled else (page.rowsperstrip, None)
                offsets, counts = page.dataoffsets, page.databytecounts
                end = max((o + c for o, c in zip(offsets, counts)), default=0)
        except (tifffile.TiffFileError, OSError, ValueError, struct_error()) as exc:
            raise VolumeError(f"{path}: not a readable TIFF ({exc})") from exc
        size = path.stat().st_size
        if end > size:
            raise VolumeError(f"{path}: truncated TIFF: its pixel data ends at byte {end} but the file has {size} bytes")
        if dtype is None:
            raise VolumeError(f"{path}: TIFF with an unsupported sample format")
        return SliceInfo(shape, dtype, tiled, block, end)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            shape, dtype = _pil_shape_dtype(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise VolumeError(f"{path}: not a readable image ({exc})") from exc
    return SliceInfo(shape, dtype)


def struct_error():
    import struct

    return struct.error


def _pil_shape_dtype(im):
    modes = {"1": np.bool_, "L": np.uint8, "P": np.uint8, "I;16": np.uint16, "I;16B": np.uint16,
             "I": np.int32, "F": np.float32}
    w, h = im.size
    if im.mode in modes:
        return (h, w), modes[im.mode]
    bands = len(im.getbands())
    return (h, w, bands), np.uint8


def read_image(path: Path, region=None) -> np.ndarray:
    """Pixels of a 2D image file, optionally only ``region`` = (slice_y, slice_x).

    TIFFs are read through tifffile's zarr store so only the strips / tiles of the
    region are decoded; other formats are decoded whole.
    """
    path = Path(path)
    try:
        if path.name.lower().endswith(TIFF_SUFFIXES):
            if region is None:
                return tifffile.imread(path, key=0)
            import zarr

            with tifffile.imread(path, key=0, aszarr=True) as store:
                return zarr.open_array(store, mode="r")[region]
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
        if im.mode == "P":
            arr = arr.astype(np.uint8)
        return arr if region is None else arr[region]
    except VolumeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder error becomes one clear message
        raise VolumeError(f"{path}: cannot read pixels ({type(exc).__name__}: {exc})") from exc


def _slice_chunks(info: SliceInfo, itemsize: int):
    """Chunking (y, x) for one slice: whole slice if small, else along strips/tiles."""
    h, w = info.shape[:2]
    if h * w * itemsize <= MAX_SLICE_CHUNK_BYTES:
        return (h, w)
    if info.tiled:
        th, tw = info.block
        return (min(h, th * max(1, 1024 // th)), min(w, tw * max(1, 1024 // tw)))
    rows = max(1, MAX_SLICE_CHUNK_BYTES // 4 // (w * itemsize))
    rps = info.block[0] or rows
    rows = max(rps, (rows // rps) * rps) if rps < h else rows
    return (min(h, rows), w)


def _stack_files(files, info: SliceInfo, folder: Path) -> da.Array:
    """A lazy (z, y, x[, c]) stack of same-shaped 2D files: one task per chunk."""
    cy, cx = _slice_chunks(info, info.dtype.itemsize)
    h, w = info.shape[:2]
    chunks = ((1,) * len(files), _split(h, cy), _split(w, cx)) + tuple((n,) for n in info.shape[2:])
    files = [str(f) for f in files]
    whole = cy == h and cx == w

    def load(block_info=None):
        loc = block_info[None]["array-location"]
        z = loc[0][0]
        region = None if whole else (slice(*loc[1]), slice(*loc[2]))
        arr = read_image(Path(files[z]), region)
        want = tuple(b - a for a, b in loc[1:]) if region is not None else info.shape
        if arr.shape[: len(want)] != tuple(want) or arr.dtype != info.dtype:
            raise VolumeError(
                f"{files[z]}: slice {z} of {folder} has shape {arr.shape} and dtype {arr.dtype}, "
                f"but the first slice has {info.shape} {info.dtype}"
            )
        return arr[None]

    return da.map_blocks(load, chunks=chunks, dtype=info.dtype, meta=np.empty((0,) * len(chunks), info.dtype))


def _split(n, c):
    return tuple(min(c, n - i) for i in range(0, n, c))


def check_slices(files, folder: Path, check: str = "auto") -> SliceInfo:
    """Read the first slice's header and check the others agree, reading few headers.

    ``auto``: every file's size on disk is compared (a stat, no read); the header of
    one file per distinct size is read (at most MAX_HEADERS, spread over the stack).
    Uncompressed slices of one shape have one size, so a different size is the odd
    one. ``all``: every header is read. Slices not checked here are checked when read.
    """
    first = read_slice_info(files[0])
    if len(first.shape) > 2 and not (len(first.shape) == 3 and first.shape[2] <= 4):
        raise VolumeError(f"{files[0]}: a slice of shape {first.shape} is not a 2D image")
    if check == "all":
        todo = list(range(1, len(files)))
    else:
        sizes = {}
        for i, f in enumerate(files):
            sizes.setdefault(os.stat(f).st_size, []).append(i)
        todo = sorted(idx[0] for idx in sizes.values())
        if len(todo) > MAX_HEADERS:
            todo = sorted(set(np.linspace(1, len(files) - 1, MAX_HEADERS).astype(int).tolist()))
        todo = [i for i in todo if i] + ([len(files) - 1] if len(files) > 1 else [])
    for i in sorted(set(todo)):
        info = read_slice_info(files[i])
        if info.shape != first.shape or info.dtype != first.dtype:
            raise VolumeError(
                f"{files[i]}: slice {i} of {folder} has shape {info.shape} and dtype {info.dtype}, "
                f"but the first slice {Path(files[0]).name} has {first.shape} {first.dtype}"
            )
    return first


def read_meta(folder: Path) -> dict:
    """The Vesuvius ``meta.json`` beside the slices, or {}."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise VolumeError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise VolumeError(f"{meta_path}: expected a JSON object")
    return meta


def open_slice_folder(folder: Path, *, channel: int = 0, check: str = "auto", name: str | None = None) -> Volume:
    """A folder of numbered 2D slices (``00000.tif``…, or PNG) as a lazy volume."""
    folder = Path(folder)
    files = list_slices(folder)
    if not files:
        raise VolumeError(f"{folder}: empty folder (no image slices in it)")
    info = check_slices(files, folder, check)
    arr, n_channels = as_3d(_stack_files(files, info, folder), folder, axes="ZYXC"[: 3 + (len(info.shape) == 3)],
                            channel=channel)
    meta = read_meta(folder)
    if meta:
        _check_meta(meta, folder, arr.shape)
    where = folder / "meta.json"
    voxel = None
    if meta.get("voxelsize") is not None:
        voxel = check_voxel_size([meta["voxelsize"]], f"{where}: key 'voxelsize'")[0]
    lo, hi = (_meta_number(meta, k, where) for k in ("min", "max"))
    if lo is not None and hi is not None and hi > lo:
        window = (lo, hi)
    else:
        window = estimate_window(arr)
    paths = [str(f) for f in files]
    return Volume(
        levels=[arr],
        voxel_size=(voxel,) * 3 if voxel else (1.0, 1.0, 1.0),
        unit="µm" if voxel else "pixel",
        contrast_limits=window,
        path=folder,
        name=name or folder.name,
        n_channels=n_channels,
        channel=channel,
        metadata={"format": "slices", "files": len(files), "meta": meta},
        signers=[lambda z, ys, xs: f"{paths[z]}:{stat_signature(paths[z])}"],
    )


def _meta_number(meta, key, where):
    """A number of meta.json (None when absent); anything else names the file and the key."""
    value = meta.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise VolumeError(f"{where}: key {key!r} is {value!r}, not a number") from None
    if not np.isfinite(number):
        raise VolumeError(f"{where}: key {key!r} is {value!r}, not a finite number")
    return number


def _check_meta(meta, folder, shape):
    for key, axis in (("slices", 0), ("height", 1), ("width", 2)):
        n = _meta_number(meta, key, folder / "meta.json")
        if n is not None and n != shape[axis]:
            raise VolumeError(
                f"{folder / 'meta.json'}: says {key}={meta[key]} but the folder holds "
                f"{shape[axis]} ({'slices' if axis == 0 else 'pixels'})"
            )


def open_image_file(path: Path, *, channel: int = 0) -> Volume:
    """A single 2D image (PNG…) as a one-slice volume."""
    info = read_slice_info(path)
    arr, n_channels = as_3d(_stack_files([path], info, path.parent), path,
                            axes="ZYXC"[: 3 + (len(info.shape) == 3)], channel=channel)
    return Volume(levels=[arr], contrast_limits=estimate_window(arr), path=path, n_channels=n_channels,
                  channel=channel, metadata={"format": "image"})


def open_tiff_file(path: Path, *, channel: int = 0) -> Volume:
    """A multipage / BigTIFF / OME-TIFF / ImageJ hyperstack file, read through its zarr store."""
    import zarr

    path = Path(path)
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, OSError, ValueError, struct_error()) as exc:
        raise VolumeError(f"{path}: not a readable TIFF ({exc})") from exc
    with tif:
        if not tif.series:
            raise VolumeError(f"{path}: TIFF holds no image series")
        series = tif.series[0]
        axes = series.axes
        _check_not_truncated(tif, path)
        voxel, unit = _tiff_voxel_size(tif, series)
        store = series.aszarr()
    root = zarr.open(store, mode="r")
    if isinstance(root, zarr.Array):
        arrays = [root]
    else:
        keys = sorted((k for k, _ in root.arrays()), key=lambda k: int(k) if k.isdigit() else k)
        arrays = [root[k] for k in keys]
    levels, n_channels = [], 1
    for arr in arrays:
        lazy = checked_dask(arr, path)
        lazy, n_channels = as_3d(lazy, path, axes=axes, channel=channel)
        levels.append(lazy)
    return Volume(
        levels=levels,
        voxel_size=voxel,
        unit=unit,
        contrast_limits=_window(levels[-1], path),
        path=path,
        n_channels=n_channels,
        channel=channel,
        metadata={"format": "tiff", "axes": axes, "pages": len(series.pages)},
    )


def _window(arr, path):
    try:
        return estimate_window(arr)
    except Exception as exc:  # noqa: BLE001 - a decoder error while sampling the window
        raise VolumeError(f"{path}: cannot read pixels ({type(exc).__name__}: {exc})") from exc


def _check_not_truncated(tif, path):
    """Pixel data that ends past the end of the file: the series (contiguous) or its first/last page."""
    size = path.stat().st_size
    series = tif.series[0]
    ends = []
    if series.dataoffset is not None:
        ends.append(series.dataoffset + series.nbytes)
    pages = series.pages
    for page in (pages[0], pages[-1]) if len(pages) else ():
        offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
        ends.append(max((o + c for o, c in zip(offsets, counts)), default=0))
    end = max(ends, default=0)
    if end > size:
        raise VolumeError(f"{path}: truncated TIFF: its pixel data ends at byte {end} but the file has {size} bytes")


def _tiff_voxel_size(tif, series):
    """(z, y, x) voxel size and unit from OME or ImageJ metadata, else ones."""
    import re

    if tif.is_ome and tif.ome_metadata:
        sizes = []
        for ax in "ZYX":
            m = re.search(rf'PhysicalSize{ax}="([0-9.eE+-]+)"', tif.ome_metadata)
            sizes.append(float(m.group(1)) if m else None)
        if any(sizes):
            m = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
            return tuple(s or 1.0 for s in sizes), (m.group(1) if m else "µm")
    ij = tif.imagej_metadata
    # ImageJ's "inch" is a print resolution (dots per inch), not a voxel size
    if ij and ij.get("unit") not in (None, "", "inch", "pixel"):
        page = tif.pages.first
        res = page.tags.get("XResolution")
        xy = None
        if res is not None and res.value[0]:
            xy = res.value[1] / res.value[0]
        z = ij.get("spacing")
        if z or xy:
            unit = {"um": "µm", "micron": "µm", "\\u00B5m": "µm"}.get(ij["unit"], ij["unit"])
            return (float(z or xy or 1.0), float(xy or 1.0), float(xy or 1.0)), unit
    return (1.0, 1.0, 1.0), "pixel"
