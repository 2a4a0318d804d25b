"""Write labels to zarr (chunked, compressed) or TIFF, atomically.

Everything is written under a temporary name beside the target and renamed
into place at the end, so a crash or a cancel never leaves a half-written file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import WriteError, atomic_output, check_output

ZARR_SUFFIXES = (".zarr",)
OME_ZARR_SUFFIXES = (".ome.zarr",)
TIFF_SUFFIXES = (".tif", ".tiff")

__all__ = ["WriteError", "write_labels", "napari_write_labels"]


def _check_labels(data, path):
    dtype = np.dtype(data.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise WriteError(f"{path}: labels must be integers, got {dtype}")
    if data.ndim not in (2, 3):
        raise WriteError(f"{path}: labels must be 2D or 3D, got shape {tuple(data.shape)}")


def write_labels(path, data, *, chunks=None, overwrite: bool = True, scale=None, translate=None,
                 unit=None, downsample: str = "nearest") -> Path:
    """Write a labels array (numpy, dask or zarr) to ``*.ome.zarr``, ``*.zarr`` or ``*.tif``.

    ``*.ome.zarr``: an NGFF 0.5 image-label with a pyramid for large volumes
    (``downsample`` ``"nearest"`` or ``"mode"``, lazily). ``*.zarr``: one zarr v3 array
    marked as labels. Both: ``chunks`` (default 64 × 256 × 256), zstd-compressed,
    written chunk by chunk from dask (a larger-than-memory array is fine). TIFF: one
    OME-TIFF, zlib-compressed. ``scale`` (voxel size, z y x), ``translate`` (physical
    position of voxel 0, as napari's) and ``unit`` go into each format's metadata, so
    the plugin's reader puts the labels back where they were (see ``io/labels.py``).
    All atomic (``io.atomic``): an existing output is replaced only by a complete one; an
    existing path that is not a zarr store / a file is refused, never replaced. Returns the path.
    """
    path = Path(path)
    name = path.name.lower()
    _check_labels(data, path)
    if not name.endswith(ZARR_SUFFIXES + TIFF_SUFFIXES):
        raise WriteError(f"{path}: unknown extension; use .ome.zarr, .zarr, .tif or .tiff")
    if path.exists() and not overwrite:
        raise WriteError(f"{path}: exists already")
    # refuses a missing or unwritable folder (a probe file) and an existing path that is not ours
    check_output(path, kind="zarr" if name.endswith(ZARR_SUFFIXES) else "TIFF")
    from .labels import _geometry
    from .volume import VolumeError

    if downsample not in ("nearest", "mode"):
        raise WriteError(f"{path}: unknown downsampling {downsample!r}; use 'nearest' or 'mode'")
    try:
        scale, translate, unit = _geometry(data.ndim, scale, translate, unit, path)
    except VolumeError as exc:
        raise WriteError(str(exc)) from None
    where = {"scale": scale, "translate": translate, "unit": unit}
    with atomic_output(path) as tmp:
        if name.endswith(OME_ZARR_SUFFIXES):
            from .labels import write_ngff

            write_ngff(tmp, _as_dask(data, chunks), chunks=_chunks(data, chunks), method=downsample,
                       name=path.name, **where)
        elif name.endswith(ZARR_SUFFIXES):
            _write_zarr(tmp, data, chunks, **where)
        else:
            _write_tiff(tmp, data, **where)
    return path


def _chunks(data, chunks):
    if chunks is None:
        chunks = (64, 256, 256)[-data.ndim:]
    return tuple(max(1, min(c, n)) for c, n in zip(chunks, data.shape))


def _as_dask(data, chunks):
    """Labels as a lazy dask array (bool becomes uint32)."""
    import dask.array as da

    dtype = np.uint32 if np.dtype(data.dtype) == bool else data.dtype
    chunks = _chunks(data, chunks)
    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data) if not hasattr(data, "chunks")
                                                                 else data, chunks=chunks)
    return arr.astype(dtype)


def _write_zarr(tmp: Path, data, chunks, **where):
    import dask.array as da
    import zarr
    from zarr.codecs import BloscCodec

    from .labels import write_marked_zarr_attrs

    arr = _as_dask(data, chunks)
    chunks = _chunks(data, chunks)
    out = zarr.create_array(store=str(tmp), shape=data.shape, chunks=chunks, dtype=arr.dtype,
                            compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
                            fill_value=0, zarr_format=3)
    write_marked_zarr_attrs(out, **where)
    da.store(arr.rechunk(chunks), out, lock=False)


def _write_tiff(tmp: Path, data, **where):
    from .labels import write_ome_tiff

    arr = np.asarray(data.compute() if hasattr(data, "compute") else data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    write_ome_tiff(tmp, arr, **where)


# npe2 writer hook -----------------------------------------------------------------


def napari_write_labels(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: a napari Labels layer to ``.ome.zarr`` / ``.zarr`` / ``.tif``,
    with the layer's scale, translate and unit."""
    p = Path(path)
    if not p.name.lower().endswith(ZARR_SUFFIXES + TIFF_SUFFIXES):
        p = p.with_name(p.name + ".zarr")
    if isinstance(data, list):  # multiscale labels: write full resolution
        data = data[0]
    meta = meta or {}
    units = meta.get("units")
    unit = str(units[-1]) if units is not None and len(units) else None
    return [str(write_labels(p, data, scale=meta.get("scale"), translate=meta.get("translate"),
                             unit=None if unit in (None, "pixel") else unit))]


def napari_write_mesh(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: a Labels layer's objects as one ``.ply`` / ``.obj`` mesh,
    vertices in the layer's world units (its scale and translate)."""
    from .mesh import write_scene

    if isinstance(data, list):
        data = data[0]
    meta = meta or {}
    ndim = getattr(data, "ndim", 0)
    p = Path(path)
    if p.suffix.lower() not in (".ply", ".obj"):
        p = p.with_name(p.name + ".ply")
    return [str(write_scene(p, data, voxel_size=tuple(meta.get("scale") or (1.0,) * ndim),
                            translate=tuple(meta.get("translate") or (0.0,) * ndim)))]
