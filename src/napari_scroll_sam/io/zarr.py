"""Zarr arrays, groups and OME-Zarr ``multiscales`` pyramids (zarr format 2 and 3).

The Vesuvius ``volumes_zarr_standardized/*.zarr`` layout (OME-Zarr 0.4 on zarr
v2, uint8, 128³ chunks, ``/`` nested chunk keys, levels ``0``…``5``) becomes a
napari multiscale image. Only metadata is read at open, plus a few chunks of the
coarsest level for the intensity window.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import zarr

from .checks import check_voxel_size, checked_dask, stat_signature
from .axes import as_3d
from .volume import Volume, VolumeError, estimate_window


def _open(path: Path, store=None):
    try:
        return zarr.open(store=str(path) if store is None else store, mode="r")
    except VolumeError:  # a remote store's own error (io/remote.py) names the URL already
        raise
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds
        raise VolumeError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from exc


def _multiscales(group) -> dict | None:
    attrs = dict(group.attrs)
    ms = attrs.get("ome", attrs).get("multiscales") if isinstance(attrs.get("ome", attrs), dict) else None
    return ms[0] if ms else None


def _scale_of(dataset: dict, ndim: int) -> list | None:
    for t in dataset.get("coordinateTransformations", []) or []:
        if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            return list(t["scale"])
    return None


def open_zarr(path: Path, *, channel: int = 0, store=None) -> Volume:
    """Open a zarr array, group or OME-Zarr pyramid lazily (``store``: a remote store, ``path`` its URL)."""
    path = Path(path) if store is None else path
    node = _open(path, store)
    axes = None
    voxel, unit = (1.0, 1.0, 1.0), "pixel"
    fmt = "zarr"
    if isinstance(node, zarr.Array):
        arrays = [node]
        axes = _axes_from_attrs(node)
    else:
        ms = _multiscales(node)
        if ms:
            fmt = "ome-zarr"
            try:
                arrays = [node[d["path"]] for d in ms["datasets"]]
            except KeyError as exc:
                raise VolumeError(f"{path}: its multiscales metadata names a level {exc} that is not in the group") from exc
            names = [a.get("name", "") if isinstance(a, dict) else str(a) for a in ms.get("axes", [])]
            axes = "".join(n[:1].upper() for n in names) or None
            for i, arr in enumerate(arrays[1:], start=1):
                if arr.ndim != arrays[0].ndim:
                    raise VolumeError(f"{path}: pyramid level {i} ({ms['datasets'][i]['path']!r}) has {arr.ndim} "
                                      f"axes but level 0 has {arrays[0].ndim}")
            scale = _scale_of(ms["datasets"][0], arrays[0].ndim)
            if scale:
                spatial = scale[-3:] if len(scale) >= 3 else [1.0] * (3 - len(scale)) + scale
                voxel = check_voxel_size(spatial, f"{path}: multiscales datasets[0] coordinateTransformations "
                                                  f"'scale' {scale}")
                units = [a.get("unit") for a in ms.get("axes", []) if isinstance(a, dict) and a.get("unit")]
                unit = _short_unit(units[-1]) if units else unit
        else:
            arrays = _first_arrays(node, path)
            axes = _axes_from_attrs(arrays[0])
    levels, n_channels = [], 1
    for arr in arrays:
        lazy, n_channels = as_3d(checked_dask(arr, path), path, axes=axes, channel=channel)
        levels.append(lazy)
    for i in range(1, len(levels)):
        if any(b > a for a, b in zip(levels[i - 1].shape, levels[i].shape)):
            raise VolumeError(f"{path}: pyramid level {i} {levels[i].shape} is larger than level {i - 1} "
                              f"{levels[i - 1].shape}")
    direct = arrays if all(a.ndim == 3 for a in arrays) else []  # zarr arrays napari can slice as they are
    try:
        window = _window_from_attrs(node) or estimate_window(direct[-1] if direct else levels[-1])
    except VolumeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt chunk read for the window
        first = str(exc).strip().splitlines()
        raise VolumeError(f"{path}: cannot read a chunk of the coarsest level for the intensity window "
                          f"({type(exc).__name__}: {first[0] if first else 'no message'})") from exc
    return Volume(levels=levels, voxel_size=voxel, unit=unit, contrast_limits=window, path=path,
                  n_channels=n_channels, channel=channel, sources=direct,
                  signers=[chunk_signer(a, path) for a in arrays],
                  metadata={"format": fmt, "zarr_format": _fmt(arrays[0])})


def chunk_signer(arr, path):
    """Signature of the stored chunks (shards) slice z's region touches: one stat per chunk
    file (a missing chunk, read as the fill value, signs as missing). For a store that is not
    a local folder, or an array with more than 3 axes: its metadata file's stat only."""
    root = getattr(arr.store, "root", None)
    base = Path(root) / arr.path if root is not None and arr.path else (Path(root) if root is not None else None)
    meta = None if base is None else next((base / n for n in ("zarr.json", ".zarray") if (base / n).is_file()), None)
    if base is None or arr.ndim != 3:
        return lambda z, ys, xs: "" if meta is None else stat_signature(meta)
    grid = tuple(int(c) for c in (getattr(arr, "shards", None) or arr.chunks))
    encode = arr.metadata.encode_chunk_key

    def sign(z, ys, xs):
        kz = z // grid[0]
        h = hashlib.sha1()
        for ky in range(ys[0] // grid[1], (ys[1] - 1) // grid[1] + 1):
            for kx in range(xs[0] // grid[2], (xs[1] - 1) // grid[2] + 1):
                h.update(stat_signature(base / encode((kz, ky, kx))).encode())
        return h.hexdigest()[:16]

    return sign


def _fmt(arr) -> int:
    return int(getattr(arr.metadata, "zarr_format", 0) or 0)


def _first_arrays(group, path):
    """A plain group: its first array (by name), searching nested groups breadth-first."""
    queue = [group]
    while queue:
        g = queue.pop(0)
        arrays = sorted(g.arrays(), key=lambda kv: kv[0])
        if arrays:
            # several arrays of decreasing size named like levels: a pyramid without metadata
            if all(k.isdigit() for k, _ in arrays) and len(arrays) > 1:
                arrays = sorted(arrays, key=lambda kv: int(kv[0]))
                return [a for _, a in arrays if a.ndim == arrays[0][1].ndim]
            return [arrays[0][1]]
        queue.extend(sub for _, sub in sorted(g.groups(), key=lambda kv: kv[0]))
    raise VolumeError(f"{path}: zarr group with no arrays in it")


def _axes_from_attrs(arr) -> str | None:
    dims = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
    if dims and all(dims):
        return "".join(str(d)[:1].upper() for d in dims)
    return None


def _window_from_attrs(node) -> tuple | None:
    attrs = dict(node.attrs)
    omero = attrs.get("ome", attrs).get("omero") if isinstance(attrs.get("ome", attrs), dict) else None
    try:
        w = omero["channels"][0]["window"]
        lo, hi = float(w["start"]), float(w["end"])
        return (lo, hi) if hi > lo else None
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def _short_unit(unit: str) -> str:
    return {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm"}.get(unit, unit)
