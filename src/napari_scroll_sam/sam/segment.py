"""Segment one slice from prompts: the tile logic on top of ``Predictor``.

``segment_slice(embedder, z, ...)`` takes prompts in slice pixels (y, x), picks
the slice's embedding (cached or encoded now), and for a tiled slice sends the
prompt to the tile that holds it and stitches the neighbours' masks
(``tiling.predict_stitched``). With ``refine`` (default) each mask's boundary is then settled
on the slice's own edges (``propagation.prior.refine``: the model is trusted in the mask's core
and far outside it, the image's gradient decides the band between; the prompt's box bounds
it): on the held-out slices of every labelled volume here the built-in model's true-box masks
go 0.59-0.69 -> 0.66-0.77 (``benchmarks/eval_quality.py``, ceiling). ``refine=False`` gives the
model's mask as it is.
"""

from __future__ import annotations

import numpy as np

from .predictor import Prediction, Predictor, PromptError
from .tiling import predict_stitched


def segment_slice(embedder, z: int, points=None, labels=None, box=None, mask_input=None, multimask: bool = False,
                  predictor: Predictor | None = None, refine: bool = True, output: int | None = None) -> Prediction:
    """Mask(s) on slice ``z`` for one or many prompts.

    ``points`` (N, K, 2) / (K, 2) in (y, x) with ``labels`` (N, K) / (K,), ``box``
    (N, 4) / (4,) as (y0, x0, y1, x1); N prompts give N masks. On a tiled slice
    each prompt is decoded in its tile and stitched across neighbours. ``refine``: the
    masks settled on the slice's edges (see the module doc); the logits stay the model's.
    ``output``: which of SAM's four masks (``predictor.OUTPUTS``; None: the single one, or the
    best scored of three with ``multimask``): one click is ambiguous, and the mask a user wants
    may be another of the four (the Segment widget's *Other mask*).
    """
    pred = _segment(embedder, z, points, labels, box, mask_input, multimask, predictor or Predictor(embedder.model),
                    output)
    if refine:
        boxes = None if box is None else np.asarray(box, float).reshape(-1, 4)
        pred.masks = np.stack([refine_on_slice(embedder.volume, z, m, None if boxes is None else boxes[i])
                               for i, m in enumerate(pred.masks)])
    return pred


def refine_on_slice(volume, z: int, mask, box=None) -> np.ndarray:
    """``prior.refine`` of one mask on slice ``z`` of ``volume``, reading only the pixels
    around the mask (windowed by the volume's contrast limits)."""
    from ..propagation.prior import grow_box, mask_box, refine, refine_pad, window

    b = mask_box(mask)
    if b is None:
        return np.asarray(mask, bool)
    y0, x0, y1, x1 = grow_box(b, refine_pad(), mask.shape)
    grey = window(volume.read(z, (y0, y1), (x0, x1)), volume.contrast_limits)
    return refine(mask, ((y0, x0, y1, x1), grey), box)


def _segment(embedder, z, points, labels, box, mask_input, multimask, predictor, output=None) -> Prediction:
    emb = embedder.get(z)
    which = {} if output is None else {"output": output}  # (a predictor without outputs still serves the rest)
    if len(emb.tiles) == 1:
        return predictor.predict(emb.tensor[0], emb.original_size, points=points, point_labels=labels, boxes=box,
                                 mask_input=mask_input, multimask=multimask, **which)
    if mask_input is not None:
        raise PromptError("mask inputs are per tile and cannot be given for a tiled slice")
    pts = None if points is None else np.asarray(points, float)
    lab = None if labels is None else np.asarray(labels, float)
    boxes = None if box is None else np.asarray(box, float).reshape(-1, 4)
    if pts is not None and pts.ndim == 2:
        pts, lab = pts[None], (None if lab is None else lab[None])
    n = len(pts) if pts is not None else len(boxes) if boxes is not None else 0
    if n == 0:
        raise PromptError("no prompt: give points or a box")
    masks, ious = [], []
    for i in range(n):
        ious_i = []

        def predict_tile(tile, local):
            kw = {}
            if len(local["points"]):
                kw["points"], kw["point_labels"] = local["points"], local["labels"]
            if local.get("box") is not None:
                kw["boxes"] = local["box"]
            if not kw:
                return np.zeros(tile.shape, bool)
            res = predictor.predict(emb.tensor[tile.index], tile.shape, multimask=multimask, **which, **kw)
            ious_i.append(float(res.iou[0]))
            return res.masks[0]

        prompt = {"points": np.zeros((0, 2)) if pts is None else pts[i],
                  "labels": np.zeros(0) if pts is None else (np.ones(len(pts[i])) if lab is None else lab[i]),
                  "box": None if boxes is None else boxes[i]}
        masks.append(predict_stitched(predict_tile, emb.tiles, emb.original_size, prompt))
        ious.append(min(ious_i) if ious_i else 0.0)
    import torch

    return Prediction(np.stack(masks), np.asarray(ious, np.float32), torch.zeros((n, 1, 256, 256)))
