"""Seeds, their checks, and the walks they give (anchors, gaps, outward walks).

``plan_walks(anchors, direction, limits)`` is the one place that decides which slices
each object visits, from which anchor, in which direction: the generator
(``run.py``) and the Propagate panel's estimate of the reports to come both use it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .prior import Track
from .stop import PropagationError


@dataclasses.dataclass
class Seed:
    """Prompts for one object on one slice: points (K, 2) (y, x) with labels (K,),
    and/or a box (y0, x0, y1, x1), or a drawn ``mask`` (kept as is: an anchor)."""

    object_id: int
    z: int
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self):
        self.object_id, self.z = int(self.object_id), int(self.z)
        where = f"object {self.object_id} on slice {self.z}"
        if self.points is not None:
            self.points = np.asarray(self.points, float).reshape(-1, 2)
            self.labels = (np.ones(len(self.points)) if self.labels is None
                           else np.asarray(self.labels, float).reshape(-1))
            if len(self.labels) != len(self.points):
                raise PropagationError(f"{where}: {len(self.points)} points but {len(self.labels)} labels")
            if not np.isfinite(self.points).all() or not np.isfinite(self.labels).all():
                raise PropagationError(f"{where}: a point has a non-finite coordinate or label "
                                       f"({self.points.tolist()}, labels {self.labels.tolist()})")
        if self.box is not None:
            self.box = np.asarray(self.box, float).reshape(4)
            if not np.isfinite(self.box).all():
                raise PropagationError(f"{where}: the box {self.box.tolist()} has a non-finite coordinate")
            y0, x0, y1, x1 = self.box
            if y1 < y0 or x1 < x0:
                raise PropagationError(f"{where}: the box (y0, x0, y1, x1) = {self.box.tolist()} is reversed "
                                       f"(needs y0 <= y1 and x0 <= x1)")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, bool)

    @property
    def has_prompt(self) -> bool:
        return (self.points is not None and len(self.points) > 0) or self.box is not None or (
            self.mask is not None and self.mask.any())


@dataclasses.dataclass
class Walk:
    """One object walking from an anchor towards ``end`` (inclusive), one slice a step."""

    object_id: int
    step: int  # +1 or -1
    z: int  # last slice done
    end: int  # last slice to do (inclusive)
    mask: np.ndarray  # last accepted mask (prompts the next slice)
    logits: object = None
    memory: list = dataclasses.field(default_factory=list)  # prior.Track of the masks the model gave (and the seed), newest last
    empty_run: int = 0
    overruled_run: int = 0
    # (z, mask, report or None) of an empty or carried run: written once the model sees the object
    pending: list = dataclasses.field(default_factory=list)
    active: bool = True
    anchor: int | None = None  # the anchor slice it started from
    confirmed: tuple | None = None  # (z, mask) of the last slice not carried: where a rewind starts
    dense_until: int | None = None  # after a rewind the model is asked on every slice up to here
    anchor_area: int | None = None  # px of the anchor's mask (the area-share stop rule)
    anchor_contrast: float | None = None  # the anchor mask's contrast (the contrast stop rule; None: not judged)
    low_run: int = 0  # slices in a row under the contrast rule's share

    def __post_init__(self):
        self.anchor = self.z if self.anchor is None else self.anchor
        self.anchor_area = int(np.count_nonzero(self.mask)) if self.anchor_area is None else self.anchor_area
        self.confirmed = self.confirmed or (self.z, self.mask)

    @property
    def next_z(self) -> int:
        return self.z + self.step

    def asks_model(self, z: int, every: int) -> bool:
        """Whether the model is asked on slice z (``WalkConfig.model_every``): every n-th slice
        from the anchor, every slice of an empty run, and every slice of a rewind."""
        return (every <= 1 or self.empty_run > 0 or abs(z - self.anchor) % every == 0
                or (self.dense_until is not None and (z - self.dense_until) * self.step <= 0))

    def rewind(self) -> bool:
        """Back to the last slice the model saw, when slices carried since are pending (the
        model then answered nothing or a stop rule fired): they are walked again asking the
        model on each, so the walk stops where it would have with the model on every slice.
        False (nothing changed) when no carried slice is pending."""
        if not any(rep is not None for *_, rep in self.pending):
            return False
        self.dense_until, self.pending = self.z, []
        self.z, self.mask = self.confirmed
        self.memory, self.logits, self.empty_run, self.low_run = [Track(self.mask)], None, 0, 0
        return True


def object_limits(z_limits, object_id, n_slices) -> tuple:
    """(lo, hi) for one object: ``z_limits`` is None, one (start, stop) pair, or a dict
    object id -> (start, stop) (objects not in it walk the whole volume)."""
    if z_limits is None:
        return 0, n_slices
    if isinstance(z_limits, dict):
        return tuple(z_limits.get(object_id, (0, n_slices)))
    return tuple(z_limits)


def plan_walks(anchors: dict, direction: str, z_limits, n_slices: int) -> list[Walk]:
    """Walks for anchors {object: {z: (mask, logits)}}: each gap between two anchors is
    filled from both sides (meeting in the middle), then outwards from the lowest anchor
    down and the highest up, within the object's limits."""
    walks = []
    for oid, zs in anchors.items():
        lo, hi = object_limits(z_limits, oid, n_slices)
        zs_sorted = sorted(zs)
        for a, b in zip(zs_sorted[:-1], zs_sorted[1:]):
            mid = (a + b) // 2
            if mid > a:
                walks.append(Walk(oid, +1, a, mid, *zs[a]))
            if b - 1 > mid:
                walks.append(Walk(oid, -1, b, mid + 1, *zs[b]))
        if direction in ("both", "down") and zs_sorted[0] > lo:
            walks.append(Walk(oid, -1, zs_sorted[0], lo, *zs[zs_sorted[0]]))
        if direction in ("both", "up") and zs_sorted[-1] < hi - 1:
            walks.append(Walk(oid, +1, zs_sorted[-1], hi - 1, *zs[zs_sorted[-1]]))
    walks = [w for w in walks if w.mask.any()]
    for w in walks:
        w.memory = [Track(w.mask)]
    return walks


def validate(embedder, seeds, labels, z_limits, replace):
    shape = tuple(embedder.volume.shape)
    if tuple(getattr(labels, "shape", ())) != shape:
        raise PropagationError(f"labels of shape {tuple(getattr(labels, 'shape', ()))} do not fit the volume "
                               f"{embedder.volume.name!r} of shape {shape}")
    if not seeds:
        raise PropagationError("no prompts: give at least one seed (points, a box or a mask on a slice)")
    h, w = shape[1:]
    dtype = np.dtype(getattr(labels, "dtype", np.uint32))
    top = int(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else None
    seen = set()
    for s in seeds:
        where = f"object {s.object_id} on slice {s.z}"
        if s.object_id < 1:
            raise PropagationError(f"{where}: object ids start at 1 (0 is background)")
        if top is not None and s.object_id > top:
            raise PropagationError(f"{where}: object id {s.object_id} does not fit the labels' dtype {dtype} "
                                   f"(largest {top})")
        if (s.object_id, s.z) in seen:
            raise PropagationError(f"{where}: two seeds for one object on one slice; give one Seed with all "
                                   f"its points (and at most one box)")
        seen.add((s.object_id, s.z))
        if not 0 <= s.z < shape[0]:
            raise PropagationError(f"{where}: slice {s.z} is outside the volume (slices 0..{shape[0] - 1})")
        if not s.has_prompt:
            raise PropagationError(f"{where}: no point, box or mask")
        if s.mask is not None and s.mask.shape != (h, w):
            raise PropagationError(f"{where}: mask of shape {s.mask.shape}, the slices are {h} x {w}")
        coords = []
        if s.points is not None:
            coords.append(s.points)
        if s.box is not None:
            coords.append(s.box.reshape(2, 2))
        for c in coords:
            if len(c) and not np.isfinite(c).all():
                raise PropagationError(f"{where}: a prompt coordinate is not a finite number")
            if len(c) and ((c[:, 0] < 0) | (c[:, 0] > h - 1) | (c[:, 1] < 0) | (c[:, 1] > w - 1)).any():
                raise PropagationError(f"{where}: a prompt lies outside the {h} x {w} slice")
        if s.box is not None and (s.box[2] < s.box[0] or s.box[3] < s.box[1]):
            raise PropagationError(f"{where}: box {s.box.tolist()} must be (y0, x0, y1, x1) with y0 <= y1, x0 <= x1")
    limits = z_limits.values() if isinstance(z_limits, dict) else ([] if z_limits is None else [z_limits])
    for lim in limits:
        lo, hi = lim
        if not (0 <= lo < hi <= shape[0]):
            raise PropagationError(f"z limits {tuple(lim)} must satisfy 0 <= start < stop <= {shape[0]}")
    if not replace:
        ids = sorted({s.object_id for s in seeds})
        used = _ids_present(labels, ids)
        if used:
            raise PropagationError(f"object id(s) {used} are already used in the labels; choose new ids or "
                                   f"pass replace=True to redo them")


def check_number(name, value, lo=None, integer=False, allow_none=False):
    """A walk option: finite, >= lo, an integer where asked (raises PropagationError)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and lo is not None:
        ok = value >= lo
    if not ok:
        kind = "an integer" if integer else "a finite number"
        raise PropagationError(f"{name}={value!r} must be {kind}" + (f" >= {lo}" if lo is not None else "")
                               + (" or None" if allow_none else ""))
    return int(value) if integer else float(value)


def _ids_present(labels, ids) -> list:
    import dask.array as da

    arr = labels if isinstance(labels, da.Array) else da.from_array(labels, chunks=getattr(labels, "chunks", "auto"))
    found = da.isin(arr, ids).any().compute()
    if not found:
        return []
    return [i for i in ids if bool((arr == i).any().compute())]
