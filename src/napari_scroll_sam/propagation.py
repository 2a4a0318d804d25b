"""Carry a segmentation through the volume, slice by slice, from prompts on a few slices.

``propagate(embedder, seeds, labels, …)`` is a generator: it yields one
``SliceReport`` per slice and object, writes each slice's masks into ``labels``
(a numpy array, a zarr array, or a napari Labels layer's data) as soon as the
slice is done, and stops at once when closed (slices done stay written; the last
report says where it stopped).

How it walks:

1. *Anchors.* Every seed slice is segmented from its prompts (points / box), or
   taken as drawn when the seed carries a mask, and written. Anchors are never
   changed afterwards.
2. *Gaps.* Between two anchors of one object the gap is filled from both sides:
   the lower half walks up from the lower anchor, the upper half down from the
   upper one, and they meet in the middle.
3. *Outwards.* From the lowest anchor down and from the highest up (``direction``
   "both", "down" or "up"), within ``z_limits``, until a stop rule fires.

Each step prompts the next slice with ``prompts.make_prompt(previous mask,
strategy)``. All objects at the same slice share its embedding and go through the
decoder in one call. Embeddings are encoded ahead in batches (the encoder does
not depend on the masks) and come from the embedding cache when there.

Overlaps: a voxel already holding another object's id is never overwritten.
Objects written on the same slice go most confident first: SAM's predicted IoU
times the IoU with the object's own mask on the previous slice (an object whose
mask jumps onto a neighbour ranks low). Voxels lost to another object are
counted in the report's ``overlap``.
"""

from __future__ import annotations
from .errors import ScrollSamError

import dataclasses
from typing import Iterator, Sequence

import numpy as np

from .prompts import EmptyMaskError, Prompt, make_prompt
from .sam.predictor import Predictor, PromptError
from .sam.segment import segment_slice


class PropagationError(ScrollSamError, ValueError):
    """Bad input for propagation; raised before anything is written."""


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
        if self.points is not None:
            self.points = np.asarray(self.points, float).reshape(-1, 2)
            self.labels = (np.ones(len(self.points)) if self.labels is None
                           else np.asarray(self.labels, float).reshape(-1))
        if self.box is not None:
            self.box = np.asarray(self.box, float).reshape(4)
        if self.mask is not None:
            self.mask = np.asarray(self.mask, bool)

    @property
    def has_prompt(self) -> bool:
        return (self.points is not None and len(self.points) > 0) or self.box is not None or (
            self.mask is not None and self.mask.any())


@dataclasses.dataclass(frozen=True)
class StopRule:
    """When a walk stops. The slice that fires a rule is not written.

    min_pred_iou : SAM's predicted IoU below this (0 disables)
    min_slice_iou : IoU with the previous slice's mask below this (0 disables)
    max_area_change : area grows or shrinks by more than this factor (None disables)
    max_empty : this many empty masks in a row (an empty mask is skipped, and the
        last non-empty one keeps prompting, until then)
    stop_slices : slices the user marked: a walk stops before them
    """

    min_pred_iou: float = 0.5
    min_slice_iou: float = 0.3
    max_area_change: float | None = 4.0
    max_empty: int = 2
    stop_slices: frozenset = frozenset()

    def __post_init__(self):
        for name in ("min_pred_iou", "min_slice_iou"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise PropagationError(f"stop rule {name}={v} is outside [0, 1]")
        if self.max_area_change is not None and self.max_area_change < 1:
            raise PropagationError(f"stop rule max_area_change={self.max_area_change} must be >= 1 (a factor)")
        if int(self.max_empty) < 1:
            raise PropagationError(f"stop rule max_empty={self.max_empty} must be >= 1")
        object.__setattr__(self, "stop_slices", frozenset(int(z) for z in self.stop_slices))


@dataclasses.dataclass
class SliceReport:
    """One slice of one object: where, how big, how sure, and why a walk stopped.

    ``direction``: 0 for an anchor, +1 walking up (increasing z), -1 walking down.
    ``stopped``: None while going on, else the reason (the slice was not written).
    """

    z: int
    object_id: int
    area: int
    iou: float
    slice_iou: float | None
    direction: int
    stopped: str | None = None
    overlap: int = 0


@dataclasses.dataclass
class _Walk:
    object_id: int
    step: int  # +1 or -1
    z: int  # last slice done
    end: int  # last slice to do (inclusive)
    mask: np.ndarray
    logits: object = None
    empty_run: int = 0
    active: bool = True

    @property
    def next_z(self) -> int:
        return self.z + self.step


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _validate(embedder, seeds, labels, z_limits, replace):
    shape = tuple(embedder.volume.shape)
    if tuple(getattr(labels, "shape", ())) != shape:
        raise PropagationError(f"labels of shape {tuple(getattr(labels, 'shape', ()))} do not fit the volume "
                               f"{embedder.volume.name!r} of shape {shape}")
    if not seeds:
        raise PropagationError("no prompts: give at least one seed (points, a box or a mask on a slice)")
    h, w = shape[1:]
    for s in seeds:
        where = f"object {s.object_id} on slice {s.z}"
        if s.object_id < 1:
            raise PropagationError(f"{where}: object ids start at 1 (0 is background)")
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
            if len(c) and ((c[:, 0] < 0) | (c[:, 0] > h - 1) | (c[:, 1] < 0) | (c[:, 1] > w - 1)).any():
                raise PropagationError(f"{where}: a prompt lies outside the {h} x {w} slice")
    if z_limits is not None:
        lo, hi = z_limits
        if not (0 <= lo < hi <= shape[0]):
            raise PropagationError(f"z limits {z_limits} must satisfy 0 <= start < stop <= {shape[0]}")
    if not replace:
        ids = sorted({s.object_id for s in seeds})
        used = _ids_present(labels, ids)
        if used:
            raise PropagationError(f"object id(s) {used} are already used in the labels; choose new ids or "
                                   f"pass replace=True to redo them")


def _ids_present(labels, ids) -> list:
    import dask.array as da

    arr = labels if isinstance(labels, da.Array) else da.from_array(labels, chunks=getattr(labels, "chunks", "auto"))
    found = da.isin(arr, ids).any().compute()
    if not found:
        return []
    return [i for i in ids if bool((arr == i).any().compute())]


def propagate(embedder, seeds: Sequence[Seed], labels, strategy: str = "box+farthest", stop: StopRule | None = None,
              direction: str = "both", z_limits=None, *, replace: bool = False, multimask: bool = False,
              margin: float = 0.1, n_points: int = 3, rng_seed: int = 0, prefetch: int | None = None,
              predictor: Predictor | None = None) -> Iterator[SliceReport]:
    """Propagate seeds through the volume: checks the input now (raising
    ``PropagationError`` before anything is written) and returns a generator of
    ``SliceReport``s that does the work as it is iterated (see the module doc).

    Parameters
    ----------
    embedder : SliceEmbedder (model, volume, sampling mode, cache)
    seeds : Seed objects (one or more per object, on one or more slices)
    labels : array of the volume's shape to write object ids into (numpy, zarr,
        or a Labels layer's data)
    strategy : a ``prompts.make_prompt`` strategy ("box+farthest", "skeleton", …)
    stop : a ``StopRule`` (default thresholds when None)
    direction : "both", "up" (increasing z) or "down"
    z_limits : (start, stop) slices the walks stay within
    replace : allow object ids that are already in ``labels`` (their voxels on
        the slices done here are replaced)
    prefetch : slices encoded ahead per encoder call (default: the embedder's batch size)
    """
    stop = stop or StopRule()
    if direction not in ("both", "up", "down"):
        raise PropagationError(f"direction must be 'both', 'up' or 'down', not {direction!r}")
    seeds = list(seeds)
    _validate(embedder, seeds, labels, z_limits, replace)  # at the call: before anything is written
    return _run(embedder, seeds, labels, strategy, stop, direction, z_limits, replace, multimask, margin, n_points,
                rng_seed, prefetch, predictor)


def _run(embedder, seeds, labels, strategy, stop, direction, z_limits, replace, multimask, margin, n_points,
         rng_seed, prefetch, predictor) -> Iterator[SliceReport]:
    lo, hi = z_limits if z_limits is not None else (0, embedder.volume.shape[0])
    predictor = predictor or Predictor(embedder.model)
    rng = np.random.default_rng(rng_seed)
    prefetch = prefetch or max(1, embedder.batch_size)
    tiled = len(embedder.tiles) > 1
    opts = dict(margin=margin, n_points=n_points)

    # 1. anchors
    anchors: dict[int, dict[int, tuple]] = {}  # object -> z -> (mask, logits)
    by_z: dict[int, list[Seed]] = {}
    for s in seeds:
        by_z.setdefault(s.z, []).append(s)
    for z in sorted(by_z):
        results = []
        for s in by_z[z]:
            if s.mask is not None:
                results.append((s, s.mask, None, 1.0))
            else:
                pr = Prompt(s.points if s.points is not None else np.zeros((0, 2)),
                            s.labels if s.labels is not None else np.zeros(0), s.box)
                mask, logits, iou = _predict_one(embedder, predictor, z, pr, None, multimask, tiled)
                results.append((s, mask, logits, iou))
        written = _write(labels, z, [(s.object_id, m, iou) for s, m, _, iou in results], replace)
        for s, mask, logits, iou in results:
            anchors.setdefault(s.object_id, {})[z] = (mask, logits)
            yield SliceReport(z, s.object_id, int(mask.sum()), float(iou), None, 0,
                              None if mask.any() else "empty mask on the seed slice", written[s.object_id])

    # 2./3. walks
    walks = []
    for oid, zs in anchors.items():
        zs_sorted = sorted(zs)
        for a, b in zip(zs_sorted[:-1], zs_sorted[1:]):
            mid = (a + b) // 2
            if mid > a:
                walks.append(_Walk(oid, +1, a, mid, *zs[a]))
            if b - 1 > mid:
                walks.append(_Walk(oid, -1, b, mid + 1, *zs[b]))
        if direction in ("both", "down") and zs_sorted[0] > lo:
            walks.append(_Walk(oid, -1, zs_sorted[0], lo, *zs[zs_sorted[0]]))
        if direction in ("both", "up") and zs_sorted[-1] < hi - 1:
            walks.append(_Walk(oid, +1, zs_sorted[-1], hi - 1, *zs[zs_sorted[-1]]))
    walks = [w for w in walks if w.mask.any()]

    for step in (+1, -1):
        sweep = [w for w in walks if w.step == step]
        while True:
            active = [w for w in sweep if w.active and (w.next_z - w.end) * step <= 0]
            if not active:
                break
            z = min(w.next_z for w in active) if step > 0 else max(w.next_z for w in active)
            here = [w for w in active if w.next_z == z]
            if z in stop.stop_slices:
                for w in here:
                    w.active = False
                    yield SliceReport(z, w.object_id, 0, 0.0, None, step, "stop slice")
                continue
            _prefetch(embedder, z, step, prefetch, active)
            prompts = []
            for w in here:
                try:
                    prompts.append((w, make_prompt(w.mask, strategy, rng=rng, **opts)))
                except EmptyMaskError:
                    w.active = False
            preds = _predict_many(embedder, predictor, z,
                                  [(pr, w.logits if pr.use_logits else None) for w, pr in prompts], multimask, tiled)
            results = [(w, *p) for (w, _), p in zip(prompts, preds)]
            to_write, reports = [], []
            for w, mask, logits, iou in results:
                area, prev_area = int(mask.sum()), int(w.mask.sum())
                s_iou = _iou(mask, w.mask)
                reason = None
                if area == 0:
                    w.empty_run += 1
                    if w.empty_run >= stop.max_empty:
                        reason = (f"empty mask on {w.empty_run} slices in a row" if w.empty_run > 1
                                  else "empty mask")
                elif stop.min_pred_iou > 0 and iou < stop.min_pred_iou:
                    reason = f"predicted IoU {iou:.2f} < {stop.min_pred_iou}"
                elif stop.min_slice_iou > 0 and s_iou < stop.min_slice_iou:
                    reason = f"IoU with the previous slice {s_iou:.2f} < {stop.min_slice_iou}"
                elif stop.max_area_change and max(area / max(prev_area, 1), prev_area / max(area, 1)) > \
                        stop.max_area_change:
                    reason = f"area changed {prev_area} -> {area} (more than x{stop.max_area_change:g})"
                w.z = z
                if reason:
                    w.active = False
                elif area:
                    w.mask, w.logits, w.empty_run = mask, logits, 0
                    to_write.append((w.object_id, mask, iou * s_iou))
                reports.append(SliceReport(z, w.object_id, area, float(iou), s_iou, step, reason))
            written = _write(labels, z, to_write, replace) if to_write else {}
            for r in reports:
                if r.stopped is None:
                    r.overlap = written.get(r.object_id, 0)
                yield r


def _prefetch(embedder, z, step, n, active):
    """Encode the next ``n`` slices that active walks will visit, in one batch."""
    if embedder.is_cached(z):
        return
    far = max(w.end for w in active) if step > 0 else min(w.end for w in active)
    ahead = [zz for zz in range(z, far + step, step)][:n]
    for _ in embedder.embed([zz for zz in ahead if not embedder.is_cached(zz)]):
        pass


def _predict_many(embedder, predictor, z, items, multimask, tiled) -> list:
    """[(mask, logits, iou)] for [(prompt, previous logits or None)] on slice z: one
    decoder call per group of prompts of the same kind (with/without a box, with/without
    mask input), points padded with label -1 to a common count."""
    if tiled or len(items) == 1:
        return [_predict_one(embedder, predictor, z, pr, lg, multimask, tiled) for pr, lg in items]
    out = [None] * len(items)
    groups: dict[tuple, list[int]] = {}
    for i, (pr, lg) in enumerate(items):
        groups.setdefault((pr.box is not None, lg is not None), []).append(i)
    emb = embedder.get(z)
    for (has_box, has_logits), idx in groups.items():
        k = max(len(items[i][0].points) for i in idx)
        pts = np.zeros((len(idx), max(k, 1), 2))
        lab = -np.ones((len(idx), max(k, 1)))
        for j, i in enumerate(idx):
            p = items[i][0]
            pts[j, : len(p.points)], lab[j, : len(p.points)] = p.points, p.labels
        kw = {"points": pts, "point_labels": lab} if k else {}
        if has_box:
            kw["boxes"] = np.stack([items[i][0].box for i in idx])
        if has_logits:
            import torch

            kw["mask_input"] = torch.cat([items[i][1] for i in idx])
        try:
            res = predictor.predict(emb.tensor[0], emb.original_size, multimask=multimask, **kw)
        except PromptError as exc:
            raise PropagationError(f"slice {z}: {exc}") from exc
        for j, i in enumerate(idx):
            out[i] = (res.masks[j], res.logits[j:j + 1], float(res.iou[j]))
    return out


def _predict_one(embedder, predictor, z, pr: Prompt, logits, multimask, tiled):
    """(mask, low-res logits, predicted IoU) for one prompt on slice z."""
    kw = {}
    if len(pr.points):
        kw["points"], kw["labels"] = pr.points[None], pr.labels[None]
    if pr.box is not None:
        kw["box"] = pr.box[None]
    if tiled:
        res = segment_slice(embedder, z, multimask=multimask, predictor=predictor, **kw)
        return res.masks[0], None, float(res.iou[0])
    emb = embedder.get(z)
    if "labels" in kw:
        kw["point_labels"] = kw.pop("labels")
    if "box" in kw:
        kw["boxes"] = kw.pop("box")
    try:
        res = predictor.predict(emb.tensor[0], emb.original_size, mask_input=logits, multimask=multimask, **kw)
    except PromptError as exc:
        raise PropagationError(f"slice {z}: {exc}") from exc
    return res.masks[0], res.logits, float(res.iou[0])


def _write(labels, z, items, replace) -> dict:
    """Write (object_id, mask, confidence) items into ``labels[z]``, the most confident first,
    never over another object's voxels. Returns voxels lost to overlaps per object."""
    sl = np.array(labels[z])
    lost = {}
    for oid, mask, _ in sorted(items, key=lambda t: -t[2]):
        if replace:
            sl[sl == oid] = 0
        free = mask & ((sl == 0) | (sl == oid))
        lost[oid] = int(mask.sum() - free.sum())
        sl[free] = oid
    labels[z] = sl
    return lost
