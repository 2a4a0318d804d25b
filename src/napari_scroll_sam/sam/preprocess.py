"""SAM's preprocessing for a batch of slices, in torch, on the model's device.

Window (contrast limits → 0..255, quantised like the uint8 image SAM expects;
NaN → 0, ±inf → 255 / 0, so no non-finite value reaches the encoder),
resize the longest side to the encoder's input size (bilinear, antialiased, as
PIL does in ``SamPredictor``), normalise with SAM's pixel mean / std, pad to a
square. One call for the whole batch: no per-image PIL round trip.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(h, w) after resizing the longest side to ``long_side`` (SAM's rounding)."""
    scale = long_side / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def to_tensor(raw, device) -> torch.Tensor:
    """A numpy batch (B, 3, H, W) of any numeric dtype → float32 tensor on ``device``."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint16:  # torch has limited uint16 support: go through int32
        arr = arr.astype(np.int32)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=torch.float32, non_blocking=True)


def window_uint8(x: torch.Tensor, window) -> torch.Tensor:
    """Linear map lo→0, hi→255, clipped and rounded (the uint8 SAM would see), as float.

    Non-finite voxels never reach the encoder (one NaN would make the whole embedding
    NaN through attention): NaN → 0 (the window's low end, black), +inf → 255 (its high
    end), -inf → 0."""
    lo, hi = float(window[0]), float(window[1])
    scale = 255.0 / max(hi - lo, 1e-12)
    return torch.nan_to_num_(((x - lo) * scale).clamp_(0, 255), nan=0.0).round_()


def preprocess(raw, window, img_size: int, device="cpu", already_uint8: bool = False) -> tuple[torch.Tensor, tuple]:
    """Batch (B, 3, H, W) raw slices → (B, 3, img_size, img_size) encoder input.

    Returns the tensor and the ``input_size`` (h, w) the image occupies before
    padding (needed to map prompts and masks back).
    """
    x = raw if isinstance(raw, torch.Tensor) else to_tensor(raw, device)
    x = x.to(device=device, dtype=torch.float32)
    if not already_uint8:
        x = window_uint8(x, window)
    h, w = x.shape[-2:]
    nh, nw = preprocess_shape(h, w, img_size)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        x = x.clamp_(0, 255).round_()  # PIL resizes in uint8: keep SAM's input on the same grid
    mean = torch.tensor(PIXEL_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    x = F.pad(x, (0, img_size - nw, 0, img_size - nh))
    return x, (nh, nw)


def rgb_to_batch(rgb: np.ndarray) -> np.ndarray:
    """An (H, W, 3) or (B, H, W, 3) uint8 image → (B, 3, H, W)."""
    arr = np.asarray(rgb)
    if arr.ndim == 3:
        arr = arr[None]
    return np.moveaxis(arr, -1, 1)
