"""Stand-ins for the four torchvision functions ``segment_anything`` 1.0 imports
(``batched_nms`` and ``box_area`` from ``torchvision.ops.boxes``, ``resize`` and
``to_pil_image`` from ``torchvision.transforms.functional``), plus ``nms`` (the pure-torch
kernel of the ``torchvision::nms`` operator) and its quantized twin. ``_compat`` chooses
when they are used; they match torchvision's CPU results on what segment_anything passes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


# --------------------------------------------------------------------------- pure torch ops

def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms`` (CPU semantics).

    ``boxes`` (N, 4) in ``(x1, y1, x2, y2)``, ``scores`` (N,). Returns the int64 indices of
    the kept boxes in decreasing score order; a box is dropped when its IoU with a kept,
    higher-scoring box is greater than ``iou_threshold``.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes should be a (N, 4) tensor, got {tuple(boxes.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores should be a ({boxes.shape[0]},) tensor, got {tuple(scores.shape)}")
    device = boxes.device
    n = boxes.shape[0]
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    b = boxes.detach().cpu()
    if not b.is_floating_point() or b.dtype in (torch.float16, torch.bfloat16):
        b = b.float()
    b = b[order].numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    removed = np.zeros(n, dtype=bool)
    keep = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(n):
            if removed[i]:
                continue
            keep.append(i)
            rest = slice(i + 1, n)
            w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
            h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            removed[rest] |= iou > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.int64)].to(device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each category ``idxs``, as ``torchvision.ops.batched_nms``.

    Returns the int64 indices of the kept boxes in decreasing score order.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    keep_mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for class_id in torch.unique(idxs):
        members = torch.where(idxs == class_id)[0]
        kept = nms(boxes[members], scores[members], iou_threshold)
        keep_mask[members[kept]] = True
    keep = torch.where(keep_mask)[0]
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


def box_area(boxes: torch.Tensor, fmt: str = "xyxy") -> torch.Tensor:
    """Areas of ``(..., 4)`` boxes, as ``torchvision.ops.box_area`` (xyxy, xywh, cxcywh)."""
    if boxes.is_floating_point():
        boxes = boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()
    elif boxes.dtype not in (torch.int32, torch.int64):
        boxes = boxes.int()
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    if fmt in ("xywh", "cxcywh"):
        return boxes[..., 2] * boxes[..., 3]
    raise ValueError(f"box format {fmt!r} is not one of 'xyxy', 'xywh', 'cxcywh'")


def _qnms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return nms(boxes.float(), scores.float(), iou_threshold)


# --------------------------------------------------------------------------- image functions

def to_pil_image(pic, mode: str | None = None):
    """A numpy ``(H, W[, C])`` array or a torch ``(C, H, W)`` tensor → ``PIL.Image``.

    As ``torchvision.transforms.functional.to_pil_image``: floats are taken as 0–1 and
    scaled to uint8 (unless ``mode="F"``); uint8 arrays with 1, 2, 3 or 4 channels become "L", "LA",
    "RGB", "RGBA"; single-channel 16/32-bit integer and float32 arrays keep their values
    (PIL modes "I;16", "I", "F").
    """
    from PIL import Image

    if isinstance(pic, torch.Tensor):
        if pic.dim() not in (2, 3):
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.dim()} dimensions")
        if pic.dim() == 2:
            pic = pic.unsqueeze(0)
        if pic.is_floating_point() and mode != "F":
            pic = pic.mul(255).byte()
        arr = pic.detach().cpu().permute(1, 2, 0).numpy()
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.ndim} dimensions")
        arr = pic[:, :, None] if pic.ndim == 2 else pic
        if np.issubdtype(arr.dtype, np.floating) and mode != "F":
            arr = (arr * 255).astype(np.uint8)
    else:
        raise TypeError(f"pic should be a Tensor or an ndarray, got {type(pic).__name__}")
    channels = arr.shape[2]
    if channels == 1:
        arr = arr[:, :, 0]
        if arr.dtype.type not in (np.uint8, np.int16, np.uint16, np.int32, np.float32):
            raise TypeError(f"input type {arr.dtype} is not supported")
    elif arr.dtype != np.uint8:
        raise TypeError(f"input type {arr.dtype} is not supported for {channels} channels")
    elif channels > 4:
        raise ValueError(f"pic should not have more than 4 channels, got {channels}")
    img = Image.fromarray(np.ascontiguousarray(arr))
    return img.convert(mode) if mode and mode != img.mode else img


def _target_size(h: int, w: int, size, max_size=None) -> tuple[int, int]:
    if isinstance(size, int):
        size = [size]
    size = list(size)
    if len(size) == 2:
        return int(size[0]), int(size[1])
    if len(size) != 1:
        raise ValueError(f"size should be an int or a sequence of one or two ints, got {size}")
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size[0], int(size[0] * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


def resize(img, size: Sequence[int] | int, interpolation=None, max_size=None, antialias=True):
    """Resize a PIL image or a ``(..., H, W)`` tensor to ``size`` = ``[h, w]`` (bilinear).

    As ``torchvision.transforms.functional.resize``: an int (or one-element list) matches
    the shorter edge and keeps the aspect ratio.
    """
    from PIL import Image

    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
        th, tw = _target_size(h, w, size, max_size)
        lead = img.shape[:-2]
        x = img.reshape(-1, 1, h, w)
        dtype = x.dtype
        x = x if x.is_floating_point() else x.float()
        out = torch.nn.functional.interpolate(x, size=(th, tw), mode="bilinear",
                                              align_corners=False, antialias=bool(antialias))
        if not dtype.is_floating_point:
            out = out.round().clamp(torch.iinfo(dtype).min, torch.iinfo(dtype).max)
        return out.to(dtype).reshape(*lead, th, tw)
    if isinstance(img, Image.Image):
        th, tw = _target_size(img.height, img.width, size, max_size)
        resample = Image.BILINEAR if interpolation is None else _pil_interpolation(interpolation)
        return img.resize((tw, th), resample)
    raise TypeError(f"img should be a PIL Image or a Tensor, got {type(img).__name__}")


def _pil_interpolation(interpolation):
    from PIL import Image

    value = getattr(interpolation, "value", interpolation)
    names = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
             "box": Image.BOX, "hamming": Image.HAMMING, "lanczos": Image.LANCZOS}
    if isinstance(value, str) and value in names:
        return names[value]
    return value


__all__ = ["batched_nms", "box_area", "nms", "resize", "to_pil_image"]
