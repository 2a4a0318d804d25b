"""Does adapting the decoder on the anchors make the model better where the walk needs it?

    OMP_NUM_THREADS=1 python benchmarks/adapt_ceiling.py --dataset isbi --steps 60 200 --lr 1e-4 1e-3

``WalkConfig(adapt_steps=n)`` tunes a copy of the mask decoder on the anchor masks before a walk
(``propagation.adapt``). This scores what that buys the model itself: the P2 anchors of
``eval_quality.py`` (true masks every 5th / 10th slice of each object) are the training set, and
every other object-slice is prompted from its own true box and with one click at its deepest
point (the ceiling protocol), before and after adaptation, for each steps x lr given. JSON on
stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402  (puts the source tree on the path if needed)
import eval_quality as E  # noqa: E402
from napari_scroll_sam.prompts import farthest_from_boundary  # noqa: E402
from napari_scroll_sam.propagation import WalkConfig  # noqa: E402
from napari_scroll_sam.propagation.adapt import adapt_decoder  # noqa: E402
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.predictor import Predictor  # noqa: E402
from napari_scroll_sam.sam.segment import segment_slice  # noqa: E402


def ceiling(emb, ds, held, predictor):
    box, click = [], []
    for oid, z in held:
        g = ds.objects[oid][z]
        ys, xs = np.nonzero(g)
        b = np.array([ys.min(), xs.min(), ys.max(), xs.max()], float)
        box.append(E.iou(segment_slice(emb, z, box=b, predictor=predictor).masks[0], g))
        p = farthest_from_boundary(g)[None]
        click.append(E.iou(segment_slice(emb, z, points=p, labels=[1], predictor=predictor).masks[0], g))
    return round(float(np.mean(box)), 4), round(float(np.mean(click)), 4)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="isbi", choices=datasets.NAMES)
    ap.add_argument("--model", default="small_hr")
    ap.add_argument("--steps", type=int, nargs="+", default=[60, 200])
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-4, 1e-3])
    ap.add_argument("--cache", default=None, help="embedding cache folder (default: none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    kw = {"max_objects": 8} if args.dataset == "isbi" else {"max_objects": 16} if args.dataset == "chloroplast" else {}
    ds = datasets.load(args.dataset, **kw)
    if ds is None:
        sys.exit(f"adapt_ceiling: {args.dataset} skipped: {datasets.SKIPPED.get(args.dataset)}")
    model = datasets.load_model(args.model)
    emb = SliceEmbedder(model, ds.volume, cache=args.cache)
    for _ in emb.embed():
        pass
    anchors, held = {}, []
    for oid, g in ds.objects.items():
        zs = E.anchors_of(g, "p2")
        anchors[oid] = {z: (g[z], None) for z in zs}
        lo, hi = E.extent(g)
        held += [(oid, z) for z in range(lo, hi + 1) if z not in zs and g[z].any()]
    base = Predictor(model)
    res = {"dataset": args.dataset, "model": model.model_id, "anchors": sum(map(len, anchors.values())),
           "held_out_object_slices": len(held), "before": dict(zip(("box", "click"), ceiling(emb, ds, held, base))),
           "runs": []}
    print(f"[adapt_ceiling] {args.dataset}: before {res['before']}", file=sys.stderr, flush=True)
    for steps in args.steps:
        for lr in args.lr:
            t = time.perf_counter()
            pred = adapt_decoder(emb, base, anchors, WalkConfig(adapt_steps=steps, adapt_lr=lr),
                                 np.random.default_rng(0))
            row = {"steps": steps, "lr": lr, **dict(zip(("box", "click"), ceiling(emb, ds, held, pred))),
                   "adapt": adapt_decoder.last, "seconds": round(time.perf_counter() - t, 1)}
            res["runs"].append(row)
            print(f"[adapt_ceiling] {row}", file=sys.stderr, flush=True)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
