"""The quality benchmark: propagation and the model, on every labelled volume, beside baselines.

    python benchmarks/eval_quality.py                      # all volumes, all protocols (<= 15 min, 2 cores)
    python benchmarks/eval_quality.py --quick              # fewer objects / volumes (<= 2 min)
    python benchmarks/eval_quality.py --model vit_b --device cuda
    python benchmarks/eval_quality.py --json out.json --table

Volumes (``benchmarks/datasets.py``, evaluation parts of ``data_split.json`` only): the ISBI EM
stack, the chloroplast EM (tiled slices), the two brain MRI tumour ROIs, the File-menu scroll
(8 wraps) and a scroll with touching wraps (14).

Protocols, on the same objects; every walk stays within its object's z extent:

* ``p1``: the true mask on the object's middle slice, carried to both ends; stop rules off.
* ``p1_stop``: the same with the default stop rules and no z limits, as a user runs it (slices
  reached, why each walk stopped, and how far it ran past the object: ``beyond_slices``, the
  slices outside the object's extent given a mask, ``volume_iou`` (3D in the table), each object's
  IoU over the whole volume, seed slices out (an overrun and an early stop both cost there; every
  protocol reports it), and ``beyond_share``, the share of its
  predicted voxels there).
* ``p2``: true masks on every k-th slice of the object as anchors (k = 5 for <= 30 slices, else
  10), gaps filled, ends walked.
* ``p3``: one positive point (the deepest point) on the middle slice instead of the mask.
* ``p3_alone``: the same clicks, each object clicked and walked alone (one wrap of a scroll at a
  time, as one follows a single sheet); the baselines are P3's (they carry each object alone).
* ``p3_pick``: that click's best of SAM's four masks (refined) as the seed: what a user walks
  from after choosing by eye with the Segment widget's *Other mask* (O) and committing.
* ``ceiling``: each slice prompted from its own true box (and, as ``click``, its deepest point),
  no propagation: what one slice's segmentation can do at best, as ``segment_slice`` draws it
  (settled on the slice's edges) and the model's own masks (``box_raw`` / ``click_raw``);
  ``click_pick``: the best of SAM's four masks for that click, what a user reaches choosing by eye
  with the Segment widget's *Other mask* (O) (refined); ``box_shown`` / ``click_shown``: what the
  Segment widget's S shows for that prompt (``sheet.turn_of_prompt``: on a scroll, the turn the
  click lies on / the box was drawn around, read from the image; elsewhere the same as
  ``box`` / ``click``).

Methods: ``copy`` (the seed / nearest anchor mask), ``flow`` (optical-flow warping of the previous
mask slice to slice: scikit-image ``optical_flow_ilk`` on the windowed intensities, full
resolution, the baseline), ``blind`` (our walk taking the model's answers as they are: the walk of
old), ``ours`` (the default walk: motion prior, corridor, competition), ``adapt`` (``ours`` after
adapting the decoder on the anchors). All objects of a volume walk together (as a user runs it);
baselines carry each object alone. micro-sam's ``segment_mask_in_volume`` runs when micro_sam
imports (``pip install micro-sam`` beside the project; it needs ``python-elf``, ``nifty``, and
``vigra`` from conda-forge: ``mamba install -c conda-forge micro_sam``), else it is reported as
skipped with the reason.

Metrics per protocol and method: mean IoU over object-slices (seed / anchor slices excluded; a
slice not reached scores 0), Dice, slices reached, sheet switches (fraction of predicted voxels on
another ground-truth object), seconds per object-slice. JSON on stdout (or ``--json``), the
markdown table on stderr (``--table``: on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402  (puts the source tree on the path if needed)

from napari_scroll_sam.sam import models  # noqa: E402
from napari_scroll_sam.prompts import farthest_from_boundary  # noqa: E402
from napari_scroll_sam.propagation import Seed, StopRule, WalkConfig, propagate  # noqa: E402
from napari_scroll_sam.propagation.prior import window  # noqa: E402
from napari_scroll_sam.propagation.sheet import turn_of_prompt  # noqa: E402
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.segment import segment_slice  # noqa: E402

T0 = time.perf_counter()
PROTOCOLS = ("p1", "p1_stop", "p2", "p3", "p3_alone", "p3_pick", "ceiling")
METHODS = ("copy", "flow", "blind", "ours", "adapt")


def log(msg):
    print(f"[eval_quality {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def iou(a, b):
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def extent(g):
    zs = np.nonzero(g.any(axis=(1, 2)))[0]
    return int(zs[0]), int(zs[-1])


def anchors_of(g, protocol):
    lo, hi = extent(g)
    if protocol == "p2":
        k = 5 if hi - lo + 1 <= 30 else 10
        return list(range(lo, hi + 1, k))
    zs = np.nonzero(g.any(axis=(1, 2)))[0]
    return [int(zs[len(zs) // 2])]


# --- baselines --------------------------------------------------------------------------


class Flow:
    """Optical flow (ILK) between slices, full resolution, cached per slice pair and box."""

    def __init__(self, image, limits):
        self.image, self.limits, self.cache = image, limits, {}

    def field(self, z_from, z_to, box):
        key = (z_from, z_to, box)
        if key not in self.cache:
            from skimage.registration import optical_flow_ilk

            y0, x0, y1, x1 = box
            a = window(self.image[z_from, y0:y1, x0:x1], self.limits)
            b = window(self.image[z_to, y0:y1, x0:x1], self.limits)
            if len(self.cache) > 256:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = optical_flow_ilk(b, a, radius=7)
        return self.cache[key]

    def warp(self, mask, z_from, z_to):
        from scipy import ndimage

        H, W = mask.shape
        if not mask.any():
            return mask
        if H * W <= 512 * 512:
            box = (0, 0, H, W)
        else:
            ys, xs = np.nonzero(mask)
            box = (max(0, ys.min() - 16), max(0, xs.min() - 16), min(H, ys.max() + 17), min(W, xs.max() + 17))
        y0, x0, y1, x1 = box
        f = self.field(z_from, z_to, box)
        gy, gx = np.mgrid[0:y1 - y0, 0:x1 - x0]
        out = np.zeros_like(mask)
        out[y0:y1, x0:x1] = ndimage.map_coordinates(mask[y0:y1, x0:x1].astype(np.float32),
                                                    [gy + f[0], gx + f[1]], order=1) >= 0.5
        return out


def baseline(method, g, seeds, flow):
    """(Z, H, W) prediction carrying the seed masks {z: mask} to the object's extent."""
    lo, hi = extent(g)
    pred = np.zeros(g.shape, bool)
    zs = sorted(seeds)
    for z in zs:
        pred[z] = seeds[z]
    for z in range(lo, hi + 1):
        if z in seeds:
            continue
        near = min(zs, key=lambda a: (abs(a - z), a))  # the nearest anchor (lower on ties)
        if method == "copy":
            pred[z] = seeds[near]
    if method == "flow":  # walk slice to slice away from each anchor up to the midpoints
        bounds = [lo - 1] + [(a + b) // 2 for a, b in zip(zs[:-1], zs[1:])] + [hi]
        for i, a in enumerate(zs):
            m = seeds[a]
            for z in range(a + 1, (bounds[i + 1] if i + 1 < len(zs) else hi) + 1):
                m = flow.warp(m, z - 1, z)
                pred[z] = m
            m = seeds[a]
            for z in range(a - 1, bounds[i], -1):
                m = flow.warp(m, z + 1, z)
                pred[z] = m
    return pred


# --- scoring ----------------------------------------------------------------------------


def score(pred_by_obj, objects, seeds_by_obj, seconds):
    ious, dices, reached, total, wrong, voxels, vol_ious = [], [], 0, 0, 0, 0, []
    gt_any = {k: g for k, g in objects.items()}
    for oid, g in objects.items():
        p = pred_by_obj[oid]
        lo, hi = extent(g)
        keep = np.ones(len(g), bool)
        keep[sorted(seeds_by_obj[oid])] = False  # every slice but the seeds': overruns count against it
        vol_ious.append(iou(p[keep], g[keep]))
        for z in range(lo, hi + 1):
            if z in seeds_by_obj[oid] or not g[z].any():
                continue
            total += 1
            v = iou(p[z], g[z])
            ious.append(v)
            s = p[z].sum() + g[z].sum()
            dices.append(2 * np.logical_and(p[z], g[z]).sum() / s if s else 1.0)
            reached += bool(p[z].any())
        others = np.zeros(g.shape, bool)
        for k, h in gt_any.items():
            if k != oid:
                others |= h
        wrong += int((p & others).sum())
        voxels += int(p.sum())
    gt_all = np.logical_or.reduce(list(objects.values()))
    pred_all = np.logical_or.reduce([pred_by_obj[k] for k in objects])
    for oid in objects:  # seed/anchor slices out, as for the mean IoU
        for z in seeds_by_obj[oid]:
            gt_all[z] = pred_all[z] = False
    return {"mean_iou": round(float(np.mean(ious)), 4) if ious else None,
            "dice": round(float(np.mean(dices)), 4) if dices else None,
            "reached": reached, "object_slices": total,
            # each object's 3D IoU over the whole volume (seed slices out): a walk past the
            # object's end, or a stop before it, both cost here
            "volume_iou": round(float(np.mean(vol_ious)), 4) if vol_ious else None,
            "switches": round(wrong / voxels, 4) if voxels else 0.0,
            # all objects as one (a scroll's sheet, whatever wrap each voxel went to)
            "union_iou": round(float((gt_all & pred_all).sum() / max((gt_all | pred_all).sum(), 1)), 4),
            "s_per_object_slice": round(seconds / max(total, 1), 4)}


def overrun(pred_by_obj, objects):
    """How far walks ran past their objects: slices outside each object's z extent holding some
    of its predicted voxels, and the share of its predicted voxels there."""
    slices, out, total = 0, 0, 0
    for oid, g in objects.items():
        lo, hi = extent(g)
        per = pred_by_obj[oid].sum(axis=(1, 2))
        outside = np.r_[per[:lo], per[hi + 1:]]
        slices += int((outside > 0).sum())
        out, total = out + int(outside.sum()), total + int(per.sum())
    return {"beyond_slices": slices, "beyond_share": round(out / total, 4) if total else 0.0}


def stop_reason(text):
    for key, short in (("empty mask", "empty"), ("predicted IoU", "pred_iou"), ("previous slice", "slice_iou"),
                       ("area changed", "area"), ("stop slice", "stop_slice")):
        if text and key in text:
            return short
    return text


def picked_click(emb, g, z):
    """The best (IoU with the truth: a user choosing by eye) of SAM's four refined masks for a
    click at the deepest point of ``g[z]``."""
    p = farthest_from_boundary(g[z])[None]
    masks = [segment_slice(emb, z, points=p, labels=[1], output=i).masks[0] for i in range(4)]
    return max(masks, key=lambda m: iou(m, g[z]))


def run_ours(emb, ds, protocol, cfg, stop, picked=None):
    seeds, limits, seed_z = [], {}, {}
    for oid, g in ds.objects.items():
        lo, hi = extent(g)
        limits[oid] = (lo, hi + 1)
        zs = anchors_of(g, protocol)
        seed_z[oid] = set(zs)
        for z in zs:
            if protocol in ("p3", "p3_alone"):
                seeds.append(Seed(oid, z, points=farthest_from_boundary(g[z])[None], labels=[1]))
            elif protocol == "p3_pick":
                seeds.append(Seed(oid, z, mask=picked[oid]))
            else:
                seeds.append(Seed(oid, z, mask=g[z]))
    labels = np.zeros(ds.volume.shape, np.uint32)
    t = time.perf_counter()
    if protocol == "p3_alone":  # one object at a time, each in labels of its own
        reports, pred = [], {}
        for s in seeds:
            own = np.zeros(ds.volume.shape, np.uint32)
            reports += list(propagate(emb, [s], own, strategy="box+farthest", stop=stop,
                                      z_limits={s.object_id: limits[s.object_id]}, walk=cfg))
            pred[s.object_id] = own == s.object_id
    else:
        reports = list(propagate(emb, seeds, labels, strategy="box+farthest", stop=stop,
                                 z_limits=None if protocol == "p1_stop" else limits, walk=cfg))
        pred = {oid: labels == oid for oid in ds.objects}
    dt = time.perf_counter() - t
    out = score(pred, ds.objects, seed_z, dt)
    if protocol == "p1_stop":
        out.update(overrun(pred, ds.objects))
    out["stops"] = dict(Counter(stop_reason(r.stopped) for r in reports if r.stopped).most_common())
    out["sources"] = dict(Counter(r.source for r in reports if r.direction and not r.stopped).most_common())
    return out, pred


def run_baseline(method, ds, protocol, flow, p3_seeds=None):
    t = time.perf_counter()
    pred, seed_z = {}, {}
    for oid, g in ds.objects.items():
        zs = anchors_of(g, protocol)
        seed_z[oid] = set(zs)
        seeds = {z: (p3_seeds[oid] if protocol in ("p3", "p3_pick") else g[z]) for z in zs}
        pred[oid] = baseline(method, g, seeds, flow)
    return score(pred, ds.objects, seed_z, time.perf_counter() - t)


def ceiling(emb, ds):
    """Each slice prompted from its own true box and one deepest-point click: the masks as
    ``segment_slice`` draws them (settled on the slice's edges) and the model's own
    (``refine=False``: ``box_raw`` / ``click_raw``)."""
    got = {k: [] for k in ("box", "click", "box_raw", "click_raw", "click_pick", "box_shown", "click_shown")}
    t = time.perf_counter()
    vol = ds.volume
    for oid, g in ds.objects.items():
        for z in range(g.shape[0]):
            if not g[z].any():
                continue
            ys, xs = np.nonzero(g[z])
            b = np.array([ys.min(), xs.min(), ys.max(), xs.max()], float)
            p = farthest_from_boundary(g[z])[None]

            def read(bb, z=z):
                return window(np.asarray(vol.read(z, (bb[0], bb[2]), (bb[1], bb[3]))), vol.contrast_limits)

            for refine, sfx in ((True, ""), (False, "_raw")):
                mb = segment_slice(emb, z, box=b, refine=refine).masks[0]
                mc = segment_slice(emb, z, points=p, labels=[1], refine=refine).masks[0]
                got["box" + sfx].append(iou(mb, g[z]))
                got["click" + sfx].append(iou(mc, g[z]))
                if refine:  # what S shows: on a scroll, the turn the prompt lies on
                    tb, tc = turn_of_prompt(mb, read, box=b), turn_of_prompt(mc, read, p, [1])
                    got["box_shown"].append(iou(mb if tb is None else tb, g[z]))
                    got["click_shown"].append(iou(mc if tc is None else tc, g[z]))
            others = [iou(segment_slice(emb, z, points=p, labels=[1], output=i).masks[0], g[z]) for i in (1, 2, 3)]
            got["click_pick"].append(max([got["click"][-1], *others]))  # output 0 is the click's single mask
    n = max(len(got["box"]), 1)
    out = {k: round(float(np.mean(v)), 4) for k, v in got.items()}
    return {**out, "n": len(got["box"]), "s_per_object_slice": round((time.perf_counter() - t) / n, 4)}


def micro_sam_status():
    try:
        import micro_sam  # noqa: F401

        return None
    except Exception as exc:  # noqa: BLE001
        return f"micro_sam not importable here ({type(exc).__name__}: {exc}); see the docstring for the recipe"


def evaluate(ds, model, args, cache):
    emb = SliceEmbedder(model, ds.volume, cache=cache)
    t = time.perf_counter()
    for _ in emb.embed():
        pass
    enc = time.perf_counter() - t
    log(f"{ds.name}: {ds.volume.shape}, {len(ds.objects)} objects, {ds.object_slices} object-slices, "
        f"{len(emb.tiles)} tile(s)/slice, encoded in {enc:.1f} s")
    image = np.asarray(ds.volume.data) if ds.volume.data.nbytes < 2**31 else ds.volume.data
    flow = Flow(image, ds.volume.contrast_limits)
    res = {"source": ds.source, "shape": list(ds.volume.shape), "objects": len(ds.objects),
           "object_slices": ds.object_slices, "tiles_per_slice": len(emb.tiles), "encode_s": round(enc, 2)}
    cfgs = {"blind": WalkConfig.blind(), "ours": WalkConfig(), "adapt": WalkConfig(adapt_steps=args.adapt_steps)}
    for protocol in args.protocols:
        if protocol == "ceiling":
            res["ceiling"] = ceiling(emb, ds)
            log(f"{ds.name} ceiling: {res['ceiling']}")
            continue
        row = {}
        stop = StopRule(min_contrast_share=args.min_contrast_share or None) if protocol == "p1_stop" else StopRule.off()
        p3_seeds = None
        if protocol == "p3_pick":  # the same picked seed for every method
            p3_seeds = {oid: picked_click(emb, g, anchors_of(g, "p3")[0]) for oid, g in ds.objects.items()}
        for method in args.methods:
            if method in ("copy", "flow"):
                if protocol in ("p1_stop", "p3_alone"):  # (p3_alone's baselines are p3's)
                    continue
                if protocol == "p3" and p3_seeds is None:
                    p3_seeds = {}
                    for oid, g in ds.objects.items():
                        z = anchors_of(g, "p3")[0]
                        p3_seeds[oid] = segment_slice(emb, z, points=farthest_from_boundary(g[z])[None],
                                                      labels=[1]).masks[0]
                row[method] = run_baseline(method, ds, protocol, flow, p3_seeds)
            else:
                if method == "adapt" and protocol in ("p1_stop", "p3", "p3_alone", "p3_pick"):
                    continue
                row[method], _ = run_ours(emb, ds, protocol, cfgs[method], stop, p3_seeds)
            log(f"{ds.name} {protocol} {method}: {row[method]}")
        res[protocol] = row
    return res


def table(result):
    rows = ["| volume | protocol | " + " | ".join(result["methods"]) + " |",
            "|---|---|" + "---|" * len(result["methods"])]
    for name, res in result["datasets"].items():
        for p in result["protocols"]:
            if p == "ceiling" and "ceiling" in res:
                c = res["ceiling"]
                raw = (f"; the model's own {c['box_raw']:.3f} / {c['click_raw']:.3f}" if "box_raw" in c else "")
                pick = f"; click, best of 4 (Other mask) {c['click_pick']:.3f}" if "click_pick" in c else ""
                shown = (f"; as S shows it (a scroll's turn) {c['box_shown']:.3f} / {c['click_shown']:.3f}"
                         if "box_shown" in c else "")
                rows.append(f"| {name} | ceiling: true box / click | {c['box']:.3f} / {c['click']:.3f}{raw}{pick}{shown} "
                            f"(n={c['n']})" + " |" * len(result["methods"]))
                continue
            if p not in res:
                continue
            cells = []
            for m in result["methods"]:
                v = res[p].get(m)
                if v is None:
                    cells.append("–")
                    continue
                cell = f"{v['mean_iou']:.3f}" if v["mean_iou"] is not None else "–"
                if p == "p1_stop":
                    cell += f" ({v['reached']}/{v['object_slices']}"
                    cell += f", +{v['beyond_slices']} beyond" if "beyond_slices" in v else ""
                    cell += f", 3D {v['volume_iou']:.3f})" if v.get("volume_iou") is not None else ")"
                if v["switches"] > 0.02:
                    cell += f" sw {v['switches']:.2f}"
                    if "union_iou" in v:  # objects that swap voxels: how well they cover all of them together
                        cell += f" ∪ {v['union_iou']:.2f}"
                cells.append(cell)
            rows.append(f"| {name} | {p} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from napari_scroll_sam.layers import BUILTIN_MODEL

    ap.add_argument("--model", default=BUILTIN_MODEL, help="the built-in model (default), small, small_hr, vit_b, "
                                                          "vit_l, vit_h or a checkpoint path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=",".join(datasets.NAMES))
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--adapt-steps", type=int, default=60)
    ap.add_argument("--min-contrast-share", type=float, default=StopRule().min_contrast_share,
                    help="p1_stop's contrast stop rule (0: off; default: StopRule's)")
    ap.add_argument("--chloroplast-objects", type=int, default=16,
                    help="chloroplasts scored (spread over sizes; 0: all 62 of the split, ~4x the time)")
    ap.add_argument("--quick", action="store_true", help="EM stack (4 objects), MRI and the File-menu scroll only")
    ap.add_argument("--table", action="store_true", help="print the markdown table on stdout, not JSON")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    ap.add_argument("--cache", type=Path, help="embedding cache folder (default: a temporary one)")
    args = ap.parse_args(argv)
    args.protocols = [p for p in args.protocols.split(",") if p]
    args.methods = [m for m in args.methods.split(",") if m]
    names = [n for n in args.data.split(",") if n]
    if args.quick:
        names = [n for n in names if n in ("isbi", "mri1", "scroll")]
    model = datasets.load_model(args.model, args.device)
    result = {"model": models.model_summary(model), "args": {k: str(v) for k, v in vars(args).items()},
              "protocols": args.protocols, "methods": args.methods, "micro_sam": micro_sam_status() or "ran",
              "datasets": {}, "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="eval_quality_") as tmp:
        cache = args.cache or tmp
        for name in names:
            kw = {"max_objects": 4} if args.quick and name == "isbi" else \
                {"max_objects": args.chloroplast_objects} if name == "chloroplast" else {}
            ds = datasets.load(name, **kw)
            if ds is None:
                result["skipped"][name] = datasets.SKIPPED[name]
                log(f"skipping {name}: {datasets.SKIPPED[name]}")
                continue
            result["datasets"][name] = evaluate(ds, model, args, cache)
    result["seconds"] = round(time.perf_counter() - T0, 1)
    md = table(result)
    print(md, file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(md if args.table else text)


if __name__ == "__main__":
    main()
