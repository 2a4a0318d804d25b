"""Adapt on anchors: a few mask-decoder steps on the slices the user gave, before walking.

The image encoder is not touched, so the cached embeddings stay valid and the adaptation
costs only decoder steps (from the cache). The model the user loaded is not changed: a copy
of its prompt encoder and mask decoder is tuned and used for this walk only.

Each step takes every anchor object (at most ``batch`` of them, drawn at random), prompts it
as the walk will prompt it (its box, jittered by up to 10 % of its size, plus its deepest
point) and fits the mask with BCE + Dice (``training.losses``). On a tiled slice the object
is taken in the tile holding its centre.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from ..prompts import farthest_from_boundary
from ..sam.predictor import Predictor
from ..sam.tiling import tile_of


def _examples(embedder, anchors):
    """[(z, tile index, tile size, local mask)] for every anchor mask."""
    out = []
    for oid, zs in anchors.items():
        for z, (mask, _) in zs.items():
            if not mask.any():
                continue
            tiles = embedder.tiles
            if len(tiles) == 1:
                out.append((z, 0, tuple(mask.shape), mask))
                continue
            ys, xs = np.nonzero(mask)
            t = tile_of(tiles, float(ys.mean()), float(xs.mean()))
            y0, y1, x0, x1 = t.outer
            local = mask[y0:y1, x0:x1]
            if local.any():
                out.append((z, t.index, t.shape, local))
    return out


def adapt_decoder(embedder, predictor: Predictor, anchors: dict, cfg, rng, batch: int = 16):
    """A Predictor on a tuned copy of ``predictor``'s model (see the module doc). Returns the
    predictor unchanged when there is nothing to learn from. ``adapt_decoder.last`` holds
    the cost of the last call (seconds, steps, examples, loss before/after)."""
    import torch

    from ..training.losses import sam_loss

    examples = _examples(embedder, anchors)
    adapt_decoder.last = {"steps": 0, "examples": len(examples), "seconds": 0.0}
    if not examples or cfg.adapt_steps <= 0:
        return predictor
    t0 = time.perf_counter()
    sam = copy.deepcopy(predictor.sam)
    sam.image_encoder = predictor.sam.image_encoder  # shared, frozen: the cache stays valid
    tuned = list(sam.prompt_encoder.parameters()) + list(sam.mask_decoder.parameters())
    opt = torch.optim.AdamW(tuned, lr=cfg.adapt_lr, weight_decay=1e-4)
    pred = Predictor(sam)
    dev = pred.device
    from ..sam.predictor import _to_sam_xy
    from ..sam.preprocess import preprocess_shape

    def sam_prompt(pts, box, size):
        inp = preprocess_shape(*size, pred.img_size)
        coords = torch.as_tensor(_to_sam_xy(pts[None], size, inp), dtype=torch.float32, device=dev)
        labels = torch.ones(coords.shape[:2], dtype=torch.int64, device=dev)
        box_t = torch.as_tensor(_to_sam_xy(box.reshape(1, 2, 2), size, inp).reshape(1, 4), dtype=torch.float32,
                                device=dev)
        return coords, labels, box_t

    embs = {}
    for z, ti, _, _ in examples:
        if z not in embs:
            embs[z] = embedder.get(z).tensor
    losses = []
    sam.mask_decoder.train()
    for _ in range(cfg.adapt_steps):
        idx = rng.choice(len(examples), size=min(batch, len(examples)), replace=False)
        opt.zero_grad()
        total = 0.0
        for i in idx:
            z, ti, size, m = examples[i]
            ys, xs = np.nonzero(m)
            h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
            j = rng.uniform(-0.1, 0.1, 4) * np.array([h, w, h, w])
            box = np.clip(np.array([ys.min(), xs.min(), ys.max(), xs.max()], float) + j, 0,
                          [size[0] - 1, size[1] - 1, size[0] - 1, size[1] - 1])
            box[2:] = np.maximum(box[2:], box[:2])
            pt = farthest_from_boundary(m)[None]
            coords, labels, box_t = sam_prompt(pt, box, size)
            sparse, dense = sam.prompt_encoder(points=(coords, labels), boxes=box_t, masks=None)
            emb = embs[z][ti:ti + 1].to(device=dev, dtype=next(sam.mask_decoder.parameters()).dtype)
            low, iou = sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                                        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                        multimask_output=False)
            logits = sam.postprocess_masks(low.float(), preprocess_shape(*size, pred.img_size), size)
            target = torch.as_tensor(m, dtype=torch.float32, device=dev)[None]
            loss, _, _, _ = sam_loss(logits, iou.float(), target, kind="bce")
            (loss / len(idx)).backward()
            total += float(loss.detach()) / len(idx)
        opt.step()
        losses.append(total)
    sam.mask_decoder.eval()
    adapt_decoder.last = {"steps": cfg.adapt_steps, "examples": len(examples),
                          "seconds": round(time.perf_counter() - t0, 2),
                          "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4)}
    return pred


adapt_decoder.last = {}
