"""How good is a model on labelled data: IoU per prompt strategy, and through the volume.

``evaluate_prompts`` prompts every object of the chosen slices once per strategy
(the strategies of the course report among the seed work) and scores the mask
against the labels. ``evaluate_propagation`` prompts each 3D object on its middle
slice with one point, propagates both ways and scores every slice. Both take the
same data as training, so a table before/after fine-tuning is two calls.
"""

from __future__ import annotations

import numpy as np

from .. import prompts as P
from ..sam.embeddings import SliceEmbedder
from ..sam.segment import segment_slice
from .data import objects_of

#: which of SAM's masks answers a prompt: the single-mask output (what a user's click shows in the
#: widgets and propagation, and what benchmarks/eval_quality.py scores) or the best scored of three
CLICK_RULES = {"single": "SAM's single-mask output (multimask off): what a user's click shows",
               "best_of_3": "the top-scored (predicted IoU) of SAM's three masks"}

#: name → (description, prompt maker(mask, rng) → dict of segment_slice prompt arguments)
STRATEGIES = {
    "box": ("the tight box", lambda m, rng: {"box": P.bbox(m)[None]}),
    "random_in_box": ("a random point of the box (may miss the object)",
                      lambda m, rng: _point(_random_in_box(m, rng))),
    "random_in_mask": ("a random point of the mask", lambda m, rng: _point(P.random_point(m, rng))),
    "random_gaussian": ("a random mask point, Gaussian-weighted around the box centre",
                        lambda m, rng: _point(P.random_gaussian_point(m, rng))),
    "box_centre": ("the box centre (may miss the object)",
                   lambda m, rng: _point(P.bbox(m).reshape(2, 2).mean(0))),
    "centroid": ("the centre of mass, snapped into the mask", lambda m, rng: _point(P.centroid(m))),
    "gaussian_centre": ("the Gaussian-weighted centre, snapped", lambda m, rng: _point(P.gaussian_centre(m))),
    "deepest_point": ("one click at the deepest point (the ceiling's click)",
                      lambda m, rng: _point(P.farthest_from_boundary(m))),
    "background_point": ("the deepest point plus one background point",
                         lambda m, rng: _points(np.vstack([P.farthest_from_boundary(m)[None],
                                                           P.background_points(m, 1)]), [1, 0])),
}


def _point(p):
    return {"points": np.asarray(p, float).reshape(1, 1, 2), "labels": np.ones((1, 1))}


def _points(pts, labels):
    pts = np.asarray(pts, float)
    return {"points": pts[None], "labels": np.asarray(labels[: len(pts)], float)[None]}


def _random_in_box(m, rng):
    y0, x0, y1, x1 = P.bbox(m)
    return np.array([rng.uniform(y0, y1), rng.uniform(x0, x1)])


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def evaluate_prompts(model, pairs, strategies=None, slices=None, mode=None, cache=None, seed: int = 0,
                     min_area: int = 16, click: str = "single", refine: bool = True) -> dict:
    """Mean IoU per strategy over every object of the annotated slices (or ``slices``:
    {pair index: [z…]}); ``click``: which of SAM's masks answers a prompt (``CLICK_RULES``);
    ``refine``: the masks as ``segment_slice`` draws them (settled on the slice's edges), or
    the model's own. Returns {strategy: {"iou": mean, "n": objects}}."""
    _check_click(click)
    strategies = list(strategies or STRATEGIES)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown evaluation strategies {unknown}; use {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(seed)
    scores = {s: [] for s in strategies}
    for i, pair in enumerate(pairs):
        emb = SliceEmbedder(model, pair.image, mode=mode, cache=cache)
        zs = (slices or {}).get(i)
        if zs is None:
            from .data import check_pair

            zs = check_pair(pair)
        for z in zs:
            for mask in objects_of(np.asarray(pair.labels[z]), pair.objects, min_area):
                for s in strategies:
                    pred = segment_slice(emb, z, multimask=click == "best_of_3", refine=refine,
                                         **STRATEGIES[s][1](mask, rng))
                    scores[s].append(_iou(pred.masks[0], mask))
    return {s: {"iou": float(np.mean(v)) if v else float("nan"), "n": len(v)} for s, v in scores.items()}


def objects_3d(labels, min_slices: int = 3) -> dict:
    """Instance labels → {id: [z…]} for ids present on at least ``min_slices`` slices."""
    lab = np.asarray(labels)
    out = {}
    for z in range(lab.shape[0]):
        for i in np.unique(lab[z]):
            if i:
                out.setdefault(int(i), []).append(z)
    return {i: zs for i, zs in out.items() if len(zs) >= min_slices}


def evaluate_propagation(model, pair, strategy: str = "box+farthest", objects=None, mode=None, cache=None,
                         stop=None) -> dict:
    """Per object: prompt its middle slice with its deepest point, propagate both ways,
    and score each slice against the labels. Returns {"mean_iou", "objects": {id: {…}}}."""
    from ..propagation import Seed, StopRule, propagate

    lab = np.asarray(pair.labels)
    objs = objects_3d(lab) if objects is None else {i: sorted(set(np.nonzero((lab == i).any((1, 2)))[0])) for i in objects}
    emb = SliceEmbedder(model, pair.image, mode=mode, cache=cache)
    stop = stop or StopRule()
    result = {}
    for oid, zs in objs.items():
        z0 = zs[len(zs) // 2]
        point = P.farthest_from_boundary(lab[z0] == oid)
        out = np.zeros(lab.shape, np.uint32)
        reports = list(propagate(emb, [Seed(1, z0, points=[point])], out, strategy=strategy, stop=stop))
        span = range(min(zs), max(zs) + 1)
        ious = {z: _iou(out[z] == 1, lab[z] == oid) for z in span}
        result[oid] = {"mean_iou": float(np.mean(list(ious.values()))), "slices": len(span),
                       "reached": int(sum((out[z] == 1).any() for z in span)), "per_slice": ious,
                       "stops": [r.stopped for r in reports if r.stopped]}
    mean = float(np.mean([r["mean_iou"] for r in result.values()])) if result else float("nan")
    return {"mean_iou": mean, "objects": result}


def table(columns: dict, strategies=None, propagation: dict | None = None) -> str:
    """One markdown table: rows = prompt strategies (and, given ``propagation`` {name:
    evaluate_propagation result}, the propagation protocol), columns = {name: evaluate_prompts
    result} — before and after side by side — plus, for two or more models, the change from
    the first (before) to the last (after)."""
    strategies = list(strategies or next(iter(columns.values())).keys())
    names = list(columns)
    delta = len(names) > 1
    head = "| strategy | " + " | ".join(names) + (f" | {names[-1]} − {names[0]} |" if delta else " |")
    rule = "|---|" + "---|" * (len(names) + delta)

    def row(label, values):
        cells = [f"{v:.3f}" for v in values]
        if delta:
            cells.append(f"{values[-1] - values[0]:+.3f}")
        return f"| {label} | " + " | ".join(cells) + " |"

    rows = [row(s, [columns[n][s]["iou"] for n in names]) for s in strategies]
    if propagation:
        first = next(iter(propagation.values()))
        rows.append(row(f"propagation: one point on the middle slice, both ways ({len(first['objects'])} objects)",
                        [propagation[n]["mean_iou"] for n in names]))
    return "\n".join([head, rule, *rows])


def _object_slices(objects, zs):
    """(z, 2D bool mask) of every object on every slice of ``zs`` (None: all) where present."""
    if not isinstance(objects, dict):  # an instance label volume: each id is an object
        lab = objects
        for z in (range(lab.shape[0]) if zs is None else zs):
            sl = np.asarray(lab[z])
            for i in np.unique(sl):
                if i:
                    yield z, sl == i
        return
    for gt in objects.values():
        if isinstance(gt, dict):  # sparse: {z: 2D mask}
            items = sorted(gt.items()) if zs is None else [(z, gt[z]) for z in zs if z in gt]
        else:
            items = ((z, gt[z]) for z in (range(gt.shape[0]) if zs is None else zs))
        for z, m in items:
            yield z, np.asarray(m, bool)


def _check_click(click):
    if click not in CLICK_RULES:
        raise ValueError(f"click must be one of {', '.join(CLICK_RULES)}, not {click!r}")


def ceiling_scores(embedder, objects, slices=None, min_area: int = 1, click: str = "single",
                   refine: bool = True) -> dict:
    """The prompt-from-ground-truth ceiling: every object on every slice where it is present,
    prompted once with its true bounding box and once with one click at its deepest point
    (``prompts.farthest_from_boundary``), no propagation. ``click`` chooses the mask that
    answers the click (``CLICK_RULES``): ``"single"`` (default; SAM's single-mask output, what
    the widgets, propagation and ``benchmarks/eval_quality.py`` use) or ``"best_of_3"``.

    ``objects``: {id: bool (Z, H, W) ground truth} in the embedder's volume frame (or
    {id: {z: 2D mask}}, or an instance label volume whose ids are the objects); ``slices``:
    the z to score (default: all). Slices where an object is absent (or under ``min_area``
    px) are skipped. ``refine``: the masks as ``segment_slice`` draws them (settled on the
    slice's edges); False: the model's own. Returns {"box": mean IoU, "click": mean IoU, "n":
    object-slices, "click_rule": click}.
    """
    _check_click(click)
    box, clicks = [], []
    zs = None if slices is None else sorted(set(int(z) for z in slices))
    for z, m in _object_slices(objects, zs):
        if m.sum() < max(1, min_area):
            continue
        pred = segment_slice(embedder, z, box=P.bbox(m)[None], refine=refine)
        box.append(_iou(pred.masks[0], m))
        pred = segment_slice(embedder, z, multimask=click == "best_of_3", refine=refine,
                             **_point(P.farthest_from_boundary(m)))
        clicks.append(_iou(pred.masks[0], m))
    mean = (lambda v: float(np.mean(v)) if v else float("nan"))
    return {"box": mean(box), "click": mean(clicks), "n": len(box), "click_rule": click}
