"""Carry a segmentation through the volume, slice by slice, from prompts on a few slices.

``propagate(embedder, seeds, labels, …)`` is a generator: it yields one
``SliceReport`` per slice and object, writes each slice's masks into ``labels``
(a numpy array, a zarr array, or a napari Labels layer's data) as soon as the
slice is done, and stops at once when closed (slices done stay written; the last
report says where it stopped).

How it walks (``plan.plan_walks``):

1. *Anchors.* Every seed slice is segmented from its prompts (points / box), or
   taken as drawn when the seed carries a mask, and written. Anchors are never
   changed afterwards. Objects prompted together on one slice (``WalkConfig.compete``)
   share it out (``engine.split_seeds``): a sheet that winds around a centre (one click
   on each wrap of a scroll) is completed from the image and cut into turns along one
   ray from the centre (``winding.py``); otherwise every pixel their masks claim goes
   to the object whose clicks are nearest along those pixels. Each mask so stops
   spreading onto the neighbouring wraps.
2. *Gaps.* Between two anchors of one object the gap is filled from both sides:
   the lower half walks up from the lower anchor, the upper half down from the
   upper one, and they meet in the middle.
3. *Outwards.* From the lowest anchor down and from the highest up (``direction``
   "both", "down" or "up"), within ``z_limits`` (one pair, or one per object),
   until a stop rule fires.

Each step (``engine``): the motion prior carries the object's accepted masks to the
next slice, prompts the model, and judges its answer (model, prior); ``SliceReport.source``
says which was kept. Objects walking together on a sheet that winds (a scroll's turns) have
their priors re-cut at that slice's inner end first (``recut.py``, ``WalkConfig.recut``). With ``WalkConfig.model_every`` = n the model is asked on every n-th
slice only and the prior alone carries the others ("carried": never encoded); carried
slices are written once the model sees the object again, and when it then answers nothing
(or a stop rule fires) the walk rewinds to the last slice the model saw and walks the
carried ones again asking it on each, so it stops where it would with n = 1. All objects at the same slice share its embedding and go through
the decoder in one call. Embeddings are encoded ahead in batches and come from the
embedding cache when there.

Overlaps: a voxel already holding another object's id is never overwritten.
Objects written on the same slice go most confident first: the model's predicted IoU
times its agreement with the object's prior (an object whose mask jumps onto a
neighbour ranks low). Voxels lost to another object are counted in ``overlap``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterator, Sequence

import numpy as np

from ..prompts import EmptyMaskError, Prompt, make_prompt
from ..sam.predictor import Predictor, PromptError
from ..sam.segment import segment_slice
from . import engine
from .engine import SliceImages, WalkConfig
from .prior import grow_box, mask_box, refine, refine_pad
from .plan import Seed, Walk, plan_walks, validate
from .recut import recut
from .sheet import turn_of_prompt
from .winding import union_winds
from .stop import CONTRAST_MIN, PropagationError, StopRule, mask_contrast


@dataclasses.dataclass
class SliceReport:
    """One slice of one object: where, how big, how sure, where the mask came from, and why
    a walk stopped.

    ``direction``: 0 for an anchor, +1 walking up (increasing z), -1 walking down.
    ``stopped``: None while going on, else the reason (the slice was not written).
    ``source``: "seed" (anchor), "model" (the model's mask, within the prior's reach),
    "prior" (the motion prior: the model disagreed), "carried" (the motion prior: the model
    was not asked, ``WalkConfig.model_every``), "empty" (the model answered nothing;
    the slice waits for the prior to bridge it), "bridged" (an empty slice filled from the
    prior once the object came back).
    ``agreement``: IoU of the model's mask with the prior.
    """

    z: int
    object_id: int
    area: int
    iou: float
    slice_iou: float | None
    direction: int
    stopped: str | None = None
    overlap: int = 0
    source: str = "model"
    agreement: float | None = None


def propagate(embedder, seeds: Sequence[Seed], labels, strategy: str = "box+farthest", stop: StopRule | None = None,
              direction: str = "both", z_limits=None, *, replace: bool = False, multimask: bool = False,
              margin: float = 0.1, n_points: int = 3, rng_seed: int = 0, prefetch: int | None = None,
              predictor: Predictor | None = None, walk: WalkConfig | None = None) -> Iterator[SliceReport]:
    """Propagate seeds through the volume: checks the input now (raising
    ``PropagationError`` before anything is written) and returns a generator of
    ``SliceReport``s that does the work as it is iterated (see the module doc).

    Parameters
    ----------
    embedder : SliceEmbedder (model, volume, sampling mode, cache)
    seeds : Seed objects (one or more per object, on one or more slices)
    labels : array of the volume's shape to write object ids into (numpy, zarr,
        or a Labels layer's data)
    strategy : a ``prompts.make_prompt`` strategy ("box+farthest", "skeleton", …),
        made from the motion prior
    stop : a ``StopRule`` (default thresholds when None; ``StopRule.off()``: none)
    direction : "both", "up" (increasing z) or "down"
    z_limits : (start, stop) slices the walks stay within, or a dict object id ->
        (start, stop)
    replace : allow object ids that are already in ``labels`` (their voxels on
        the slices done here are replaced)
    prefetch : slices encoded ahead per encoder call (default: the embedder's batch size)
    walk : a ``WalkConfig`` (motion prior, memory, corridor, competition, adaptation);
        ``WalkConfig.blind()`` takes the model's answers as they are
    """
    stop = stop or StopRule()
    walk = walk or WalkConfig()
    if direction not in ("both", "up", "down"):
        raise PropagationError(f"direction must be 'both', 'up' or 'down', not {direction!r}")
    if not isinstance(walk, WalkConfig):
        raise PropagationError(f"walk must be a WalkConfig, not {type(walk).__name__}")
    seeds = list(seeds)
    validate(embedder, seeds, labels, z_limits, replace)  # at the call: before anything is written
    return _run(embedder, seeds, labels, strategy, stop, direction, z_limits, replace, multimask,
                dict(margin=margin, n_points=n_points), rng_seed, prefetch, predictor, walk)


def _run(embedder, seeds, labels, strategy, stop, direction, z_limits, replace, multimask, opts, rng_seed,
         prefetch, predictor, cfg) -> Iterator[SliceReport]:
    predictor = predictor or Predictor(embedder.model)
    rng = np.random.default_rng(rng_seed)
    prefetch = prefetch or max(1, embedder.batch_size)
    tiled = len(embedder.tiles) > 1
    images = SliceImages(embedder.volume)

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
        prompted = [i for i, (s, *_rest) in enumerate(results) if s.mask is None]
        shared = cfg.compete and len(prompted) > 1
        # settled on the slice's edges, as segment_slice draws them; not the masks of a scroll's
        # wraps clicked together: the winding split completes and snaps those from the image
        # itself (refined first, phantom seed 1's union no longer winds: 0.94 -> 0.54)
        if cfg.refine and prompted and not (shared and cfg.winding and union_winds(
                [results[i][1] for i in prompted])):
            grey = images.around(z, [results[i][1] for i in prompted], pad=refine_pad())  # one read for all
            for i in prompted:
                s, mask, logits, iou = results[i]
                results[i] = (s, refine(mask, grey, s.box), logits, iou)
        lone = cfg.winding and prompted and (not shared or not union_winds([results[i][1] for i in prompted]))
        if lone:  # a scroll's wraps clicked / boxed alone (or whose masks do not wind together): turns from the image
            for i in prompted:
                s, mask, logits, iou = results[i]
                turn = turn_of_prompt(mask, lambda box: images.crop(z, box), s.points, s.labels, s.box)
                if turn is not None:
                    results[i] = (s, turn, None, iou)
        if shared:  # several objects clicked on one slice: they share it out
            masks = [results[i][1] for i in prompted]
            split = engine.split_seeds(masks, [_positives(results[i][0]) for i in prompted], winding=cfg.winding,
                                       grey=(lambda: images.around(z, masks, pad=12)) if cfg.winding else None,
                                       snap_to=(cfg.snap, cfg.snap_sigma) if cfg.snap is not None else None)
            for i, m in zip(prompted, split):
                s, _, logits, iou = results[i]
                results[i] = (s, m, None, iou)
        written = _write(labels, z, [(s.object_id, m, iou) for s, m, _, iou in results], replace)
        for s, mask, logits, iou in results:
            anchors.setdefault(s.object_id, {})[z] = (mask, logits)
            yield SliceReport(z, s.object_id, int(mask.sum()), float(iou), None, 0,
                              None if mask.any() else "empty mask on the seed slice", written[s.object_id],
                              source="seed")

    if cfg.adapt_steps:
        from .adapt import adapt_decoder

        predictor = adapt_decoder(embedder, predictor, anchors, cfg, rng)

    # 2./3. walks
    walks = plan_walks(anchors, direction, z_limits, embedder.volume.shape[0])
    if stop.min_contrast_share:  # the anchors' contrast with their surroundings (the contrast rule)
        for w in walks:
            c = mask_contrast(w.mask, lambda box, z=w.z: images.crop(z, box))
            w.anchor_contrast = c if c is not None and abs(c) >= CONTRAST_MIN else None
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
                    yield SliceReport(z, w.object_id, 0, 0.0, None, step, "stop slice", source="prior")
                continue
            _prefetch(embedder, z, step, prefetch, active, cfg.asks_every)
            yield from _step(embedder, predictor, images, labels, z, step, here, strategy, stop, cfg, multimask,
                             tiled, replace, opts, rng)
        yield from _finish(labels, sweep, replace)


def _step(embedder, predictor, images, labels, z, step, here, strategy, stop, cfg, multimask, tiled, replace,
          opts, rng):
    """All objects of one walk direction onto slice z: prior, prompts, one decoder call, judge, write."""
    if cfg.prior is None:  # the walk of old: the last mask prompts, nothing is carried or judged
        priors = [(w.mask, 0.0, None) for w in here]
        fields = []
    else:
        fields = engine.motion_fields(images, cfg, z - step, z, [w.mask for w in here])
        priors = []
    sdfs = []
    for w, f in zip(here, fields):
        w.memory = engine.carry(w.memory, f)
        sdfs.append(engine.vote(w.memory))
    compete = cfg.compete and len(here) > 1
    carried = engine.held([sdf > 0 for sdf in sdfs]) if compete and cfg.snap is not None else None
    for i, (w, f, sdf) in enumerate(zip(here, fields, sdfs)):
        if cfg.snap is not None and cfg.prior is not None:
            # the snap never grows onto a neighbour's carried mask
            others = engine.held_by_others(carried, sdf > 0, f.box) if carried is not None else None
            prior = engine.snap(sdf, images.crop(z, f.box), f.box, cfg.snap, cfg.snap_sigma, others)
        else:
            prior = sdf > 0
        priors.append((prior, f.displacement(w.mask), sdf))
    if compete and cfg.recut and cfg.prior is not None:  # the turns of a scroll, cut at this slice's inner end
        ps = [p for p, _, _ in priors]
        cut = recut(ps, lambda: images.around(z, ps))
        priors = [(c, d, s) for c, (_, d, s) in zip(cut, priors)]
    prompts, carried_only = [], []
    held = engine.held([p for p, _, _ in priors]) if compete else None
    for i, (w, (prior, _, _)) in enumerate(zip(here, priors)):
        if not w.asks_model(z, cfg.asks_every):
            if prior.any():
                carried_only.append(i)
            else:
                w.active = False
            continue
        try:
            pr = make_prompt(prior, strategy, rng=rng, **opts)
        except EmptyMaskError:
            w.active = False
            continue
        if held is not None:
            box = grow_box(mask_box(prior), 4, prior.shape)  # where negatives looks
            neg = engine.negatives(prior, engine.held_by_others(held, prior, box))
            if len(neg):
                pr = Prompt(np.concatenate([pr.points, neg]), np.concatenate([pr.labels, np.zeros(len(neg))]),
                            pr.box, pr.use_logits)
        prompts.append((i, w, pr))
    preds = _predict_many(embedder, predictor, z, [(pr, w.logits if pr.use_logits else None) for _, w, pr in prompts],
                          multimask, tiled)
    answers = [(i, w, engine.judge(cfg, mask, priors[i][0], priors[i][1]), logits, piou)
               for (i, w, _), (mask, logits, piou) in zip(prompts, preds)]
    answers += [(i, here[i], (priors[i][0], "carried", 1.0), None, 0.0) for i in carried_only]
    to_write, reports = [], []
    for i, w, (kept, source, agree), logits, piou in answers:
        prior = priors[i][0]
        w.z = z
        area, prev_area = int(kept.sum()), int(w.mask.sum())
        if source == "empty":
            if w.rewind():  # carried slices since the model last saw it: find where it ended
                continue
            w.empty_run += 1
            reason = stop.empty_fires(w.empty_run)
            if reason:
                w.active, w.pending = False, []
            else:  # the prior carries the object on; this slice is written if it comes back
                w.pending.append((z, prior, None))
                w.mask = prior
                w.memory = engine.remember(cfg, w.memory, prior, "prior")
            reports.append(SliceReport(z, w.object_id, 0, float(piou), None, step, reason, source="empty",
                                       agreement=0.0))
            continue
        s_iou = engine.iou(kept, w.mask)
        # the slice-IoU rule looks for jumps: with a motion prior, against the previous mask
        # carried to this slice (a small cell that moved its own width has not jumped)
        # (IoU of kept with the prior: judge's agreement for the model's mask, 1 for the prior itself)
        moved = s_iou if cfg.prior is None else (1.0 if source in ("prior", "carried") else agree)
        # slices the prior carried between two answers the model disagreed on count as disagreed
        carried_run = sum(rep is not None for *_, rep in w.pending)
        overruled = (w.overruled_run if source == "carried" else
                     w.overruled_run + 1 + carried_run if source == "prior" else 0)
        low = w.anchor_contrast is not None and stop.low_contrast(
            mask_contrast(kept, lambda box: images.crop(z, box)), w.anchor_contrast)
        low_run = w.low_run + 1 if low else 0
        reason = (stop.check(area, prev_area, piou, moved, w.anchor_area) or stop.overruled_fires(overruled)
                  or stop.contrast_fires(low_run))
        if reason and w.rewind():  # carried slices since the model last saw it: find where the rule fires
            continue
        w.overruled_run, w.low_run = overruled, low_run
        if reason:
            w.active, w.pending = False, []
            reports.append(SliceReport(z, w.object_id, area, float(piou), s_iou, step, reason, source=source,
                                       agreement=agree))
            continue
        w.mask, w.logits = kept, (logits if source == "model" else None)
        w.memory = engine.remember(cfg, w.memory, kept, source)
        if source == "carried":  # written (and reported) once the model sees the object again
            w.pending.append((z, kept, SliceReport(z, w.object_id, area, 0.0, s_iou, step, None, source=source)))
            continue
        for zz, pm, rep in w.pending:  # the model sees the object: bridge the empty / carried run with the prior
            lost = _write(labels, zz, [(w.object_id, pm, 0.0)], replace)
            if rep is not None:
                rep.overlap = lost[w.object_id]
                reports.append(rep)
        w.pending, w.empty_run, w.confirmed = [], 0, (z, kept)
        conf = float(piou) * agree if source == "model" else 0.5 * agree
        to_write.append((w.object_id, kept, conf))
        reports.append(SliceReport(z, w.object_id, area, float(piou), s_iou, step, None, source=source,
                                   agreement=agree))
    written = _write(labels, z, to_write, replace) if to_write else {}
    for r in reports:
        if r.stopped is None:
            r.overlap = written.get(r.object_id, 0)
        yield r


def _positives(seed) -> np.ndarray:
    if seed.points is None or seed.labels is None:
        return np.zeros((0, 2))
    pts = np.asarray(seed.points, float).reshape(-1, 2)
    return pts[np.asarray(seed.labels).reshape(-1) > 0]


def _finish(labels, sweep, replace):
    """Walks that reached their end inside an empty or carried run (no rule fired): the prior
    bridges it."""
    for w in sweep:
        for zz, pm, rep in w.pending:
            lost = _write(labels, zz, [(w.object_id, pm, 0.0)], replace)
            if rep is None:
                rep = SliceReport(zz, w.object_id, int(pm.sum()), 0.0, None, w.step, None, source="bridged")
            rep.overlap = lost[w.object_id]
            yield rep
        w.pending = []


def _prefetch(embedder, z, step, n, active, every=1):
    """Encode the next ``n`` slices on which active walks will ask the model, in one batch."""
    def asked(zz):
        return any(w.asks_model(zz, every) for w in active if (zz - w.next_z) * step >= 0
                   and (zz - w.end) * step <= 0)

    if embedder.is_cached(z) or not asked(z):
        return
    far = max(w.end for w in active) if step > 0 else min(w.end for w in active)
    # the first n asked slices only: a walk across thousands of slices does not scan them all here
    ahead = list(itertools.islice((zz for zz in range(z, far + step, step) if asked(zz)), n))
    for _ in embedder.embed([zz for zz in ahead if not embedder.is_cached(zz)]):
        pass


def _predict_many(embedder, predictor, z, items, multimask, tiled) -> list:
    """[(mask, logits, iou)] for [(prompt, previous logits or None)] on slice z: one
    decoder call per group of prompts of the same kind (with/without a box, with/without
    mask input), points padded with label -1 to a common count."""
    if not items:  # every object carried by the prior: the slice's embedding is not needed
        return []
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
        res = segment_slice(embedder, z, multimask=multimask, predictor=predictor, refine=False, **kw)
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
