"""Fragments in the Kaggle ink-detection layout.

``surface_volume/00.tif … 64.tif`` is the volume; ``mask.png`` (papyrus mask),
``inklabels.png`` (ink ground truth) and ``ir.png`` (infrared photograph) come
along as extra 2D layers over it.
"""

from __future__ import annotations

from pathlib import Path

from .tiff import _stack_files, open_slice_folder, read_slice_info
from .volume import Extra, Volume, VolumeError

EXTRAS = (("mask", "labels"), ("inklabels", "labels"), ("ir", "image"))


def open_fragment(folder: Path, *, check: str = "auto") -> Volume:
    folder = Path(folder)
    vol = open_slice_folder(folder / "surface_volume", check=check, name=folder.name)
    vol.path = folder
    for stem, kind in EXTRAS:
        candidates = [p for p in folder.glob(stem + ".*") if p.suffix.lower() in (".png", ".tif", ".tiff")]
        if not candidates:
            continue
        path = sorted(candidates)[0]
        info = read_slice_info(path)
        arr = _stack_files([path], info, folder)[0]
        if arr.ndim == 3:  # RGB(A) PNG of a mask: first channel
            arr = arr[..., 0]
        if arr.shape != vol.shape[1:]:
            raise VolumeError(f"{path}: shape {arr.shape} differs from the surface volume's slices {vol.shape[1:]}")
        if kind == "labels":
            arr = (arr > 0).astype("uint8")
        vol.extras.append(Extra(stem, arr, kind))
    vol.metadata["format"] = "fragment"
    return vol
