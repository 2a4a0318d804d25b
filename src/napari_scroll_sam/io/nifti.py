"""NIfTI volumes (``.nii``, ``.nii.gz``) through nibabel (the ``nifti`` extra).

Orientation: the closest canonical RAS+ orientation, as ``nibabel.as_closest_canonical``
gives it, then napari's (z, y, x) = (S, A, R): z runs inferior → superior, y posterior →
anterior, x left → right, whatever the scanner stored (the flips and axis swaps are lazy
dask views, nothing is read for them). The voxel size is the header's zooms in that order;
the original affine (origin, rotation, shear, none of them applied) and its axis codes
are kept in ``Volume.metadata``.

Laziness: an uncompressed ``.nii`` is read in slabs of ``SLAB`` slices through nibabel's
array proxy (only those bytes). A ``.nii.gz`` cannot be read in parts without decoding
everything before them, so the first read decodes the whole file once (about 1 s per
100 MB here) and keeps it in memory for later reads; the window comes from the
header's ``cal_min``/``cal_max`` when set, else from three slabs (so opening decodes it).

A ``*_seg.nii(.gz)``, ``*_label(s)``, ``*_mask`` file, or one whose intent is
``NIFTI_INTENT_LABEL``, opens as labels (``metadata["kind"] == "labels"``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import numpy as np

from .volume import Volume, VolumeError, estimate_window

SUFFIXES = (".nii", ".nii.gz")
LABEL_STEMS = ("_seg", "_label", "_labels", "_mask", "_segmentation")
SLAB = 16


def is_nifti(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(SUFFIXES)


def _load(path: Path):
    try:
        import nibabel as nib
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise VolumeError(f"{path}: reading NIfTI needs nibabel: pip install 'napari-scroll-sam[nifti]'") from exc
    try:
        img = nib.load(str(path))
        shape, affine = tuple(int(n) for n in img.shape), np.asarray(img.affine, float)
    except Exception as exc:  # noqa: BLE001 - nibabel raises several kinds for broken headers
        raise VolumeError(f"{path}: not a readable NIfTI header ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(f"{path}: not a NIfTI-1/2 image (nibabel reads it as {type(img).__name__})")
    return img, shape, affine


class _Reader:
    """Slab reads through nibabel's proxy; a gzip file is decoded once and kept."""

    def __init__(self, img, path: Path, gz: bool):
        self.proxy, self.path, self.gz = img.dataobj, path, gz
        self.whole, self.lock = None, threading.Lock()

    def __call__(self, index):
        try:
            if self.gz:
                with self.lock:
                    if self.whole is None:
                        self.whole = np.asanyarray(self.proxy)
                return np.asarray(self.whole[index])
            return np.asarray(self.proxy[index])
        except Exception as exc:  # noqa: BLE001 - truncated / corrupt data
            raise VolumeError(f"{self.path}: cannot read NIfTI voxels ({type(exc).__name__}: {exc})") from exc


def _lazy(img, path: Path, shape3, ndim: int, gz: bool, dtype, t: int = 0) -> da.Array:
    """(i, j, k) as dask, in slabs along k; ``t`` picks the volume along a 4th axis."""
    read = _Reader(img, path, gz)
    chunks = tuple((n,) for n in shape3[:2]) + (tuple(min(SLAB, shape3[2] - k) for k in range(0, shape3[2], SLAB)),)
    starts = np.cumsum((0,) + chunks[2])
    rest = ((t,) + (0,) * (ndim - 4)) if ndim > 3 else ()

    def block(block_id=None):
        k = block_id[2]
        index = (slice(None), slice(None), slice(int(starts[k]), int(starts[k + 1]))) + rest
        out = read(index[:2] if ndim == 2 else index)
        return out.reshape(out.shape[:2] + (-1,))

    st = path.stat()
    return da.map_blocks(block, chunks=chunks, dtype=dtype, meta=np.empty((0, 0, 0), dtype),
                         name=f"nifti-{path}-{st.st_mtime_ns}-{st.st_size}-t{t}")


def _squeeze(shape, path, channel):
    """(i, j, k) shape and the index of the 4th axis picked, refusing what is not a volume."""
    shape = list(shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    if len(shape) == 2:
        shape.append(1)
    if len(shape) == 3:
        return tuple(shape), 1
    if len(shape) == 4:
        if not 0 <= channel < shape[3]:
            raise VolumeError(f"{path}: no volume {channel} along the 4th axis; it has {shape[3]}")
        return tuple(shape[:3]), shape[3]
    raise VolumeError(f"{path}: NIfTI data of shape {tuple(shape)} ({len(shape)}D) is not a volume: "
                      f"expected 3 axes, or 4 with the volume picked by channel=")


def open_nifti(path, *, channel: int = 0) -> Volume:
    import nibabel as nib
    from nibabel.orientations import aff2axcodes, io_orientation

    path = Path(path)
    img, full_shape, affine = _load(path)
    shape3, n_vols = _squeeze(full_shape, path, channel)
    gz = path.name.lower().endswith(".gz")
    hdr = img.header
    if not np.all(np.isfinite(affine)):
        raise VolumeError(f"{path}: NIfTI affine is not finite")
    # the scaled dtype (scl_slope / scl_inter make floats) without reading voxels
    slope, inter = (getattr(img.dataobj, "slope", 1.0), getattr(img.dataobj, "inter", 0.0))
    dtype = img.get_data_dtype() if (slope in (1.0, None) and inter in (0.0, None)) else np.dtype(np.float64)
    if np.dtype(dtype).fields is not None or np.dtype(dtype).kind == "c":
        raise VolumeError(f"{path}: NIfTI data type {dtype} (RGB / complex) is not a grey volume")
    if not gz:  # a truncated file is found at open (one stat), not as zeros later
        need = int(getattr(img.dataobj, "offset", 0) or hdr["vox_offset"]) + int(np.prod(full_shape)) * img.get_data_dtype().itemsize
        if path.stat().st_size < need:
            raise VolumeError(f"{path}: truncated NIfTI: needs {need} bytes, has {path.stat().st_size}")
    arr = _lazy(img, path, shape3, len(full_shape), gz, dtype, t=channel if n_vols > 1 else 0)
    ornt = io_orientation(affine)
    for ax, (_, flip) in enumerate(ornt):
        if flip < 0:
            arr = da.flip(arr, ax)
    perm = [int(i) for i in np.argsort(ornt[:, 0])]  # array axes in R, A, S order
    zooms = [float(z) for z in hdr.get_zooms()[:3]]
    zooms = [z if np.isfinite(z) and z > 0 else 1.0 for z in zooms + [1.0] * (3 - len(zooms))]
    arr = arr.transpose(perm).transpose(2, 1, 0)  # (R, A, S) → (S, A, R)
    voxel = tuple(zooms[perm[i]] for i in (2, 1, 0))
    unit = {"mm": "mm", "micron": "µm", "meter": "m"}.get(hdr.get_xyzt_units()[0], "mm")
    stem = path.name[: -len(".nii.gz")] if gz else path.name[: -len(".nii")]
    intent = hdr.get_intent()[0] if hasattr(hdr, "get_intent") else ""
    is_labels = (stem.lower().endswith(LABEL_STEMS) or intent == "label") and np.issubdtype(dtype, np.integer)
    cal = (float(hdr["cal_min"]), float(hdr["cal_max"]))
    if is_labels:
        window = (0.0, 1.0)  # a Labels layer has no window
    elif cal[1] > cal[0] and all(np.isfinite(cal)):
        window = cal
    else:
        window = estimate_window(arr)
    return Volume(levels=[arr], voxel_size=voxel, unit=unit, contrast_limits=window, path=path,
                  n_channels=n_vols, channel=channel if n_vols > 1 else 0,
                  metadata={"format": "nifti", "kind": "labels" if is_labels else "image",
                            "affine": affine.tolist(), "axcodes": "".join(aff2axcodes(affine)),
                            "orientation": "RAS+ closest canonical, (z, y, x) = (S, A, R)",
                            "compressed": gz, "nibabel": nib.__version__})
