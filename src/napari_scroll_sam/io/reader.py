"""npe2 reader: every format ``open_volume`` reads, as napari layers.

``get_reader`` answers from names and metadata files only and returns None
(never raises) for what it cannot read; the returned function opens lazily.
Labels (NGFF image-labels, zarr arrays marked as labels, the plugin's OME-TIFF
labels, labels NIfTI) open as Labels layers with their scale and translate;
``http(s)://`` and ``s3://`` URLs open through ``io/remote.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .open import detect_format, open_volume
from .volume import Volume


def get_reader(path):
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        from .remote import is_url

        if is_url(path):
            return read_volume if ".zarr" in str(path).lower() else None
        p = Path(path)
        if p.is_file() and p.suffix.lower() in (".ply", ".obj"):
            from .mesh import surface_layer

            return surface_layer
        if not p.exists() or detect_format(p) is None:
            return None
    except Exception:  # noqa: BLE001 - get_reader must never raise
        return None
    return read_volume


def read_volume(path):
    if isinstance(path, (list, tuple)):
        path = path[0]
    from .labels import labels_info
    from .remote import is_url

    info = None if is_url(path) else labels_info(path)
    if info is not None:
        return info.layer_data()
    vol = open_volume(path)
    if vol.metadata.get("kind") == "labels" or looks_like_labels(vol):  # *_seg.nii.gz, cells_labels.tif, …
        meta = {"name": vol.name, "scale": vol.voxel_size, "translate": vol.translate,
                "multiscale": vol.multiscale, "metadata": {"path": str(vol.path)}}
        if vol.unit not in ("", "pixel"):
            meta["units"] = (vol.unit.replace("µm", "micrometer"),) * 3
        return [(vol.layer_data, meta, "labels")]
    layers = volume_layers(vol)
    for c in range(1, vol.n_channels):
        layers.extend(volume_layers(open_volume(path, channel=c), extras=False))
    if vol.metadata.get("format") == "ome-zarr" and vol.path is not None:
        from .labels import image_labels

        for info in image_labels(vol.path):  # an NGFF image's labels/ (image-label groups)
            layers.extend(info.layer_data())
    return layers


LABEL_NAME = re.compile(r"(^|[_\-. ])(labels?|inklabels|masks?|seg|segmentation|instances)([_\-. ]|$)", re.I)


def looks_like_labels(vol: Volume) -> bool:
    """Integer data of one channel whose file is named like labels (``labels.tif``,
    ``cells_mask.nrrd``, ``labels.zarr``): a Labels layer, with the file's voxel size."""
    dtype = np.dtype(vol.dtype)
    return (vol.n_channels == 1 and (np.issubdtype(dtype, np.integer) or dtype == bool)
            and not vol.extras and bool(LABEL_NAME.search(vol.name or "")))


def volume_layers(vol: Volume, extras: bool = True) -> list:
    """napari layer-data tuples for a volume: the image (multiscale when it has a
    pyramid) with ``scale`` from the voxel size and explicit ``contrast_limits``,
    then its extra layers (fragment mask / ink labels / IR image, NRRD labels)."""
    name = vol.name if vol.n_channels == 1 else f"{vol.name} [c{vol.channel}]"
    meta = {"name": name, "scale": vol.voxel_size, "translate": vol.translate,
            "contrast_limits": list(vol.contrast_limits), "multiscale": vol.multiscale,
            "metadata": {"volume": vol, "path": str(vol.path)}}
    if vol.unit not in ("", "pixel"):
        meta["units"] = (vol.unit.replace("µm", "micrometer"),) * 3
    layers = [(vol.layer_data, meta, "image")]
    if extras:
        for extra in vol.extras:
            extra_meta = {"name": f"{vol.name} {extra.name}", "scale": vol.voxel_size[-extra.data.ndim:],
                          "translate": vol.translate[-extra.data.ndim:]}
            if extra.kind == "image":
                from .volume import estimate_window

                data2 = extra.data if extra.data.ndim == 3 else extra.data[None]
                extra_meta["contrast_limits"] = list(estimate_window(data2))
            layers.append((extra.data, extra_meta, extra.kind))
    return layers
