"""What mask resolution the objects need: the best mask a model could give at each output grid.

SAM's decoder answers at 1/4 of the model's input (64² for a 256-px model, 256² for
Meta's 1024-px ones); the answer is upsampled bilinearly to the slice. For every eval
object-slice of ``datasets.py`` (every 3rd slice of each object) the true mask is
area-averaged onto a grid ``factor`` times coarser than the slice, turned into logits,
upsampled bilinearly and thresholded at 0: the IoU of that mask with the truth is the
ceiling of any model whose mask comes out ``factor`` times coarser than the slice. Writes
JSON::

    python benchmarks/mask_resolution.py --out benchmarks/results/mask_resolution.json

``factor`` for a model of input ``img_size`` and mask grid ``img_size / 4`` on a slice of
longer side L (whole, no tiling): L / (img_size / 4); ``small`` (256 px, patch 16): 4 on the
256² scroll, 8 on the 512² EM stack; ``small_hr`` (patch 8, 128² masks): 2 and 4.
Chloroplast slices are tiled at 256 px, so their factor is the model's own (4 or 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from _json_out import emit  # noqa: E402  (benchmarks/ is the script's folder)


def best_mask_iou(g: np.ndarray, factor: int) -> float:
    """IoU of the truth with its best mask at 1/``factor`` resolution, bilinearly upsampled."""
    if factor == 1:
        return 1.0
    h, w = g.shape
    t = torch.from_numpy(g.astype(np.float32))[None, None]
    t = F.pad(t, (0, -(-w // factor) * factor - w, 0, -(-h // factor) * factor - h))
    logits = torch.logit(F.avg_pool2d(t, factor).clamp(1e-3, 1 - 1e-3))
    up = F.interpolate(logits, scale_factor=factor, mode="bilinear", align_corners=False)[0, 0, :h, :w]
    p = up.numpy() > 0
    return float((p & g).sum() / max((p | g).sum(), 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=",".join(datasets.NAMES))
    ap.add_argument("--factors", default="1,2,4,8")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    out = {"protocol": __doc__.splitlines()[0], "datasets": {}}
    for name in args.data.split(","):
        d = datasets.load(name)
        if d is None:
            out["datasets"][name] = {"skipped": datasets.SKIPPED[name]}
            continue
        row = {"shape": list(d.volume.shape)}
        for f in factors:
            s = [best_mask_iou(g[z], f) for g in d.objects.values() for z in np.flatnonzero(g.any(axis=(1, 2)))[::3]]
            row[str(f)] = round(float(np.mean(s)), 3)
        out["datasets"][name] = row
        print(name, row, file=sys.stderr, flush=True)
    emit(out, args.out)


if __name__ == "__main__":
    main()
