"""The lazy ``Volume`` and ``open_volume``: one entry point for every format.

Opening a volume reads metadata and at most a few small chunks (for the
intensity window). Pixels are read by dask, chunk by chunk, when a view or a
computation asks for them.
"""

from __future__ import annotations
from ..errors import ScrollSamError

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import dask.array as da
import numpy as np

from .checks import (VolumeError, check_chunk_count, check_voxel_size, checked_dask,  # noqa: F401 - re-exported
                     stat_signature)
from .window import WINDOW_BYTES, dtype_range, estimate_window  # noqa: F401 - re-exported


@dataclasses.dataclass
class Extra:
    """A layer that comes with a volume (a fragment's mask, ink labels, IR image).

    ``kind`` is ``"image"`` or ``"labels"``; ``data`` is a lazy array (2D or 3D)
    in the volume's (y, x) frame.
    """

    name: str
    data: Any
    kind: str = "image"


@dataclasses.dataclass
class Volume:
    """A lazily read 3D volume, axes (z, y, x).

    Attributes
    ----------
    data : dask.array.Array
        Full-resolution voxels, axes (z, y, x).
    levels : list of dask.array.Array
        Pyramid levels, full resolution first (one element without a pyramid).
    voxel_size : (float, float, float)
        Size of a full-resolution voxel along (z, y, x), in ``unit``.
    contrast_limits : (float, float)
        Intensity window (from metadata, or percentiles of a few chunks).
    path : Path
        Where it was opened from.
    """

    levels: list
    voxel_size: tuple = (1.0, 1.0, 1.0)
    contrast_limits: tuple | None = None  # None: estimated from ≤ 3 chunks of the coarsest level
    path: Path | None = None
    unit: str = "pixel"
    name: str = ""
    offset: tuple = (0, 0, 0)
    extras: list = dataclasses.field(default_factory=list)
    choices: list = dataclasses.field(default_factory=list)
    n_channels: int = 1
    channel: int = 0
    metadata: dict = dataclasses.field(default_factory=dict)
    #: array-likes behind ``levels`` that napari can slice directly (zarr arrays), or []
    sources: list = dataclasses.field(default_factory=list, repr=False)
    #: per level: ``signer(z, (y0, y1), (x0, x1)) -> str``, a cheap signature of the stored
    #: bytes slice ``z`` of that level is read from (see ``slice_signature``), or []
    signers: list = dataclasses.field(default_factory=list, repr=False)

    def __post_init__(self):
        self.levels = [a if isinstance(a, da.Array) else da.asarray(a) for a in self.levels]
        self.voxel_size = tuple(float(v) for v in self.voxel_size)
        if self.contrast_limits is None and self.levels:
            self.contrast_limits = estimate_window(self.levels[-1])
        self.contrast_limits = tuple(float(v) for v in self.contrast_limits)
        self.offset = tuple(int(v) for v in self.offset)
        if self.path is not None:
            self.path = Path(self.path)
        if not self.name and self.path is not None:
            self.name = self.path.name
        for i, level in enumerate(self.levels):
            if level.ndim != 3:
                raise VolumeError(f"{self.path}: level {i} has {level.ndim} axes, expected 3 (z, y, x)")
        check_voxel_size(self.voxel_size, f"{self.path}: voxel size")

    # --- shape and geometry -------------------------------------------------
    @property
    def data(self) -> da.Array:
        return self.levels[0]

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def layer_data(self):
        """What a napari layer should hold: the zarr arrays themselves when there are
        (napari slices them without building a dask graph per view), else the dask
        levels; a list for a pyramid."""
        data = self.sources if len(self.sources) == len(self.levels) else self.levels
        return list(data) if self.multiscale else data[0]

    @property
    def multiscale(self) -> bool:
        return len(self.levels) > 1

    def level_voxel_size(self, level: int) -> tuple:
        """Voxel size at a pyramid level (full-resolution size times the downsampling)."""
        full = self.levels[0].shape
        lv = self.levels[level].shape
        return tuple(v * f / max(n, 1) for v, f, n in zip(self.voxel_size, full, lv))

    @property
    def translate(self) -> tuple:
        """Physical position of voxel (0, 0, 0), for napari's ``translate``."""
        return tuple(o * v for o, v in zip(self.offset, self.voxel_size))

    def identity(self) -> str:
        """A short stable fingerprint of what this volume's voxels are: source path,
        shape, dtype, crop offset, voxel size and channel (or dask's token for data
        with no path). Used to key caches; a crop or a level has its own identity."""
        import hashlib
        import json

        src = self.metadata.get("source_id") or (str(self.path.resolve()) if self.path is not None else self.data.name)
        parts = [src, list(self.shape), str(self.dtype), list(self.offset), list(self.voxel_size), self.channel]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def slice_signature(self, z: int) -> str:
        """A cheap signature of the stored bytes slice ``z`` (of this view) is read from:
        it changes when those bytes are rewritten. Per format (its ``signer``): a slice
        folder stats that slice's file (size, mtime_ns); a local zarr stats the chunk files
        the slice's region touches; TIFF / NRRD / image files and formats without a signer
        stat the whole file (any change invalidates every slice) or, for a folder, the
        folder itself; data with no path gives "" (its identity is dask's content token)."""
        z0 = self.offset[0] + int(z)
        ys = (self.offset[1], self.offset[1] + self.shape[1])
        xs = (self.offset[2], self.offset[2] + self.shape[2])
        if self.signers:
            return self.signers[0](z0, ys, xs)
        if self.path is None:
            return ""
        return stat_signature(self.path)

    def __repr__(self) -> str:
        levels = "" if not self.multiscale else f", levels={len(self.levels)}"
        return (
            f"Volume({self.name!r}, shape={self.shape}, dtype={self.dtype}{levels}, "
            f"voxel_size={self.voxel_size} {self.unit}, contrast_limits={self.contrast_limits})"
        )

    def describe(self) -> str:
        """A few lines for people: shape, dtype, voxel size, levels, chunks."""
        lines = [
            f"path:        {self.metadata.get('url') or self.path}",
            f"shape:       {self.shape} (z, y, x)",
            f"dtype:       {self.dtype}",
            f"voxel size:  {self.voxel_size} {self.unit}",
            f"window:      {self.contrast_limits[0]:.6g} – {self.contrast_limits[1]:.6g}",
            f"chunks:      {tuple(c[0] for c in self.data.chunks)}",
            f"size:        {self.data.nbytes / 2**30:.2f} GiB",
        ]
        if self.multiscale:
            lines.append("levels:      " + ", ".join(str(tuple(l.shape)) for l in self.levels))
        if self.offset != (0, 0, 0):
            lines.append(f"offset:      {self.offset} (voxels)")
        if self.n_channels > 1:
            lines.append(f"channel:     {self.channel} of {self.n_channels}")
        for extra in self.extras:
            lines.append(f"extra:       {extra.name} ({extra.kind}, {tuple(extra.data.shape)})")
        if self.choices:
            lines.append("also here:   " + ", ".join(self.choices))
        return "\n".join(lines)

    # --- views ----------------------------------------------------------------
    def level(self, level: int) -> "Volume":
        """This volume at one pyramid level (still lazy), as a one-level volume."""
        if not 0 <= level < len(self.levels):
            raise VolumeError(f"{self.path}: no pyramid level {level} (it has {len(self.levels)})")
        factors = [f // max(n, 1) for f, n in zip(self.levels[0].shape, self.levels[level].shape)]
        return dataclasses.replace(
            self,
            levels=[self.levels[level]],
            voxel_size=self.level_voxel_size(level),
            offset=tuple(o // max(f, 1) for o, f in zip(self.offset, factors)),
            extras=[],
            sources=self.sources[level:level + 1],
            signers=self.signers[level:level + 1],
        )

    def crop(self, z=None, y=None, x=None, level: int = 0) -> "Volume":
        """A lazy region of interest: ``z``, ``y``, ``x`` are ``(start, stop)`` in voxels
        of ``level`` (``None`` keeps the whole axis). Nothing is read."""
        src = self.level(level) if (level or self.multiscale) else self
        arr = src.data
        bounds = []
        for axis, rng in zip("zyx", (z, y, x)):
            n = arr.shape["zyx".index(axis)]
            start, stop = (0, n) if rng is None else (rng[0], rng[1])
            start = 0 if start is None else int(start)
            stop = n if stop is None else int(stop)
            if not (0 <= start < stop <= n):
                raise VolumeError(
                    f"{self.path}: crop {axis}=({start}, {stop}) is outside the volume's {axis} range [0, {n}]"
                )
            bounds.append((start, stop))
        cropped = arr[tuple(slice(a, b) for a, b in bounds)]
        return dataclasses.replace(
            src,
            levels=[cropped],
            offset=tuple(o + a for o, (a, _) in zip(src.offset, bounds)),
            name=f"{self.name} [crop]",
            extras=[],
            sources=[],
        )


# --- helpers used by every format -----------------------------------------------


def as_3d(arr, path, axes: str | None = None, channel: int = 0):
    """Bring an array to (z, y, x), and say how many channels it had.

    2D becomes a one-slice volume; leading singleton axes (t, c of OME-Zarr) are
    dropped; a 4D array with an obvious channel axis (``axes`` names it ``C``/``S``,
    or it is first or last and has at most 4 entries while the others are larger)
    keeps ``channel``. Anything else is an error naming the file.
    Returns ``(array, n_channels)``.
    """
    if not isinstance(arr, da.Array):
        arr = da.asarray(arr)
    axes = axes.upper() if axes else None
    shape = tuple(arr.shape)
    if arr.ndim == 2:
        return arr[None], 1
    while arr.ndim > 3 and arr.shape[0] == 1 and not (axes and axes[0] in "CS" and arr.ndim == 4):
        arr = arr[0]
        axes = axes[1:] if axes else None
    if arr.ndim == 3:
        if axes and axes[-1] in "CS" and arr.shape[-1] <= 4:
            # a single RGB(A) image: a one-slice volume of one channel
            return _pick_channel(arr, 2, channel, path)[None], arr.shape[-1]
        return arr, 1
    if arr.ndim == 4:
        cax = None
        if axes and ("C" in axes or "S" in axes):
            cax = axes.index("C") if "C" in axes else axes.index("S")
        else:
            others = lambda i: [n for j, n in enumerate(arr.shape) if j != i]
            if arr.shape[-1] <= 4 and min(others(3)) > 4:
                cax = 3
            elif arr.shape[0] <= 4 and min(others(0)) > 4:
                cax = 0
        if cax is not None:
            return _pick_channel(arr, cax, channel, path), arr.shape[cax]
    raise VolumeError(
        f"{path}: cannot read an array of shape {shape}"
        + (f" (axes {axes})" if axes else "")
        + " as a volume: expected 3 axes (z, y, x), a 2D image, or 4 axes with an obvious channel axis"
    )


def _pick_channel(arr, axis, channel, path):
    n = arr.shape[axis]
    if not 0 <= channel < n:
        raise VolumeError(f"{path}: no channel {channel}; it has {n}")
    return da.take(arr, channel, axis=axis)


# --- the dispatcher -------------------------------------------------------------

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SLICE_SUFFIXES = TIFF_SUFFIXES + (".png", ".jpg", ".jpeg", ".bmp")


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
    from .open import open_more

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
    if kind == "zarr":
        from .zarr import open_zarr
        return open_zarr(p, channel=channel)
    if kind == "tiff":
        from .tiff import open_tiff_file
        return open_tiff_file(p, channel=channel)
    if kind == "nrrd":
        from .nrrd import open_nrrd
        return open_nrrd(p)
    if kind == "volpkg":
        from .volpkg import open_volpkg
        return open_volpkg(p, volume=volume, channel=channel, check=check)
    if kind == "fragment":
        from .fragment import open_fragment
        return open_fragment(p, check=check)
    if kind == "slices":
        from .tiff import open_slice_folder
        return open_slice_folder(p, channel=channel, check=check)
    if kind == "image":
        from .tiff import open_image_file
        return open_image_file(p, channel=channel)
    raise VolumeError(f"{p}: unknown format {kind!r}")  # pragma: no cover


def _is_zarr(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in ("zarr.json", ".zarray", ".zgroup"))


def detect_format(p: Path) -> str | None:
    """Which reader fits ``p`` (looking at names and metadata files only), or None."""
    p = Path(p)
    from .open import detect_more

    if detect_more(p):
        return detect_more(p)
    if p.is_file():
        name = p.name.lower()
        if name.endswith(TIFF_SUFFIXES) or name.endswith(".ome.tif"):
            return "tiff"
        if name.endswith((".nrrd", ".nhdr")):
            return "nrrd"
        if name.endswith((".png", ".jpg", ".jpeg", ".bmp")):
            return "image"
        if name in ("zarr.json", ".zarray", ".zgroup"):
            return None
        return None
    if not p.is_dir():
        return None
    if _is_zarr(p):
        return "zarr"
    if p.suffix.lower() == ".volpkg" or (p / "volumes").is_dir() and (p / "config.json").is_file():
        return "volpkg"
    if (p / "surface_volume").is_dir():
        return "fragment"
    try:
        with os.scandir(p) as it:
            for entry in it:
                if entry.is_file() and entry.name.lower().endswith(SLICE_SUFFIXES):
                    return "slices"
    except OSError:
        return None
    return None


def _kind(name: str) -> str:
    ext = Path(name).suffix.lower()
    return "TIFF" if ext in TIFF_SUFFIXES else {".jpg": "JPEG", ".jpeg": "JPEG"}.get(ext, ext[1:].upper())


def list_slices(folder: Path, suffixes: Sequence[str] = SLICE_SUFFIXES) -> list[Path]:
    """Image files of a folder in natural order (``2.tif`` before ``10.tif``).

    A folder holding two kinds (TIFF and PNG, say) is refused, naming both and their counts.
    """
    import re

    files = [e for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(suffixes)
             and not e.name.startswith(".")]
    kinds: dict[str, list] = {}
    for e in files:
        kinds.setdefault(_kind(e.name), []).append(e)
    if len(kinds) > 1:
        counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -len(kv[1])))
        raise VolumeError(f"{folder}: holds slices of several kinds ({counts}); which are the volume is "
                          f"not guessed: move the other kind to another folder")
    def key(name):
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]

    return [Path(e.path) for e in sorted(files, key=lambda e: key(e.name))]

