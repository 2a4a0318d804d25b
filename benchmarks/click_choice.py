"""Which of SAM's four masks should answer one click? Rules that choose by themselves, against a user's pick.

    python benchmarks/click_choice.py [--data isbi,mri1,mri2,scroll,scroll_touching] [--out F.json]

Each eval object on each slice where it is present (the scrolls: every 8th slice) gets one click at
its deepest point; the four masks of ``segment_slice(output=0..3)`` (0: the single mask a click
shows, 1-3: SAM's three for an ambiguous prompt), all refined on the slice's edges, are scored
against the truth, with per mask SAM's predicted IoU, its stability (the share of the mask's
low-resolution logits > -1 that are > +1; SAM's automatic mask generator's score; not on tiled
slices, whose stitched prediction has no logits: the ISBI stack's 512² slices), the mean edge
strength on its boundary (relative to the slice's mean) and its contrast with a 5 px ring around it.
Rules: ``single`` (what a click shows), ``predicted`` / ``stable`` / ``edges`` / ``contrast`` (the
mask that scores highest on it, of the four or of the three), ``pick`` (the best of the four: what a
user reaches with the Segment widget's *Other mask*, choosing by eye). JSON on stdout (and ``--out``),
a markdown table on stderr. Chloroplast (tiled, slow) only when named in ``--data``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from napari_scroll_sam.prompts import farthest_from_boundary  # noqa: E402
from napari_scroll_sam.propagation.prior import window  # noqa: E402
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.segment import segment_slice  # noqa: E402
from _json_out import emit  # noqa: E402  (benchmarks/ is the script's folder)

FOUR = (0, 1, 2, 3)
RULES = {"single": lambda c: 0,
         "predicted (of 3)": lambda c: max(FOUR[1:], key=lambda i: c[i]["predicted"]),
         "stable (of 4)": lambda c: max(FOUR, key=lambda i: c[i]["stability"]),
         "edges (of 4)": lambda c: max(FOUR, key=lambda i: c[i]["edges"]),
         "contrast (of 4)": lambda c: max(FOUR, key=lambda i: c[i]["contrast"]),
         "pick (best of 4)": lambda c: max(FOUR, key=lambda i: c[i]["iou"])}


def iou(a, b):
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def image_scores(mask, grey):
    if not mask.any():
        return 0.0, 0.0
    rim = mask & ~ndimage.binary_erosion(mask)
    grad = np.hypot(*np.gradient(ndimage.gaussian_filter(grey, 1.0)))
    ring = ndimage.binary_dilation(mask, iterations=5) & ~mask
    inside, out = grey[mask], grey[ring]
    spread = np.sqrt(0.5 * (inside.var() + out.var())) + 1e-6 if out.size else 1.0
    return float(grad[rim].mean() / (grad.mean() + 1e-6)), float(abs(inside.mean() - out.mean()) / spread) if out.size else 0.0


def candidates(emb, g, z, grey):
    p = farthest_from_boundary(g)[None]
    out = []
    for i in FOUR:
        pred = segment_slice(emb, z, points=p, labels=[1], output=i)
        lo = pred.logits  # a tiled slice's prediction has no logits: no stability there
        stab = float((lo > 1).sum() / max(int((lo > -1).sum()), 1)) if len(emb.tiles) == 1 else None
        edges, contrast = image_scores(pred.masks[0], grey)
        out.append({"iou": iou(pred.masks[0], g), "predicted": float(pred.iou[0]), "stability": stab, "edges": edges,
                    "contrast": contrast, "area_ratio": float(pred.masks[0].sum() / max(g.sum(), 1))})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="isbi,mri1,mri2,scroll,scroll_touching")
    ap.add_argument("--model", default="small_hr")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    model = datasets.load_model(args.model)
    res = {"model": str(model.model_id), "rules": list(RULES), "datasets": {}}
    t0 = time.time()
    for name in args.data.split(","):
        ds = datasets.load(name)
        if ds is None:
            res["datasets"][name] = {"skipped": datasets.SKIPPED.get(name)}
            continue
        emb = SliceEmbedder(model, ds.volume)
        step = 8 if name.startswith("scroll") else 1
        rows = []
        for g in ds.objects.values():
            for z in range(0, g.shape[0], step):
                if g[z].any():
                    grey = window(np.asarray(ds.volume.read(z)), ds.volume.contrast_limits)
                    rows.append(candidates(emb, g[z], z, grey))
        res["datasets"][name] = {
            "object_slices": len(rows),
            "tiles_per_slice": len(emb.tiles),
            "rules": {r: (None if r.startswith("stable") and len(emb.tiles) > 1 else
                          round(float(np.mean([c[f(c)]["iou"] for c in rows])), 4)) for r, f in RULES.items()},
            "median_area_ratio": [round(float(np.median([c[i]["area_ratio"] for c in rows])), 2) for i in FOUR]}
        print(name, res["datasets"][name], file=sys.stderr, flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    names = [n for n, d in res["datasets"].items() if "rules" in d]
    print("| rule | " + " | ".join(f"{n} ({res['datasets'][n]['object_slices']})" for n in names) + " |\n|---|"
          + "---|" * len(names), file=sys.stderr)
    for r in RULES:
        cells = [res["datasets"][n]["rules"][r] for n in names]
        print(f"| {r} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells) + " |", file=sys.stderr)
    emit(res, args.out)


if __name__ == "__main__":
    main()
