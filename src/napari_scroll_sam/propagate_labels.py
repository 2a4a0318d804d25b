"""Propagate the objects of a labels array: its slices are the anchors (the Propagate panel's work).

No Qt, no napari: the panel is a face over this, a script does the same::

    book = masks.metadata.setdefault(PROPAGATED, {})           # what earlier runs wrote
    plan = plan_labels(labels, ids=None, prompts=SlicePrompts(2, z, pts, pos, rects),
                       z_limits=(0, n), direction="both", redo=True, book=book)
    for r in run_plan(embedder, labels, plan, "box+farthest", StopRule(), walk=WalkConfig(),
                      book=book): ...

Seeds. For each object id (``ids``, or every id in ``labels`` within the z limits), every
slice holding it is an anchor, ``Seed(id, z, mask=labels[z] == id)``, kept as drawn: the
walks fill only slices where the object is absent (gaps between anchors, then outwards).
An object without voxels is seeded from its ``prompts`` (the points and at most one box of
one slice) instead; objects prompted on one slice are seeded together and share it out
(``propagation.run``: one click on each wrap of a scroll).

Redo. ``book`` ({object id: {z: crc32 of the object's mask on z}}) records the slices a run
wrote. With ``redo``, the recorded slices that were not edited since are not anchors: they
are cleared (after the input was checked) and walked again; slices edited or erased since
are forgotten (anchors now, or gone). The drawn slices are always kept.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from .layers import objects_on_slices, seed_from_prompts
from .propagation import PropagationError, propagate, walk_summary
from .propagation.plan import plan_walks
from .sam.layer_prompts import on_slice

#: ``masks.metadata[PROPAGATED]``: the ``book`` of a labels layer
PROPAGATED = "scroll_sam_propagated"


def mask_crc(mask) -> int:
    """A checksum of a bool mask (a slice "not edited since" has the same)."""
    return zlib.crc32(np.packbits(np.asarray(mask, bool)).tobytes())


@dataclasses.dataclass
class SlicePrompts:
    """The prompts on one slice for one object, in the volume's data coordinates: points
    ``(M, 3)`` (z, y, x), ``positive`` ``(M,)``, rectangles ``[(4, 3)…]`` (as
    ``layers.prompts_in_image`` gives them)."""

    object_id: int
    z: int
    points: np.ndarray
    positive: np.ndarray
    boxes: list

    @property
    def present(self) -> bool:
        """Whether a point or a box lies on the slice."""
        pts = np.asarray(self.points, float).reshape(-1, 3)
        return bool(len(pts) and on_slice(pts[:, 0], self.z).any()) or any(
            np.all(on_slice(np.asarray(r)[:, 0], self.z)) for r in self.boxes)

    def seed(self, shape):
        return seed_from_prompts(self.object_id, self.z, self.points, self.positive, self.boxes, shape)


@dataclasses.dataclass
class LabelsPlan:
    """The seeds of a run, the walks planned [(object, step, anchor, start, end)], and with
    redo the slices to clear {object: [z]} and those to forget from the book."""

    seeds: list
    walks: list
    cleared: dict
    forget: dict

    @property
    def total(self) -> int:
        """The reports to expect if no walk stops early."""
        return len(self.seeds) + sum(abs(end - start) for *_, start, end in self.walks)

    def skipped(self, r) -> int:
        """Planned reports that will not come because walk(s) stopped at report ``r``."""
        if r.stopped is None:
            return 0
        n = 0
        for oid, step, anchor, start, end in self.walks:
            if oid != r.object_id:
                continue
            if r.direction == 0 and anchor == r.z:  # an empty anchor: its walks never start
                n += abs(end - start)
            elif step == r.direction and min(start, end) <= r.z <= max(start, end) and r.z != start:
                n += abs(end - r.z)
        return n


def _walks(oid, zs, direction, z_limits, n_slices) -> list[tuple]:
    """The walks ``propagation`` will make from anchor slices ``zs`` (``plan.plan_walks``, the one rule)."""
    anchors = {oid: {z: (np.ones((1, 1), bool), None) for z in zs}}
    return [(oid, w.step, w.z, w.z, w.end) for w in plan_walks(anchors, direction, z_limits, n_slices)]


def plan_labels(labels, ids=None, prompts=None, z_limits=None, direction: str = "both",
                redo: bool = False, book: dict | None = None) -> LabelsPlan:
    """Seeds and walks for the objects of ``labels`` (see the module doc); reads every slice
    in the z limits once. ``prompts``: a ``SlicePrompts`` or a list of them (one per object:
    several objects clicked on one slice are seeded together, so they share it out,
    ``propagation.run``). ``PropagationError`` when an object has neither voxels nor prompts."""
    n = int(labels.shape[0])
    lo, hi = (0, n) if z_limits is None else (int(z_limits[0]), int(z_limits[1]))
    book = book or {}
    given = [] if prompts is None else [prompts] if isinstance(prompts, SlicePrompts) else list(prompts)
    by_id = {p.object_id: p for p in given if p.present and (ids is None or p.object_id in ids)}
    found = objects_on_slices(labels, lo, hi, ids)
    want = list(ids) if ids is not None else sorted(found)
    want = sorted({*want, *by_id})
    if not want:
        raise PropagationError(f"nothing to propagate: the masks layer holds no object on slices {lo} to {hi - 1}, "
                               f"and the current slice has no point or box (draw or segment an object first)")
    from .propagation import Seed

    seeds, walks, clear, forget, missing = [], [], {}, {}, []
    for oid in want:
        zs = found.get(oid, [])
        old = book.get(oid, {})
        if redo and old:
            same = {z for z in zs if z in old and mask_crc(np.asarray(labels[z]) == oid) == old[z]}
            forget[oid] = [z for z in old if lo <= z < hi and z not in same]  # edited or erased since
            if same and len(same) < len(zs):  # keep at least the drawn slices
                clear[oid] = sorted(same)
                zs = [z for z in zs if z not in same]
        if zs:
            seeds += [Seed(oid, z, mask=np.asarray(labels[z]) == oid) for z in zs]
        elif oid in by_id:
            seeds.append(by_id[oid].seed(labels.shape))
            zs = [by_id[oid].z]
        else:
            missing.append(oid)
            continue
        walks += _walks(oid, sorted(zs), direction, (lo, hi), n)
    if missing:
        raise PropagationError(
            f"object(s) {', '.join(map(str, missing))} have no voxels in the masks layer on slices {lo} to {hi - 1}"
            + ("" if not by_id else f", nor prompts on the current slice (those prompt object(s) "
                                     f"{', '.join(map(str, sorted(by_id)))})"))
    return LabelsPlan(seeds, walks, clear, forget)


def run_plan(embedder, labels, plan: LabelsPlan, strategy: str = "box+farthest", stop=None, direction: str = "both",
             z_limits=None, walk=None, book: dict | None = None, **kwargs):
    """The walks of ``plan`` into ``labels`` (``propagate`` with ``replace=True``: the anchors
    hold their ids already and are rewritten as drawn). The input is checked before anything
    is written; then the redo slices are cleared and forgotten, and every slice a walk writes
    is recorded in ``book``. Returns the generator of ``SliceReport``s."""
    reports = propagate(embedder, plan.seeds, labels, strategy, stop=stop, direction=direction, z_limits=z_limits,
                        replace=True, walk=walk, **kwargs)
    book = {} if book is None else book

    def run():
        try:
            for part in (plan.cleared, plan.forget):
                for oid, zs in part.items():
                    for z in zs:
                        book.get(oid, {}).pop(z, None)
            for oid, zs in plan.cleared.items():
                for z in zs:
                    sl = np.asarray(labels[z])
                    if (sl == oid).any():
                        labels[z] = np.where(sl == oid, 0, sl).astype(sl.dtype)
            for r in reports:
                if r.stopped is None and r.direction != 0 and r.area:
                    book.setdefault(r.object_id, {})[r.z] = mask_crc(np.asarray(labels[r.z]) == r.object_id)
                yield r
        finally:
            reports.close()

    return run()


# --- what to tell the user ----------------------------------------------------------------------


def describe(r) -> str:
    """One line for one ``SliceReport``."""
    if r.stopped:
        way = {1: " (going up)", -1: " (going down)"}.get(r.direction, "")
        return f"object {r.object_id} stopped at slice {r.z}: {r.stopped}{way}"
    what = "anchor, as drawn" if r.direction == 0 and r.iou == 1.0 else f"IoU {r.iou:.2f}"
    prev = f", {r.slice_iou:.2f} with the previous slice" if r.slice_iou is not None else ""
    lost = f", {r.overlap} px kept for other objects" if r.overlap else ""
    return f"slice {r.z}, object {r.object_id}: {what}{prev}; {r.area} px{lost}"


def run_summary(reports, cancelled: bool = False, failed: bool = False, max_objects: int = 6) -> str:
    """What a run did: slices written and anchors kept, then a line per object."""
    if not reports:
        return "propagation cancelled before the first slice" if cancelled else (
            "propagation failed before the first slice" if failed else "")
    objects = sorted({r.object_id for r in reports})
    anchors = sum(1 for r in reports if r.direction == 0)
    written = sum(1 for r in reports if r.direction != 0 and r.stopped is None and r.area)
    head = "cancelled: " if cancelled else ("stopped by an error: " if failed else "")
    lines = [f"{head}object{'s' if len(objects) > 1 else ''} {', '.join(map(str, objects))}: {written} slice"
             f"{'s' if written != 1 else ''} propagated, {anchors} anchor{'s' if anchors != 1 else ''} kept"
             + (" (the slices done stay written)" if cancelled else "")]
    per_object = walk_summary(reports, cancelled)
    lines += per_object[:max_objects]
    if len(per_object) > max_objects:
        lines.append(f"… and {len(per_object) - max_objects} more objects")
    return "\n".join(lines)


__all__ = ["PROPAGATED", "LabelsPlan", "SlicePrompts", "describe", "mask_crc", "plan_labels", "run_plan",
           "run_summary"]
