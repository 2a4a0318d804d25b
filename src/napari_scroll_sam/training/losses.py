"""SAM's training losses: focal + Dice on the masks, MSE on the predicted IoU.

With multimask output (a single point is ambiguous) the mask with the lowest mask
loss counts, as in the SAM paper; the IoU head is trained on all three masks
against their true IoUs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT, DICE_WEIGHT, IOU_WEIGHT = 20.0, 1.0, 1.0  # SAM's 20:1 focal:Dice


def focal_loss(logits, target, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per-mask sigmoid focal loss, mean over pixels: (..., H, W) → (...)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits, target, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + eps) / (p.sum(-1) + t.sum(-1) + eps)


def mask_iou(logits, target) -> torch.Tensor:
    """IoU of the thresholded masks (no gradient): (..., H, W) → (...)."""
    with torch.no_grad():
        pred = (logits > 0).flatten(-2)
        t = target.flatten(-2) > 0.5
        inter = (pred & t).sum(-1).float()
        union = (pred | t).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def bce_loss(logits, target) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(-2).mean(-1)


def sam_loss(logits, iou_pred, target, kind: str = "focal"):
    """``logits`` (N, M, H, W) for M masks per prompt, ``iou_pred`` (N, M), ``target`` (N, H, W).

    ``kind``: "focal" (SAM's 20 x focal + Dice, for fine-tuning a trained SAM) or "bce"
    (BCE + Dice: positives not down-weighted, which a model trained from scratch needs to
    leave the all-background start on thin, sparse objects).
    Returns (total loss, parts dict, chosen mask index per prompt, its true IoU).
    """
    target = target[:, None].expand_as(logits).float()
    dice = dice_loss(logits, target)
    if kind == "bce":
        focal = bce_loss(logits, target)
        mask_loss = focal + DICE_WEIGHT * dice
    else:
        focal = focal_loss(logits, target)
        mask_loss = FOCAL_WEIGHT * focal + DICE_WEIGHT * dice  # (N, M)
    best = mask_loss.argmin(dim=1)
    idx = torch.arange(len(best), device=logits.device)
    true_iou = mask_iou(logits, target)
    iou_mse = F.mse_loss(iou_pred.float(), true_iou, reduction="none").mean(dim=1)
    total = (mask_loss[idx, best] + IOU_WEIGHT * iou_mse).mean()
    parts = {kind: focal[idx, best].mean().item(), "dice": dice[idx, best].mean().item(),
             "iou_mse": iou_mse.mean().item()}
    return total, parts, best, true_iou[idx, best]
