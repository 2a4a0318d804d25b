"""One slice step of the walk: never trust the model blindly.

For every object walking onto slice ``z`` (``step_slice``):

1. **Motion prior.** The object's memory of accepted masks is carried from the
   previous slice to ``z`` by optical flow, computed only in the objects' boxes plus a
   margin (``prior.MotionField``; one field shared by all objects when their boxes
   overlap much). The prior is the weighted vote of the warped memory (newest counts
   most; ``memory=1``: the last accepted mask warped).
   With ``snap`` the prior is snapped to the image's edges nearby (``prior.snap``).
2. **Prompts** come from the prior (``strategy``); with ``compete`` each object also
   gets a negative point on the nearest pixel of the other objects' priors.
3. **Corridor.** The model's mask is cut to what the prior can reach (``corridor`` px
   beyond the measured displacement) and its components that do not touch the prior
   are dropped.
4. **Judge.** The model's mask is kept where it agrees with the prior (IoU >=
   ``accept``): source ``"model"``; otherwise the prior is kept: source ``"prior"``.
   An empty answer is ``"empty"`` (the walk's empty rule decides; ``run.py``).
   A weak model so cannot drag the walk below the motion baseline, a good one refines it.

``WalkConfig(prior=None, compete=False, corridor=None, accept=0)`` is the walk of old:
the last mask prompts the next slice and the model's answer is taken as it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .plan import check_number
from .flow import FLOWS
from .prior import MotionField, Track, corridor, grow_box, mask_box, snap, touching, window
from .stop import PropagationError

PRIORS = ("flow", "copy")
SHARE = 1.5  # one flow for the union of the boxes when it is at most this times their summed area


@dataclasses.dataclass(frozen=True)
class WalkConfig:
    """How the walk treats the model (see the module doc). Defaults calibrated on
    ``benchmarks/eval_quality.py``.

    prior : "flow" (optical flow), "copy" (the last mask as is) or None (no prior: the
        model's answer is taken as it is, the walk of old)
    memory : accepted masks the prior votes over (>= 1)
    accept : IoU with the prior from which the model's mask is kept (0: always)
    corridor : px beyond the measured displacement the mask may reach (None: no corridor)
    compete : negative points on the other objects walking on the same slice; objects
        clicked together on one slice share the union of their masks out (``split_seeds``)
    winding : that share-out cuts a sheet that winds around a centre (a scroll) into turns
        along one ray from the centre, the sheet completed from the image first
        (``winding.py``); False: always the geodesic split
    recut : objects walking together on a sheet that winds are re-cut into turns on every
        slice, along that slice's inner-end ray (``recut.py``; needs ``compete`` and a prior)
    flow : the optical flow ("dis": OpenCV's DIS, fast; "ilk": scikit-image's Lucas-Kanade)
    flow_radius, flow_max_side, flow_warps, margin : ILK's window, the resolution cap (longer
        side of the box, px), ILK's warp iterations at most, the box margin (px)
    snap : the prior snapped to the image's edges within this many px (a watershed of the
        gradient; None: the warped mask as it is); snap_sigma: smoothing before the gradient
    refine : the model's masks of the seeds' prompts (clicks, boxes) are settled on the
        slice's edges before the walk (``prior.refine``, as ``segment_slice`` draws them)
    adapt_steps : decoder fine-tuning steps on the anchors before walking (0: off)
    adapt_lr : their learning rate
    model_every : the model is asked on every n-th slice of a walk (counted from its anchor,
        and on every slice of an empty run); on the others the prior alone carries the
        object (source "carried") and the slice needs no embedding (1: every slice; without
        a prior always 1). Measured on ``eval_quality`` with the built-in model: 1, 2 and 4
        score the same within 0.003 on every volume and protocol (the prior is kept on
        nearly every slice the model is asked), and 4 encodes a quarter of the slices
    """

    prior: str | None = "flow"
    memory: int = 1
    accept: float = 0.92
    corridor: float | None = 3.0
    compete: bool = True
    winding: bool = True
    recut: bool = True
    flow: str = "ilk"
    flow_radius: int = 7
    flow_max_side: int = 256
    flow_warps: int = 10
    margin: int = 64
    snap: float | None = 2.0
    snap_sigma: float = 1.0
    refine: bool = True
    adapt_steps: int = 0
    adapt_lr: float = 1e-4
    model_every: int = 4

    def __post_init__(self):
        if self.prior not in PRIORS + (None,):
            raise PropagationError(f"prior={self.prior!r} must be one of {PRIORS} or None")
        check_number("memory", self.memory, lo=1, integer=True)
        a = check_number("accept", self.accept, lo=0)
        if a > 1:
            raise PropagationError(f"accept={self.accept} must be within [0, 1]")
        check_number("corridor", self.corridor, lo=0, allow_none=True)
        if self.flow not in FLOWS:
            raise PropagationError(f"flow={self.flow!r} must be one of {FLOWS}")
        check_number("flow_radius", self.flow_radius, lo=1, integer=True)
        check_number("flow_max_side", self.flow_max_side, lo=16, integer=True)
        check_number("flow_warps", self.flow_warps, lo=1, integer=True)
        check_number("margin", self.margin, lo=0, integer=True)
        check_number("snap", self.snap, lo=0, allow_none=True)
        check_number("snap_sigma", self.snap_sigma, lo=0)
        check_number("adapt_steps", self.adapt_steps, lo=0, integer=True)
        check_number("adapt_lr", self.adapt_lr, lo=0)
        check_number("model_every", self.model_every, lo=1, integer=True)

    @property
    def asks_every(self) -> int:
        """``model_every`` where a prior carries the object between the model's slices; without
        a prior (``prior=None``) the model is asked on every slice."""
        return self.model_every if self.prior is not None else 1

    @classmethod
    def blind(cls, **kw) -> "WalkConfig":
        """The model's answer as it is (no prior, corridor, competition)."""
        return cls(**{"prior": None, "corridor": None, "compete": False, "accept": 0.0, "refine": False, **kw})


class SliceImages:
    """Windowed grey crops of the slices the walk visits, read lazily by box."""

    def __init__(self, volume):
        self.volume = volume
        self.shape = tuple(volume.shape[1:])
        self._cache: dict = {}

    def crop(self, z, box) -> np.ndarray:
        y0, x0, y1, x1 = box
        hit = self._cache.get(z)
        if hit is not None:
            (cy0, cx0, cy1, cx1), arr = hit
            if cy0 <= y0 and cx0 <= x0 and y1 <= cy1 and x1 <= cx1:
                return arr[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        arr = window(self.volume.read(z, (y0, y1), (x0, x1)), self.volume.contrast_limits)
        if len(self._cache) > 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[z] = (box, arr)
        return arr

    def around(self, z, masks, pad: int = 2):
        """(box, windowed pixels) of slice ``z`` around the union of ``masks`` (None: all empty)."""
        b = mask_box(np.logical_or.reduce(masks))
        if b is None:
            return None
        box = grow_box(b, pad, masks[0].shape)
        return box, self.crop(z, box)


def _union(boxes):
    b = np.array(boxes)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def _area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def motion_fields(images: SliceImages, cfg: WalkConfig, z_from: int, z_to: int, masks: list) -> list:
    """One MotionField per mask (shared when the boxes overlap much: one flow for the union)."""
    shape = images.shape
    boxes = []
    for m in masks:
        b = mask_box(m)
        boxes.append(grow_box(b, cfg.margin, shape) if b else (0, 0, 1, 1))
    if cfg.prior != "flow":
        return [MotionField.still(b, shape) for b in boxes]
    union = _union(boxes)
    if len(boxes) > 1 and _area(union) <= SHARE * sum(_area(b) for b in boxes):
        groups = [(union, list(range(len(boxes))))]
    else:
        groups = [(b, [i]) for i, b in enumerate(boxes)]
    out = [None] * len(masks)
    images.crop(z_from, union)  # one read per slice for all boxes
    images.crop(z_to, union)
    for box, idx in groups:
        f = MotionField.between(images.crop(z_from, box), images.crop(z_to, box), box, shape,
                                radius=cfg.flow_radius, max_side=cfg.flow_max_side, num_warp=cfg.flow_warps, method=cfg.flow)
        for i in idx:
            out[i] = f
    return out


def carry(memory: list, field: MotionField) -> list:
    """The memory's tracks moved onto the next slice (each keeps its source mask)."""
    for tr in memory:
        tr.advance(field)
    return memory


def vote(memory: list) -> np.ndarray:
    """Weighted mean of the memory's signed distances on the current slice: the newest
    weighs as much as all older ones together. The prior mask is where it is > 0."""
    if len(memory) == 1:
        return memory[0].sdf()
    w = np.array([2.0 ** i for i in range(len(memory))])
    acc = np.zeros(memory[0].shape, np.float32)
    for wi, tr in zip(w, memory):
        acc += wi * tr.sdf()
    return acc / w.sum()


def remember(cfg: WalkConfig, memory: list, kept, source) -> list:
    """The memory after a slice: where the prior was kept as carried, its tracks go on
    unchanged (no resampling); where the model's mask or the snapped prior was kept, a new
    track starts from it."""
    if cfg.prior is None:
        return memory
    if source == "model" or cfg.snap is not None:
        return (memory + [Track(kept)])[-cfg.memory:]
    return memory


def held(masks) -> np.ndarray:
    """How many of ``masks`` hold each pixel (uint16, H x W): one pass per mask."""
    out = np.zeros(masks[0].shape, np.uint16)
    for m in masks:
        out += m
    return out


def held_by_others(count, own, box) -> np.ndarray:
    """Pixels of ``box`` that another object holds (``count`` from ``held``, ``own`` this
    object's mask); False outside the box. Costs the box, not the slice times the objects."""
    y0, x0, y1, x1 = box
    out = np.zeros(own.shape, bool)
    out[y0:y1, x0:x1] = count[y0:y1, x0:x1] > own[y0:y1, x0:x1]
    return out


def negatives(prior, others) -> np.ndarray:
    """The nearest pixel of the other objects' priors (one negative point), or none."""
    if others is None or not others.any():
        return np.zeros((0, 2))
    b = mask_box(prior)
    y0, x0, y1, x1 = grow_box(b, 4, prior.shape)
    o = others[y0:y1, x0:x1] & ~prior[y0:y1, x0:x1]
    if not o.any():
        return np.zeros((0, 2))
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~prior[y0:y1, x0:x1])
    oy, ox = np.nonzero(o)
    i = int(np.argmin(dist[oy, ox]))
    return np.array([[oy[i] + y0, ox[i] + x0]], float)


def iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def split_seeds(masks: list, clicks: list, overlaps_only: bool = False, winding: bool = True, grey=None,
                snap_to: tuple | None = None) -> list:
    """Objects prompted together on one slice (one click on each wrap, all at once) share the
    union of their masks out. A connected part of the union that holds several objects'
    clicks and winds around its centre (a scroll's wraps; ``winding``) is cut into turns
    along one ray from the centre (``winding.winding_labels``). Elsewhere every pixel of
    the union goes to the object whose clicks are nearest along the union (a watershed on a flat image from every object's positive clicks, inside the union:
    a geodesic Voronoi); pixels no click reaches through the union are dropped. With
    ``overlaps_only`` only the pixels several masks claim are shared out so (measured on the
    File-menu scroll, P3 of ``eval_quality``, small_hr at epoch 3: no split 0.31, overlaps
    only 0.43, the whole union 0.54). ``clicks``: per object an (n, 2) array of (y, x) positive
    points (none: the mask's deepest point). ``grey``: (box, windowed pixels) of the slice
    around the masks: a winding sheet is completed from the image before it is cut
    (``sheet.complete_sheet``); with ``snap_to`` = (reach, sigma) the turns so found are
    snapped to the image's edges as the walk's prior is (``prior.snap``; the File-menu
    scroll's click slice 0.82–0.90 per wrap without). Returns new masks (the inputs are not
    changed)."""
    from skimage.segmentation import watershed

    from ..prompts import farthest_from_boundary

    masks = [np.asarray(m, bool) for m in masks]
    union = np.logical_or.reduce(masks)
    if len(masks) < 2 or not union.any():
        return masks
    b = grow_box(mask_box(union), 1, union.shape)
    y0, x0, y1, x1 = b
    markers = np.zeros((y1 - y0, x1 - x0), np.int32)
    points = []
    for k, (m, pts) in enumerate(zip(masks, clicks), start=1):
        pts = np.asarray(pts, float).reshape(-1, 2) if pts is not None else np.zeros((0, 2))
        if not len(pts) and m.any():
            pts = farthest_from_boundary(m)[None]
        points.append(pts)
        for y, x in np.round(pts).astype(int):
            if y0 <= y < y1 and x0 <= x < x1:
                markers[y - y0, x - x0] = k
    if len(np.unique(markers[markers > 0])) < 2:
        return masks
    inside = union[y0:y1, x0:x1] | (markers > 0)
    ws = watershed(np.zeros(markers.shape, np.float32), markers, mask=inside)
    sheet, wound = union[y0:y1, x0:x1], False
    if winding and not overlaps_only:  # the parts that wind around a centre: by turns
        from .winding import winding_labels

        turns = winding_labels(masks, points, grey=grey)
        if turns is not None:
            turns = turns[y0:y1, x0:x1]
            ws = np.where(turns > 0, turns, ws)
            sheet = sheet | (turns > 0)  # the sheet completed from the image
            wound = True
    count = np.sum([m[y0:y1, x0:x1] for m in masks], axis=0)
    out = []
    for k, m in enumerate(masks, start=1):
        new = m.copy()
        crop = new[y0:y1, x0:x1]
        mine = ws == k
        if overlaps_only:
            crop &= (count <= 1) | mine
        else:
            crop[:] = mine & sheet if (markers == k).any() else crop
        out.append(new)
    if wound and snap_to is not None and grey is not None:
        out = _snap_turns(out, grey() if callable(grey) else grey, *snap_to)
    return out


def _snap_turns(masks, grey, reach, sigma) -> list:
    """Each turn snapped to the image's edges (``prior.snap``), never onto another's."""
    from .prior import signed_distance
    from .sheet import grey_in

    count = held(masks)
    out = []
    for m in masks:
        b = mask_box(m)
        image = grey_in(grey, grow_box(b, 8, m.shape)) if b is not None else None
        if image is None:
            out.append(m)
            continue
        box = grow_box(b, 8, m.shape)
        out.append(snap(signed_distance(m), image, box, reach, sigma, held_by_others(count, m, box)))
    return out


def judge(cfg: WalkConfig, mask, prior, reach: float):
    """(mask to keep, source, agreement) for the model's ``mask`` against ``prior``."""
    if not mask.any():
        return mask, "empty", 0.0
    if cfg.prior is None:
        return mask, "model", iou(mask, prior)
    m = mask
    if cfg.corridor is not None:
        m = touching(m & corridor(prior, reach + cfg.corridor), prior)
    agree = iou(m, prior)
    if m.any() and agree >= cfg.accept:
        return m, "model", agree
    return prior, "prior", agree
