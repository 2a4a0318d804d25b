"""The lazy ``Volume``: dask levels (a pyramid), the intensity window, the voxel size,
where it came from, and what else was found beside it (``Extra`` layers).

Opening is ``io/open.py`` (``open_volume``, the registry of openers); ``open_volume``,
``detect_format``, ``as_3d`` and ``list_slices`` are still importable from here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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
        # numpy levels stay at hand for ``read`` (a derived volume, crop or level, gets dask only)
        given = self.levels
        self.levels = [a if isinstance(a, da.Array) else da.asarray(a) for a in given]
        self._in_memory = [(lv, a) for lv, a in zip(self.levels, given) if isinstance(a, np.ndarray)][:1]
        # 7 significant digits: a header's float noise (an NRRD's 6.4999999999999982, a float32
        # 0.699999988) would give napari one slider step too few (24 steps for 25 slices)
        self.voxel_size = tuple(float(f"{float(v):.7g}") for v in self.voxel_size)
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

    def read(self, z: int, y: tuple | None = None, x: tuple | None = None) -> np.ndarray:
        """The pixels of slice ``z`` of level 0 in rows ``y`` and columns ``x`` (``(start,
        stop)``; None: all), as numpy. Data given in memory is sliced directly; lazy data is
        read in one dask compute on this thread (a region touches a few chunks: dask's thread
        pool costs more than it saves there). The one region read of the walk and of
        ``segment_slice``'s refinement."""
        ys = slice(*y) if y is not None else slice(None)
        xs = slice(*x) if x is not None else slice(None)
        if self._in_memory and self._in_memory[0][0] is self.levels[0]:  # (levels reassigned: dask)
            return self._in_memory[0][1][int(z), ys, xs]
        return np.asarray(self.data[int(z), ys, xs].compute(scheduler="sync"))

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
            f"voxel size:  ({', '.join(f'{v:.6g}' for v in self.voxel_size)}) {self.unit}",
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


#: names that moved to the modules of their concern, importable from here as before
_MOVED = {"open_volume": "open", "detect_format": "open", "as_3d": "axes", "list_slices": "slices",
          "TIFF_SUFFIXES": "slices", "SLICE_SUFFIXES": "slices"}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
