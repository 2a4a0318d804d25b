"""The main job on the built-in sample: one click on each wrap of the synthetic scroll on
its middle slice, all wraps propagated together through the volume, every slice scored
against the ground truth. ``napari-scroll-sam demo`` runs it and shows the result in napari.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .io.phantom import scroll_phantom
from .io.volume import Volume
from .prompts import farthest_from_boundary
from .propagation import Seed, StopRule, propagate


@dataclasses.dataclass
class DemoResult:
    volume: Volume
    sheets: object  # ground-truth labels (dask)
    ink: object
    labels: np.ndarray  # the propagated wraps, each with its ground-truth id
    wraps: list  # the ground-truth wraps prompted (one point each on ``seed_z``)
    seed_z: int
    per_slice_iou: dict  # z -> mean IoU of the prompted wraps present there
    reports: list
    switches: float = 0.0  # fraction of segmented voxels that belong to another wrap
    sheet_iou: float = 0.0  # IoU of all segmented voxels with the whole sheet (every wrap as one)

    @property
    def wrap(self) -> int:
        """The first prompted wrap (one-wrap runs)."""
        return self.wraps[0]

    @property
    def mean_iou(self) -> float:
        return float(np.mean(list(self.per_slice_iou.values())))


def choose_seed(sheets_slice: np.ndarray, wrap: int | None = None) -> tuple[int, np.ndarray]:
    """The wrap to prompt (default: the middle one) and a point deep inside it."""
    ids = [int(i) for i in np.unique(sheets_slice) if i]
    if not ids:
        raise ValueError("the seed slice holds no sheet")
    wrap = ids[len(ids) // 2] if wrap is None else int(wrap)
    return wrap, farthest_from_boundary(sheets_slice == wrap)


def run_demo(model, shape=(64, 256, 256), seed: int = 0, wrap: int | None = None,
             strategy: str = "box+farthest", stop: StopRule | None = None, cache=None, on_report=None,
             wraps: int | None = 8, walk=None) -> DemoResult:
    """Generate the phantom (``wraps`` turns of the sheet; 8 and seed 0: the File-menu
    sample), click every wrap once on the middle slice (or only ``wrap``), all at once, and
    propagate them both ways together (the walk's defaults: motion prior, competition),
    then score each slice against the ground truth. ``walk``: a ``WalkConfig`` (default: the
    calibrated one)."""
    from .sam.embeddings import SliceEmbedder

    image, sheets, ink = scroll_phantom(shape, seed=seed, wraps=wraps)
    vol = Volume(levels=[image], contrast_limits=(7000, 40000), name="synthetic scroll")
    z0 = shape[0] // 2
    gt_seed = np.asarray(sheets[z0])
    ids = [int(i) for i in np.unique(gt_seed) if i] if wrap is None else [choose_seed(gt_seed, wrap)[0]]
    if not ids:
        raise ValueError("the seed slice holds no sheet")
    seeds = [Seed(w, z0, points=[choose_seed(gt_seed, w)[1]]) for w in ids]
    emb = SliceEmbedder(model, vol, cache=cache)
    labels = np.zeros(shape, np.uint32)
    stop = stop or StopRule()  # the calibrated defaults, with the default walk (motion prior, snap)
    reports = []
    for r in propagate(emb, seeds, labels, strategy=strategy, stop=stop, walk=walk):
        reports.append(r)
        if on_report:
            on_report(r)
    gt = np.asarray(sheets)
    per_slice = {}
    for z in range(shape[0]):
        scores = []
        for w in ids:
            g, p = gt[z] == w, labels[z] == w
            union = np.logical_or(g, p).sum()
            if g.any() or p.any():
                scores.append(float(np.logical_and(g, p).sum() / union))
        per_slice[z] = float(np.mean(scores)) if scores else 1.0
    done = labels > 0
    switches = float(((gt != labels) & (gt > 0) & done).sum() / max(done.sum(), 1))
    sheet = np.isin(gt, ids)
    sheet_iou = float((sheet & done).sum() / max((sheet | done).sum(), 1))
    return DemoResult(vol, sheets, ink, labels, ids, z0, per_slice, reports, switches, sheet_iou)
