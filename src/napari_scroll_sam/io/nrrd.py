"""NRRD volumes (the Vesuvius volumetric instance-label cubes are ``*.nrrd``).

Raw-encoded data is memory-mapped and read chunk by chunk; compressed (gzip,
bzip2) data cannot be read in parts, so it is one chunk, decoded on first use.
A ``*_volume.nrrd`` with a ``*_mask.nrrd`` (or ``*_labels.nrrd``) beside it
brings that file along as a labels layer.
"""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np

from .axes import as_3d
from .volume import Extra, Volume, VolumeError, estimate_window

CHUNK = 128


def _header(path: Path):
    import nrrd

    try:
        with open(path, "rb") as fh:
            header = nrrd.read_header(fh)
            data_start = fh.tell()
    except Exception as exc:  # noqa: BLE001 - pynrrd raises several kinds
        raise VolumeError(f"{path}: not a readable NRRD header ({type(exc).__name__}: {exc})") from exc
    return header, data_start


def read_nrrd_lazy(path: Path) -> tuple[da.Array, dict]:
    """The array of an NRRD file in C order (napari's z, y, x) and its header."""
    import nrrd

    path = Path(path)
    header, data_start = _header(path)
    sizes = [int(s) for s in header["sizes"]][::-1]  # NRRD lists the fastest axis first
    try:
        dtype = np.dtype(nrrd.reader._determine_datatype(header))
    except Exception as exc:  # noqa: BLE001
        raise VolumeError(f"{path}: unsupported NRRD type {header.get('type')!r}") from exc
    encoding = header.get("encoding", "raw")
    if "data file" in header or "datafile" in header:
        raise VolumeError(f"{path}: detached NRRD data files are not supported; point at a .nrrd with its data inside")
    nbytes = int(np.prod(sizes)) * dtype.itemsize
    if encoding == "raw":
        size = path.stat().st_size
        offset = _data_offset(path, header, data_start, size, nbytes)
        if size - offset < nbytes:
            raise VolumeError(f"{path}: truncated NRRD: needs {nbytes} bytes of data, has {size - offset}")
        if size - offset > nbytes:
            raise VolumeError(f"{path}: its header declares sizes {[int(v) for v in header['sizes']]} ({nbytes} bytes of "
                              f"{dtype}) but the file holds {size - offset} bytes of data after the header; "
                              f"which part is the volume is not guessed")
        mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(sizes))
        arr = da.from_array(mm, chunks=(CHUNK,) * len(sizes), name=f"nrrd-{path}-{size}")
    else:
        def load():
            try:
                data, _ = nrrd.read(str(path), index_order="C")
            except Exception as exc:  # noqa: BLE001
                raise VolumeError(f"{path}: cannot decode NRRD data ({type(exc).__name__}: {exc})") from exc
            return data

        arr = da.from_delayed(dask.delayed(load)(), shape=tuple(sizes), dtype=dtype)
    return arr, header


def _data_offset(path, header, data_start, size, nbytes) -> int:
    """Where raw data starts: after the header, ``line skip`` lines and ``byte skip`` bytes;
    ``byte skip: -1`` means the data is the last ``nbytes`` of the file (NRRD spec)."""
    try:
        byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
        line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    except (TypeError, ValueError):
        raise VolumeError(f"{path}: 'byte skip' / 'line skip' are not integers") from None
    if byte_skip == -1:
        return max(size - nbytes, data_start)
    offset = data_start
    if line_skip > 0:
        with open(path, "rb") as fh:
            fh.seek(data_start)
            for _ in range(line_skip):
                fh.readline()
            offset = fh.tell()
    return offset + max(byte_skip, 0)


def _spacing(header) -> tuple:
    if header.get("space directions") is not None:
        dirs = header["space directions"]
        norms = []
        for d in dirs:
            d = np.asarray(d, dtype=float)
            norms.append(float(np.linalg.norm(d)) if np.all(np.isfinite(d)) else 1.0)
        return tuple(norms[::-1])
    if header.get("spacings") is not None:
        return tuple(float(s) if np.isfinite(s) else 1.0 for s in header["spacings"])[::-1]
    return (1.0,) * int(header.get("dimension", 3))


def open_nrrd(path: Path) -> Volume:
    path = Path(path)
    arr, header = read_nrrd_lazy(path)
    arr3, _ = as_3d(arr, path)
    spacing = _spacing(header)[-3:]
    spacing = (1.0,) * (3 - len(spacing)) + tuple(spacing)
    extras = []
    stem = path.name[: -len(".nrrd")] if path.name.endswith(".nrrd") else path.stem
    for suffix in ("_volume",):
        if stem.endswith(suffix):
            base = stem[: -len(suffix)]
            for other in ("_mask", "_labels", "_label"):
                partner = path.with_name(base + other + ".nrrd")
                if partner.is_file():
                    lab, _ = read_nrrd_lazy(partner)
                    lab3, _ = as_3d(lab, partner)
                    if lab3.shape != arr3.shape:
                        raise VolumeError(f"{partner}: shape {lab3.shape} differs from {path.name} {arr3.shape}")
                    extras.append(Extra(base + other, lab3, "labels"))
    window = estimate_window(arr3) if header.get("encoding", "raw") == "raw" else _dtype_or_estimate(arr3)
    return Volume(levels=[arr3], voxel_size=spacing, contrast_limits=window, path=path, extras=extras,
                  unit=_unit(header), metadata={"format": "nrrd", "encoding": header.get("encoding", "raw")})


#: NRRD's anatomical spaces: medical tools (3D Slicer, ITK) read their coordinates in millimetres
ANATOMICAL = {"right-anterior-superior", "ras", "left-anterior-superior", "las", "left-posterior-superior", "lps",
              "right-anterior-superior-time", "left-anterior-superior-time", "left-posterior-superior-time",
              "scanner-xyz", "3d-right-handed", "3d-left-handed"}


def _unit(header) -> str:
    """The voxel size's unit: ``space units`` when the header gives one unit for every axis,
    millimetres in an anatomical ``space``, else "pixel"."""
    units = header.get("space units")
    if units is not None:
        names = {str(u).strip().strip('"') for u in (units if isinstance(units, (list, tuple)) else [units])}
        if len(names) == 1 and next(iter(names)):
            return next(iter(names))
    return "mm" if str(header.get("space", "")).strip().lower() in ANATOMICAL else "pixel"


def _dtype_or_estimate(arr):
    # compressed: the window costs one full decode; it is only 256³ for Vesuvius cubes
    return estimate_window(arr)
