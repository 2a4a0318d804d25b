"""Opening any volume: ``open_volume`` and ``detect_format``, with the one registry of openers.

``OPENERS`` lists, in the order they are tried, each on-disk format: its name, how it is
recognised (names and metadata files only) and how it is opened. A format module is
imported only when its format is opened (the format modules import ``volume``, never this
module at import time: no import circle). Before the registry: in-memory arrays and napari
layers, ``http(s)://`` / ``s3://`` URLs, the plugin's own labels, and the ``voxel_size=`` /
``window=`` overrides for any format. ``register(Opener(...))`` adds a format.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from .slices import SLICE_SUFFIXES, TIFF_SUFFIXES
from .volume import Volume, VolumeError


@dataclasses.dataclass(frozen=True)
class Opener:
    """A format: ``detect(path) -> bool`` and ``open(path, channel=, volume=, check=) -> Volume``."""

    kind: str
    detect: Callable[[Path], bool]
    open: Callable[..., Volume]


def _is_zarr(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in ("zarr.json", ".zarray", ".zgroup"))


def _is_nifti(p: Path) -> bool:
    from .nifti import is_nifti

    return is_nifti(p)


def _has_slices(p: Path) -> bool:
    try:
        with os.scandir(p) as it:
            return any(e.is_file() and e.name.lower().endswith(SLICE_SUFFIXES) for e in it)
    except OSError:
        return False


def _name_ends(*suffixes):
    return lambda p: p.is_file() and p.name.lower().endswith(suffixes)


def _open_zarr(p, channel=0, **_):
    from .zarr import open_zarr
    return open_zarr(p, channel=channel)


def _open_tiff(p, channel=0, **_):
    from .tiff import open_tiff_file
    return open_tiff_file(p, channel=channel)


def _open_nrrd(p, **_):
    from .nrrd import open_nrrd
    return open_nrrd(p)


def _open_nifti(p, channel=0, **_):
    from .nifti import open_nifti
    return open_nifti(p, channel=channel)


def _open_volpkg(p, channel=0, volume=None, check="auto"):
    from .volpkg import open_volpkg
    return open_volpkg(p, volume=volume, channel=channel, check=check)


def _open_fragment(p, check="auto", **_):
    from .fragment import open_fragment
    return open_fragment(p, check=check)


def _open_slices(p, channel=0, check="auto", **_):
    from .tiff import open_slice_folder
    return open_slice_folder(p, channel=channel, check=check)


def _open_image(p, channel=0, **_):
    from .tiff import open_image_file
    return open_image_file(p, channel=channel)


#: the on-disk formats, in the order they are tried
OPENERS: list[Opener] = [
    Opener("nifti", _is_nifti, _open_nifti),
    Opener("tiff", _name_ends(*TIFF_SUFFIXES, ".ome.tif"), _open_tiff),
    Opener("nrrd", _name_ends(".nrrd", ".nhdr"), _open_nrrd),
    Opener("image", _name_ends(".png", ".jpg", ".jpeg", ".bmp"), _open_image),
    Opener("zarr", _is_zarr, _open_zarr),
    Opener("volpkg", lambda p: p.is_dir() and (p.suffix.lower() == ".volpkg" or (p / "volumes").is_dir()
                                               and (p / "config.json").is_file()), _open_volpkg),
    Opener("fragment", lambda p: (p / "surface_volume").is_dir(), _open_fragment),
    Opener("slices", lambda p: p.is_dir() and _has_slices(p), _open_slices),
]


def register(opener: Opener, before: str | None = None) -> None:
    """Add a format (tried before the format named ``before``, else last)."""
    OPENERS[:] = [o for o in OPENERS if o.kind != opener.kind]
    kinds = [o.kind for o in OPENERS]
    OPENERS.insert(kinds.index(before) if before in kinds else len(OPENERS), opener)


def detect_format(p: Path) -> str | None:
    """Which reader fits ``p`` (looking at names and metadata files only), or None."""
    p = Path(p)
    if not p.exists():
        return None
    for o in OPENERS:
        if o.detect(p):
            return o.kind
    return None


def open_volume(path: str | os.PathLike, *, level_chunks=None, channel: int = 0, volume: str | None = None,
                check: str = "auto", voxel_size=None, window=None, **options) -> Volume:
    """Open a volume lazily, whatever its format.

    Parameters
    ----------
    path
        A folder of numbered 2D slices (TIFF or PNG, natural order, optional
        Vesuvius ``meta.json``), a ``*.volpkg`` folder, a fragment folder
        (``surface_volume/``, ``mask.png``, ``inklabels.png``, ``ir.png``), a
        multipage / BigTIFF / OME-TIFF file, a zarr array or group (v2 or v3,
        OME-Zarr pyramids included), or an NRRD file.
    channel
        For 4D data with a channel axis: which channel becomes the volume.
    volume
        For a ``*.volpkg`` holding several volumes: which one (default: the first).
    check
        Slice folders: ``"auto"`` checks every slice's size on disk and reads the
        header of one slice per distinct size; ``"all"`` reads every header.
    voxel_size, window
        Override the voxel size (z, y, x) and the intensity window; for arrays,
        the window is estimated from the data when not given.
    options
        For URLs: ``retries``, ``backoff``, ``timeout``, ``chunk_cache``,
        ``storage_options`` (see ``io/remote.py``).

    Also: ``http(s)://`` / ``s3://`` zarr URLs, NIfTI files and numpy / dask / zarr
    arrays, through ``io/open.py``.

    Raises
    ------
    VolumeError
        Naming the file or folder and what is wrong.
    """
    more = open_more(path, channel=channel, voxel_size=voxel_size, window=window,
                     passthrough={"volume": volume, "check": check}, **options)
    if more is not None:
        return more
    p = Path(path).expanduser()
    if not p.exists():
        raise VolumeError(f"{p}: no such file or folder")
    kind = detect_format(p)
    if kind is None:
        raise VolumeError(f"{p}: not a volume this plugin can read (no slices, zarr, TIFF or NRRD found)")
    opener = next(o for o in OPENERS if o.kind == kind)
    return opener.open(p, channel=channel, volume=volume, check=check)


def open_more(source, *, channel: int = 0, voxel_size=None, window=None, passthrough: dict | None = None,
              **options):
    """A ``Volume`` for an array, a layer, a URL, the plugin's labels or a path with overrides;
    else None (then the registry opens ``source``)."""
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
    if voxel_size is not None or window is not None:
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
