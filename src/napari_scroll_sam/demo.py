"""The main job on the built-in sample: prompt one sheet of the synthetic scroll on
one slice, propagate it through the volume, and score every slice against the
ground truth. ``napari-scroll-sam demo`` runs it and shows the result in napari.
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
    labels: np.ndarray  # the propagated object (id 1)
    wrap: int  # which ground-truth wrap was prompted
    seed_z: int
    per_slice_iou: dict  # z -> IoU against the ground truth
    reports: list


def choose_seed(sheets_slice: np.ndarray, wrap: int | None = None) -> tuple[int, np.ndarray]:
    """The wrap to prompt (default: the middle one) and a point deep inside it."""
    ids = [int(i) for i in np.unique(sheets_slice) if i]
    if not ids:
        raise ValueError("the seed slice holds no sheet")
    wrap = ids[len(ids) // 2] if wrap is None else int(wrap)
    return wrap, farthest_from_boundary(sheets_slice == wrap)


def run_demo(model, shape=(64, 256, 256), seed: int = 0, wrap: int | None = None,
             strategy: str = "skeleton+background", stop: StopRule | None = None, cache=None, on_report=None,
             wraps: int | None = 5) -> DemoResult:
    """Generate the phantom (``wraps`` turns of the sheet), prompt one wrap on the middle
    slice with one point, propagate both ways with points along the previous mask's
    skeleton plus background points (thin curved sheets: a box would cover other wraps),
    judged against the motion prior (``propagation.WalkConfig``'s defaults)."""
    from .sam.embeddings import SliceEmbedder

    image, sheets, ink = scroll_phantom(shape, seed=seed, wraps=wraps)
    vol = Volume(levels=[image], contrast_limits=(7000, 40000), name="synthetic scroll")
    z0 = shape[0] // 2
    gt_seed = np.asarray(sheets[z0])
    wrap, point = choose_seed(gt_seed, wrap)
    emb = SliceEmbedder(model, vol, cache=cache)
    labels = np.zeros(shape, np.uint32)
    stop = stop or StopRule()  # the calibrated defaults, with the default walk (motion prior, snap)
    reports = []
    for r in propagate(emb, [Seed(1, z0, points=[point])], labels, strategy=strategy, stop=stop):
        reports.append(r)
        if on_report:
            on_report(r)
    gt = np.asarray(sheets) == wrap
    per_slice = {}
    for z in range(shape[0]):
        union = np.logical_or(gt[z], labels[z] == 1).sum()
        per_slice[z] = float(np.logical_and(gt[z], labels[z] == 1).sum() / union) if union else 1.0
    return DemoResult(vol, sheets, ink, labels, wrap, z0, per_slice, reports)
