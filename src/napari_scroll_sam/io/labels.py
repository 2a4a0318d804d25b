"""Labels that come back where they were: OME-Zarr (NGFF image-label), marked zarr, OME-TIFF.

Writing (called by ``writer.write_labels``, inside its atomic temporary-then-rename):

- ``*.ome.zarr``: an NGFF 0.5 image-label (zarr v3): a ``multiscales`` group with
  ``image-label`` metadata, levels ``0``, ``1``, … downsampled by 2 (nearest or mode,
  lazily, chunk by chunk through dask) while the largest axis exceeds ``PYRAMID_MIN``,
  each level's ``scale`` and ``translation`` in physical units. The metadata is written
  by ome-zarr-py (``write_multiscales_metadata``, which validates it); the arrays by
  zarr/dask directly, so a larger-than-memory labels array is never loaded whole.
- ``*.zarr``: one zarr v3 array, with ``attrs["napari_scroll_sam"] = {"kind": "labels",
  "scale", "translate", "unit"}``.
- ``*.tif``: an OME-TIFF (uint32 fits OME, not ImageJ) with ``PhysicalSize{X,Y,Z}``,
  the first plane's ``Position{X,Y,Z}`` as the translate, and a description marking
  it as labels.

Reading: ``labels_info(path)`` says whether a path holds labels (NGFF image-label, a
marked array, a marked OME-TIFF) and with which scale and translate, from metadata only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .volume import VolumeError

MARK = "napari_scroll_sam"
TIFF_MARK = "napari-scroll-sam labels"
PYRAMID_MIN = 256  # add levels while the largest axis is larger than this
NGFF_UNITS = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter"}


@dataclasses.dataclass
class LabelsInfo:
    """Where a labels file's voxels sit: per-level arrays and physical placement."""

    path: Path
    levels: list
    scale: tuple
    translate: tuple
    unit: str | None = None
    format: str = "zarr"
    name: str = ""

    def layer_data(self) -> list:
        """napari layer-data tuples: one Labels layer with scale and translate."""
        meta = {"name": self.name or self.path.name, "scale": self.scale, "translate": self.translate,
                "multiscale": len(self.levels) > 1, "metadata": {"path": str(self.path), "format": self.format}}
        if self.unit and self.unit != "pixel":
            meta["units"] = (NGFF_UNITS.get(self.unit, self.unit),) * len(self.scale)
        data = self.levels if len(self.levels) > 1 else self.levels[0]
        return [(data, meta, "labels")]

    def volume(self):
        """The labels as a ``Volume`` (3D): voxel size = scale, offset = translate / scale
        rounded to voxels (the exact translate is in ``metadata["translate"]``)."""
        from .volume import Volume

        offset = tuple(int(round(t / s)) for t, s in zip(self.translate, self.scale))
        unit = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm"}.get(self.unit, self.unit)
        return Volume(levels=list(self.levels), voxel_size=self.scale, unit=unit or "pixel",
                      contrast_limits=(0.0, 1.0), path=self.path, offset=offset, name=self.name or self.path.name,
                      metadata={"format": self.format, "kind": "labels", "translate": list(self.translate)})


# --- geometry ---------------------------------------------------------------------


def _geometry(ndim, scale, translate, unit, path):
    scale = tuple(float(s) for s in (scale if scale is not None else (1.0,) * ndim))[-ndim:]
    translate = tuple(float(t) for t in (translate if translate is not None else (0.0,) * ndim))[-ndim:]
    if len(scale) != ndim or len(translate) != ndim:
        raise VolumeError(f"{path}: scale {scale} / translate {translate} do not match {ndim}D labels")
    if not all(np.isfinite(s) and s > 0 for s in scale) or not all(np.isfinite(t) for t in translate):
        raise VolumeError(f"{path}: scale {scale} must be finite and positive, translate {translate} finite")
    unit = None if unit in (None, "", "pixel") else str(unit)
    return scale, translate, unit


def pyramid(data, scale, translate, *, method: str = "nearest", min_size: int = PYRAMID_MIN, max_levels: int = 8):
    """Lazy pyramid levels ``[(array, scale, translate), …]``, full resolution first.

    Each level halves the finest axes (those within 1.5× of the smallest voxel size, so
    anisotropic data is first made closer to isotropic) while the largest axis is over
    ``min_size``. ``nearest`` keeps every other voxel (voxel centres stay put); ``mode``
    takes the most frequent label of each block (the centre moves by half a block).
    """
    import dask.array as da

    if method not in ("nearest", "mode"):
        raise VolumeError(f"labels pyramid: unknown downsampling {method!r}; use 'nearest' or 'mode'")
    arr = data if isinstance(data, da.Array) else da.asarray(data)
    out = [(arr, tuple(scale), tuple(translate))]
    while len(out) < max_levels and max(arr.shape) > min_size:
        cur_scale, cur_tr = out[-1][1], out[-1][2]
        finest = min(s for s, n in zip(cur_scale, arr.shape) if n > 1)
        f = tuple(2 if (n > 1 and s <= 1.5 * finest) else 1 for s, n in zip(cur_scale, arr.shape))
        if method == "nearest":
            arr = arr[tuple(slice(None, None, k) for k in f)]
            tr = cur_tr
        else:
            arr = da.coarsen(_mode_reduce, arr[tuple(slice(0, (n // k) * k) for n, k in zip(arr.shape, f))],
                             dict(enumerate(f)), trim_excess=True)
            tr = tuple(t + (k - 1) * s / 2 for t, k, s in zip(cur_tr, f, cur_scale))
        out.append((arr, tuple(s * k for s, k in zip(cur_scale, f)), tr))
    return out


def _mode_reduce(block, axis=None):
    """Most frequent value over ``axis`` (the block axes of ``da.coarsen``); ties → smaller."""
    if axis is None:  # dask asks for its meta
        return block
    keep = [i for i in range(block.ndim) if i not in axis]
    moved = np.transpose(block, keep + list(axis))
    flat = moved.reshape(moved.shape[:len(keep)] + (-1,))
    srt = np.sort(flat, axis=-1)
    counts = (srt[..., :, None] == srt[..., None, :]).sum(-1)
    return np.take_along_axis(srt, counts.argmax(-1)[..., None], axis=-1)[..., 0]


# --- writers (to a temporary path; writer.write_labels renames) ----------------------


def _compressor():
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def _store(arr, out, chunks):
    import dask.array as da

    da.store(arr.rechunk(chunks), out, lock=False)


def write_ngff(tmp: Path, data, *, chunks, scale=None, translate=None, unit=None, method="nearest",
               name: str | None = None, min_size: int = PYRAMID_MIN) -> None:
    """An NGFF 0.5 image-label pyramid at ``tmp`` (see the module docstring)."""
    import dask.array as da
    import zarr

    try:
        from ome_zarr.format import FormatV05
        from ome_zarr.writer import add_metadata, write_multiscales_metadata
    except ImportError as exc:
        from .writer import WriteError

        raise WriteError(f"{tmp.name.split('.tmp-')[0].lstrip('.')}: writing OME-Zarr labels needs ome-zarr: "
                         "pip install 'napari-scroll-sam[ome]' (or save as .zarr / .tif)") from exc

    arr = data if isinstance(data, da.Array) else da.asarray(data)
    scale, translate, unit = _geometry(arr.ndim, scale, translate, unit, tmp)
    axes_names = "zyx"[-arr.ndim:]
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    datasets = []
    for i, (level, sc, tr) in enumerate(pyramid(arr, scale, translate, method=method, min_size=min_size)):
        ch = tuple(max(1, min(c, n)) for c, n in zip(chunks, level.shape))
        out = root.create_array(str(i), shape=level.shape, chunks=ch, dtype=level.dtype, fill_value=0,
                                compressors=_compressor(), dimension_names=list(axes_names))
        _store(level, out, ch)
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": list(sc)}, {"type": "translation", "translation": list(tr)}]})
    axes = [{"name": a, "type": "space", **({"unit": NGFF_UNITS.get(unit, unit)} if unit else {})}
            for a in axes_names]
    fmt = FormatV05()
    write_multiscales_metadata(root, datasets, fmt=fmt, axes=axes, name=name or tmp.name)
    add_metadata(root, {"image-label": {"version": fmt.version}}, fmt=fmt)


def write_marked_zarr_attrs(arr, *, scale=None, translate=None, unit=None) -> None:
    """Mark a written plain zarr array as labels, with its placement."""
    scale, translate, unit = _geometry(arr.ndim, scale, translate, unit, getattr(arr, "store_path", "zarr"))
    arr.attrs[MARK] = {"kind": "labels", "scale": list(scale), "translate": list(translate), "unit": unit}


def write_ome_tiff(tmp: Path, arr: np.ndarray, *, scale=None, translate=None, unit=None) -> None:
    import tifffile

    scale, translate, unit = _geometry(arr.ndim, scale, translate, unit, tmp)
    if arr.ndim == 2:
        arr, scale, translate = arr[None], (1.0,) + scale, (0.0,) + translate
    u = unit or "pixel"  # OME's unit for an unknown size ("pixel" is a valid UnitsLength)
    nz = arr.shape[0]
    meta = {"axes": "ZYX", "Name": tmp.name, "Description": TIFF_MARK + " " + json.dumps({"unit": unit}),
            "PhysicalSizeZ": scale[0], "PhysicalSizeY": scale[1], "PhysicalSizeX": scale[2],
            "PhysicalSizeZUnit": u, "PhysicalSizeYUnit": u, "PhysicalSizeXUnit": u,
            "Plane": {"PositionZ": [translate[0] + i * scale[0] for i in range(nz)],
                      "PositionY": [translate[1]] * nz, "PositionX": [translate[2]] * nz,
                      "PositionZUnit": [u] * nz, "PositionYUnit": [u] * nz, "PositionXUnit": [u] * nz}}
    tifffile.imwrite(tmp, arr, ome=True, compression="zlib", bigtiff=arr.nbytes > 2**31, metadata=meta)


# --- reading ------------------------------------------------------------------------


def labels_info(path) -> LabelsInfo | None:
    """The labels held at ``path`` (metadata only), or None when it is not labels."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir() and any((p / n).is_file() for n in ("zarr.json", ".zattrs", ".zarray", ".zgroup")):
        return _zarr_labels(p)
    if p.is_file() and name.endswith((".tif", ".tiff")):
        return _tiff_labels(p)
    return None


def _attrs(node) -> dict:
    attrs = dict(node.attrs)
    return attrs.get("ome", attrs) if isinstance(attrs.get("ome"), dict) else attrs


def _zarr_labels(p: Path) -> LabelsInfo | None:
    import dask.array as da
    import zarr

    try:
        node = zarr.open(store=str(p), mode="r")
    except Exception:  # noqa: BLE001 - not our business: open_volume will say what is wrong
        return None
    attrs = _attrs(node)
    if isinstance(node, zarr.Array):
        mark = attrs.get(MARK)
        if not (isinstance(mark, dict) and mark.get("kind") == "labels"):
            return None
        scale, translate, unit = _geometry(node.ndim, mark.get("scale"), mark.get("translate"), mark.get("unit"), p)
        return LabelsInfo(p, [da.from_zarr(node)], scale, translate, unit, format="zarr")
    if "image-label" not in attrs or not attrs.get("multiscales"):
        return None
    ms = attrs["multiscales"][0]
    try:
        arrays = [node[d["path"]] for d in ms["datasets"]]
    except KeyError as exc:
        raise VolumeError(f"{p}: its multiscales metadata names a level {exc} that is not in the group") from exc
    ndim = arrays[0].ndim
    scale, translate = [1.0] * ndim, [0.0] * ndim
    for t in ms["datasets"][0].get("coordinateTransformations", []) or []:
        if t.get("type") == "scale":
            scale = t["scale"]
        elif t.get("type") == "translation":
            translate = t["translation"]
    units = [a.get("unit") for a in ms.get("axes", []) if isinstance(a, dict) and a.get("unit")]
    spatial = min(ndim, 3)
    levels = [da.from_zarr(a) for a in arrays]
    while levels[0].ndim > 3 and levels[0].shape[0] == 1:  # t / c singleton axes
        levels = [lv[0] for lv in levels]
    scale, translate, unit = _geometry(levels[0].ndim, scale[-spatial:], translate[-spatial:],
                                       units[-1] if units else None, p)
    return LabelsInfo(p, levels, scale, translate, unit, format="ome-zarr")


def _tiff_labels(p: Path) -> LabelsInfo | None:
    import dask.array as da
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(p)
    except Exception:  # noqa: BLE001
        return None
    try:
        if not (tif.is_ome and tif.ome_metadata and TIFF_MARK in tif.ome_metadata):
            return None
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
        image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
        px = image["Pixels"]
        plane = px.get("Plane")
        plane = plane[0] if isinstance(plane, list) else (plane or {})
        scale = tuple(float(px.get(f"PhysicalSize{a}", 1.0)) for a in "ZYX")
        translate = tuple(float(plane.get(f"Position{a}", 0.0)) for a in "ZYX")
        desc = str(image.get("Description", ""))
        unit = json.loads(desc[len(TIFF_MARK):]).get("unit") if desc.startswith(TIFF_MARK) else None
        arr = da.from_zarr(zarr.open_array(tif.series[0].aszarr(), mode="r"))
    finally:
        tif.close()
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr, scale, translate = arr[0], scale[1:], translate[1:]
    return LabelsInfo(p, [arr], *_geometry(arr.ndim, scale, translate, unit, p), format="ome-tiff")


def image_labels(image_path) -> list[LabelsInfo]:
    """The image-labels an NGFF image lists in its ``labels/`` group (metadata only)."""
    import zarr

    folder = Path(image_path) / "labels"
    if not folder.is_dir():
        return []
    try:
        names = _attrs(zarr.open_group(str(folder), mode="r")).get("labels", [])
    except Exception:  # noqa: BLE001 - no readable labels group: nothing to add
        return []
    found = []
    for name in names:
        info = labels_info(folder / str(name))
        if info is not None:
            info.name = f"{Path(image_path).name} {name}"
            found.append(info)
    return found
