"""Quality of propagation: one point on an object's middle slice, followed both ways, scored by IoU.

    python benchmarks/eval_propagation.py [--model small|vit_b|PATH] [--quick] [--table]
    python benchmarks/eval_propagation.py --model vit_b --max-slices 8 --objects 2   # slow on CPU
    python benchmarks/eval_propagation.py --no-stop      # stop rules off: every walk to the ends

Datasets (``--data``):

* ``em``: the ISBI 2012 EM stack in ``../shared/data/isbi2012-em`` (skipped with a message when
  absent). Ground truth: 2D connected components of label 255 on each slice, linked slice to slice
  by mutual largest overlap (``link_objects``); objects on >= ``--min-slices`` slices with a median
  area of 1000..15000 px, ``--objects`` of them spread over that size range.
* ``phantom``: ``scroll_phantom((48, 256, 256))``; objects = wraps (evenly spread).

Each object is prompted with one point (farthest from its boundary) on its middle slice and
propagated both ways per ``--strategies``. Scores per slice of the object's ground truth (slices
not reached score 0): ``mean_iou``; ``mean_iou_reached`` over the slices written; slices reached;
``extra_slices`` written where the object is absent; why each walk stopped. Embeddings are cached
in a temporary folder shared by all strategies (``encoder_calls`` per strategy: 0 after the first).

Prints JSON on stdout (``--table``: the markdown table instead) and the table on stderr. With the
built-in model's random weights (no trained weights shipped yet) IoUs are near zero: rerun with
``--model PATH`` for real figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import ndimage

try:
    import napari_scroll_sam  # noqa: F401
except ImportError:  # a bare checkout: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_scroll_sam.sam import models  # noqa: E402  (first: makes segment_anything importable)
from napari_scroll_sam.io.volume import Volume, open_volume  # noqa: E402
from napari_scroll_sam.prompts import farthest_from_boundary  # noqa: E402
from napari_scroll_sam.propagation import Seed, StopRule, propagate  # noqa: E402
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.tiling import Tiling  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STRATEGIES = "box+farthest,farthest,skeleton,centroid,farthest+logits"
T0 = time.perf_counter()


def log(msg):
    print(f"[eval_propagation {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def load(name, device="cpu"):
    """``models.load_model``, except that Meta's weights not downloaded yet (no network) give the
    seeded random initialisation, with a warning."""
    dev = models.resolve_device(device)
    if name in models.WEIGHTS and not (models.cache_dir() / models.WEIGHTS[name].filename).is_file():
        log(f"WARNING: {name} weights are not downloaded: random weights (seed {models.RANDOM_SEED}); "
            f"the masks mean nothing")
        cfg = models.CONFIGS[name]
        return models.SamModel(models._random_model(cfg).to(dev).eval(), cfg, dev, f"{name}:random", name)
    model = models.load_model(name, dev, progress=False)
    if model.model_id.endswith(":random"):
        log(f"WARNING: {model.model_id}: random weights, IoUs will be near zero (use --model PATH)")
    return model


def link_objects(fg, min_overlap=0.2):
    """(Z, H, W) bool → int32 object ids: 2D connected components per slice, a component continuing
    the one of the slice below with which it has the mutually largest overlap (at least
    ``min_overlap`` of the smaller of the two); other components start new objects."""
    out = np.zeros(fg.shape, np.int32)
    prev, prev_ids, next_id = None, None, 1
    for z in range(fg.shape[0]):
        comp, n = ndimage.label(fg[z])
        ids = np.zeros(n + 1, np.int32)
        if prev is not None and n:
            both = (prev > 0) & (comp > 0)
            pairs, counts = np.unique(prev[both].astype(np.int64) * (n + 1) + comp[both], return_counts=True)
            size_a, size_b = np.bincount(prev.ravel()), np.bincount(comp.ravel(), minlength=n + 1)
            best_a, best_b = {}, {}  # component -> (overlap, partner); strict '>' keeps the first: deterministic
            for p, c in zip(pairs, counts):
                a, b = divmod(int(p), n + 1)
                if c > best_a.get(a, (0,))[0]:
                    best_a[a] = (c, b)
                if c > best_b.get(b, (0,))[0]:
                    best_b[b] = (c, a)
            for b, (c, a) in best_b.items():
                if best_a[a][1] == b and c >= min_overlap * min(size_a[a], size_b[b]):
                    ids[b] = prev_ids[a]
        for b in range(1, n + 1):
            if not ids[b]:
                ids[b], next_id = next_id, next_id + 1
        out[z] = ids[comp]
        prev, prev_ids = comp, ids
    return out


def em_dataset(n_objects, min_slices):
    root = DATA / "isbi2012-em"
    if not (root / "image").is_dir() or not (root / "label").is_dir():
        log(f"skipping the EM stack: {root} not found (it lives in ../shared/data next to the repository)")
        return None
    vol = open_volume(root / "image")
    objs = link_objects(open_volume(root / "label").data.compute() == 255)
    cands = []
    for oid in range(1, int(objs.max()) + 1):
        zs = np.nonzero((objs == oid).any(axis=(1, 2)))[0]
        if len(zs) >= min_slices:
            med = float(np.median([(objs[z] == oid).sum() for z in zs]))
            if 1000 <= med <= 15000:
                cands.append((med, oid))
    cands.sort()
    pick = [cands[i][1] for i in sorted(set(np.linspace(0, len(cands) - 1, n_objects).round().astype(int)))]
    log(f"EM: {int(objs.max())} linked objects, {len(cands)} on >= {min_slices} slices of a reasonable size")
    return vol, {i + 1: objs == oid for i, oid in enumerate(pick)}


def phantom_dataset(n_objects, shape=(48, 256, 256)):
    from napari_scroll_sam.io.phantom import CONTRAST_LIMITS, scroll_phantom

    image, sheets, _ = scroll_phantom(shape, seed=0)
    vol = Volume(levels=[image.compute()], contrast_limits=CONTRAST_LIMITS, name="scroll_phantom")
    sheets = sheets.compute()
    wraps = np.unique(sheets[sheets > 0])
    pick = wraps[sorted(set(np.linspace(0, len(wraps) - 1, n_objects).round().astype(int)))]
    return vol, {i + 1: sheets == k for i, k in enumerate(pick)}


def reason(text):
    if text is None:
        return "end"
    for key, short in (("on the seed", "empty_seed"), ("empty mask", "empty"), ("predicted IoU", "pred_iou"),
                       ("previous slice", "slice_iou"), ("area changed", "area"), ("stop slice", "stop_slice")):
        if key in text:
            return short
    return text


def iou(a, b):
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def run_object(emb, gt, strategy, max_slices, stop):
    zs = np.nonzero(gt.any(axis=(1, 2)))[0]
    mid = int(zs[len(zs) // 2])
    lo = 0 if not max_slices else max(0, mid - max_slices // 2)
    hi = gt.shape[0] if not max_slices else min(gt.shape[0], lo + max_slices)
    labels = np.zeros(gt.shape, np.uint32)
    seed = Seed(1, mid, points=farthest_from_boundary(gt[mid])[None], labels=[1])
    t = time.perf_counter()
    reports = list(propagate(emb, [seed], labels, strategy=strategy, stop=stop, z_limits=(lo, hi)))
    dt = time.perf_counter() - t
    pred = labels == 1
    gz = [int(z) for z in zs if lo <= z < hi]
    per = [iou(pred[z], gt[z]) for z in gz]
    written = set(np.nonzero(pred.any(axis=(1, 2)))[0].tolist())
    stops = [reason(r.stopped) for r in reports if r.stopped]
    for d in (-1, 1):  # a walk that ran to the limit without a stop rule firing
        if not any(r.direction == d and r.stopped for r in reports) and any(r.direction == d for r in reports):
            stops.append("end")
    return {"mid": mid, "z_range": [lo, hi], "gt_slices": gz, "iou": [round(v, 4) for v in per],
            "mean_iou": float(np.mean(per)), "mean_iou_reached": float(np.mean([v for z, v in zip(gz, per)
                                                                                  if z in written] or [0.0])),
            "seed_iou": iou(pred[mid], gt[mid]), "slices_reached": len(written & set(gz)),
            "extra_slices": len(written - set(gz)), "stops": stops, "seconds": round(dt, 3)}


def evaluate(name, vol, objects, strategies, model, args, cache):
    tiling = Tiling(tile=10**6, halo=0) if args.tiling == "whole" else None
    emb = SliceEmbedder(model, vol, cache=cache, tiling=tiling, batch_size=args.batch_size or None)
    log(f"{name}: {vol.shape}, {len(objects)} objects, {len(emb.tiles)} tile(s) per slice")
    out = {"shape": list(vol.shape), "tiles_per_slice": len(emb.tiles),
           "objects": {oid: {"slices": int(g.any(axis=(1, 2)).sum()), "median_area": float(np.median(
               [s.sum() for s in g if s.any()]))} for oid, g in objects.items()}, "strategies": {}}
    stop = StopRule(0, 0, None, max_empty=vol.shape[0] + 1) if args.no_stop else StopRule()
    for s in strategies:
        calls, t = emb.encoder_calls, time.perf_counter()
        res = {oid: run_object(emb, g, s, args.max_slices, stop) for oid, g in objects.items()}
        summ = {k: float(np.mean([r[k] for r in res.values()])) for k in
                ("mean_iou", "mean_iou_reached", "seed_iou", "slices_reached", "extra_slices")}
        summ["gt_slices"] = float(np.mean([len(r["gt_slices"]) for r in res.values()]))
        summ["stops"] = dict(Counter(x for r in res.values() for x in r["stops"]).most_common())
        summ["encoder_calls"] = emb.encoder_calls - calls
        summ["seconds"] = round(time.perf_counter() - t, 2)
        out["strategies"][s] = {"summary": summ, "objects": res}
        log(f"{name} {s}: mean IoU {summ['mean_iou']:.3f}, {summ['encoder_calls']} encoder calls, "
            f"{summ['seconds']} s")
    out["encoder_calls"], out["encoded_images"] = emb.encoder_calls, emb.encoded_images
    return out


def table(result):
    rows = ["| data | strategy | mean IoU | IoU reached | seed IoU | slices reached / GT | extra | stops "
            "| enc. calls | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for d, res in result["datasets"].items():
        for s, v in res["strategies"].items():
            m = v["summary"]
            stops = ", ".join(f"{k} {n}" for k, n in m["stops"].items())
            rows.append(f"| {d} | {s} | {m['mean_iou']:.3f} | {m['mean_iou_reached']:.3f} | {m['seed_iou']:.3f} | "
                        f"{m['slices_reached']:.1f} / {m['gt_slices']:.1f} | {m['extra_slices']:.1f} | {stops} | "
                        f"{m['encoder_calls']} | {m['seconds']} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small", help="small, vit_b (random weights without network) or a path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default="em,phantom")
    ap.add_argument("--strategies", default=STRATEGIES)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--min-slices", type=int, default=10)
    ap.add_argument("--max-slices", type=int, default=0, help="limit each walk to this many slices around "
                                                                    "the prompt (0: all)")
    ap.add_argument("--tiling", choices=("auto", "whole"), default="auto",
                    help="auto: the plugin's default (tiles for slices > 1.5 x the model input)")
    ap.add_argument("--no-stop", action="store_true", help="no stop rules: walk to the volume's ends")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2 objects, 2 strategies, 8 slices")
    ap.add_argument("--table", action="store_true", help="print the markdown table on stdout, not JSON")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.quick:
        args.objects, args.max_slices, strategies = min(args.objects, 2), args.max_slices or 8, strategies[:2]
    model = load(args.model, args.device)
    result = {"model": models.model_summary(model), "random_weights": model.model_id.endswith(":random"),
              "args": {k: str(v) for k, v in vars(args).items()}, "strategies": strategies, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="eval_propagation_") as cache:
        for name in [d.strip() for d in args.data.split(",") if d.strip()]:
            ds = em_dataset(args.objects, args.min_slices) if name == "em" else phantom_dataset(args.objects) \
                if name == "phantom" else ap.error(f"unknown dataset {name!r} (em, phantom)")
            if ds is not None:
                result["datasets"][name] = evaluate(name, *ds, strategies, model, args, cache)
    md = table(result)
    print(md, file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(md if args.table else text)


if __name__ == "__main__":
    main()
