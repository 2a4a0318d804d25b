"""Warm-starting one SAM configuration from another's weights.

``transfer_state_dict(src, sam)`` fills ``sam`` (a ``segment_anything`` ``Sam``) with every
tensor of ``src`` of the same name, resizing the few whose shape follows the token grid:

* ``image_encoder.patch_embed.proj.weight`` (E, 3, p, p): a kernel for patch p from one for
  patch P by area resampling, scaled by (P/p)^2, so that the smaller patch on an image answers
  as the larger patch did on that image enlarged P/p times (the network sees the slice
  "zoomed in": same features, a finer token grid);
* ``image_encoder.pos_embed`` (1, G, G, E): bicubic resampling of the grid;
* the relative-position tables ``rel_pos_h`` / ``rel_pos_w`` (2G-1, d): linear resampling, as
  ``segment_anything``'s ``get_rel_pos`` does at run time.

Everything else (the ViT blocks, neck, prompt encoder, mask decoder) does not depend on the
grid. Used by ``scripts/train_builtin.py --init`` to start ``small_hr`` (patch 8: masks at
half the input resolution instead of a quarter) from the shipped ``small``.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


def _patch_kernel(w: torch.Tensor, size: int) -> torch.Tensor:
    if w.shape[-1] == size:
        return w
    scale = (w.shape[-1] / size) ** 2
    return F.interpolate(w.float(), size=(size, size), mode="area" if size < w.shape[-1] else "bilinear",
                         **({} if size < w.shape[-1] else {"align_corners": False})) * scale


def _grid(pos: torch.Tensor, size: int) -> torch.Tensor:
    if pos.shape[1] == size:
        return pos
    x = pos.float().permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1)


def _rel(table: torch.Tensor, length: int) -> torch.Tensor:
    if table.shape[0] == length:
        return table
    x = table.float().t()[None]
    return F.interpolate(x, size=length, mode="linear", align_corners=False)[0].t()


def transfer_state_dict(src: Mapping[str, torch.Tensor], sam: torch.nn.Module) -> dict:
    """Load ``src`` into ``sam`` (resizing grid-shaped tensors); returns a summary
    ``{"same": n, "resized": [names], "skipped": [names]}``. Tensors that still do not fit
    (another width or depth) are left at ``sam``'s initial values and listed as skipped."""
    own = sam.state_dict()
    out, resized, skipped = {}, [], []
    for k, v in src.items():
        if k not in own:
            skipped.append(k)
            continue
        want = own[k].shape
        if v.shape == want:
            out[k] = v
            continue
        new = None
        if k.endswith("patch_embed.proj.weight") and v.shape[:2] == want[:2] and want[-1] == want[-2]:
            new = _patch_kernel(v, want[-1])
        elif k.endswith("pos_embed") and v.ndim == 4 and v.shape[-1] == want[-1]:
            new = _grid(v, want[1])
        elif k.endswith(("rel_pos_h", "rel_pos_w")) and v.shape[1] == want[1]:
            new = _rel(v, want[0])
        if new is not None and new.shape == want:
            out[k] = new.to(own[k].dtype)
            resized.append(k)
        else:
            skipped.append(k)
    sam.load_state_dict(out, strict=False)
    return {"same": len(out) - len(resized), "resized": resized, "skipped": skipped}
