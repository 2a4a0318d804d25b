"""Openers for what ``volume.open_volume`` does not read itself: in-memory arrays,
``http(s)://`` / ``s3://`` URLs, NIfTI files; and ``voxel_size=`` / ``window=``
overrides for any format. ``volume.py`` calls ``open_more`` first and
``detect_more`` from ``detect_format``: this module is the one place these formats
are recognised (no import circle: it imports their modules only when used).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .volume import VolumeError


def detect_more(p: Path) -> str | None:
    from .nifti import is_nifti

    return "nifti" if is_nifti(Path(p)) else None


def open_more(source, *, channel: int = 0, voxel_size=None, window=None, passthrough: dict | None = None,
              **options):
    """A ``Volume`` for an array, a URL, a NIfTI file or a path with overrides; else None."""
    from .arrays import is_array, is_layer, open_array, open_layer
    from .remote import is_url

    if is_layer(source):
        _no_options(options, str(getattr(source, "name", "layer")))
        return _override(open_layer(source, channel=channel), voxel_size, window)

    if is_array(source) or (isinstance(source, list) and source and is_array(source[0])):
        _no_options(options, "an array")
        return open_array(source, voxel_size=voxel_size, window=window, channel=channel,
                          **({"name": options.pop("name")} if "name" in options else {}))
    if is_url(source):
        from .remote import open_remote

        vol = open_remote(str(source), channel=channel, **options)
        return _override(vol, voxel_size, window)
    if not isinstance(source, (str, os.PathLike)):
        raise VolumeError(f"{source!r}: not a path, URL or array (got {type(source).__name__})")
    _no_options(options, str(source))
    p = Path(source).expanduser()
    from .labels import labels_info

    info = labels_info(p) if p.exists() else None
    if info is not None and info.levels[0].ndim == 3:  # the plugin's labels: placed where they were
        return _override(info.volume(), voxel_size, window)
    if detect_more(p) == "nifti":
        from .nifti import open_nifti

        return _override(open_nifti(p, channel=channel), voxel_size, window)
    if voxel_size is not None or window is not None:
        from .volume import open_volume

        return _override(open_volume(p, channel=channel, **(passthrough or {})), voxel_size, window)
    return None


def _no_options(options, what):
    if options:
        raise VolumeError(f"{what}: options {sorted(options)} apply to URLs only")


def _override(vol, voxel_size, window):
    if voxel_size is None and window is None:
        return vol
    from .arrays import _check_voxel

    changes = {}
    if voxel_size is not None:
        changes["voxel_size"], _ = _check_voxel(voxel_size, vol.path or vol.name)
    if window is not None:
        w = tuple(float(v) for v in window)
        if len(w) != 2 or not w[1] > w[0]:
            raise VolumeError(f"{vol.path or vol.name}: window {window!r} must be two numbers, low < high")
        changes["contrast_limits"] = w
    return dataclasses.replace(vol, **changes)
