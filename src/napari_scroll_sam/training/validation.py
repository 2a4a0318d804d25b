"""Honest validation: whole held-out slices, scored with the ceiling prompts (the true box,
and one click at the deepest point answered by SAM's top-scored of three masks, or, when the
run trains it (``single_mask_clicks``), by the single mask a click shows), and a warning when
it rests on too few slices to trust."""

from __future__ import annotations

import numpy as np
import torch

from .. import prompts as P
from .losses import mask_iou


def too_few_warning(n_slices: int, n_samples: int, min_slices: int) -> str | None:
    """The warning for a validation on ``n_slices`` held-out slices (None when enough)."""
    if n_slices >= min_slices:
        return None
    if not n_slices:
        return "no validation: nothing is held out, so best.pt follows the training loss"
    return (f"validation rests on {n_slices} held-out slice{'s' * (n_slices != 1)} ({n_samples} samples): "
            f"too few to trust; annotate more slices or hold out at least {min_slices}")


@torch.no_grad()
def validate(trainer, samples) -> tuple[tuple[float | None, float | None], dict]:
    """((mean IoU, mean Dice) over box and click together, {"box": IoU, "click": IoU})."""
    if not samples:
        return (None, None), {"box": None, "click": None}
    trainer.sam.eval()
    dices, per = [], {"point": [], "box": []}
    three = not trainer.config.single_mask_clicks  # which output answers a click
    for s in samples:
        emb = trainer._embedding(s)
        size = s.masks.shape[1:]
        gt = torch.as_tensor(s.masks, dtype=torch.float32, device=trainer.device)
        for kind in ("point", "box"):
            prompts = [P.Prompt(P.farthest_from_boundary(m)[None], np.ones(1)) if kind == "point"
                       else P.Prompt(np.zeros((0, 2)), np.zeros(0), P.bbox(m)) for m in s.masks]
            logits, iou_pred, _ = trainer._decode(emb, size, prompts, multimask=kind == "point" and three)
            pick = iou_pred.argmax(1)
            chosen = logits[torch.arange(len(pick)), pick]
            per[kind].extend(mask_iou(chosen, gt).tolist())
            pred = (chosen > 0).float()
            inter = (pred * gt).flatten(1).sum(1)
            dices.extend(((2 * inter + 1e-6) / (pred.flatten(1).sum(1) + gt.flatten(1).sum(1) + 1e-6)).tolist())
    ious = per["point"] + per["box"]
    return (float(np.mean(ious)), float(np.mean(dices))), {"box": float(np.mean(per["box"])),
                                                           "click": float(np.mean(per["point"]))}
