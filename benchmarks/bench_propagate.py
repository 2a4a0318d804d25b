"""Speed of propagation: one object through K slices, ``propagate`` against the naive SAM loop.

    python benchmarks/bench_propagate.py [--quick] [--data phantom|em] [--slices 32]   # CPU, small
    python benchmarks/bench_propagate.py --device cuda            # small + vit_b, peak CUDA memory

Prints one JSON document on stdout (progress on stderr). Per model, on the same slices:

* ``naive``: ``segment_anything.SamPredictor``: per slice ``set_image(rgb)`` then ``predict`` from a
  prompt made from the previous slice's mask (``prompts.make_prompt``, the same strategy) — the
  loop a user would write. The uint8 RGB slices are made before timing.
* ``ours_cold``: ``propagate`` with an empty embedding cache (a fresh temporary folder): batched
  encoding ahead of the walk, cache writes, decoding, writing labels.
* ``ours_warm``: ``propagate`` again on a new ``SliceEmbedder`` over the same cache folder: embeddings
  read from disk, the encoder is not called (checked).
* ``ours_cold`` / ``ours_warm`` use the default walk (motion prior, corridor, snap);
  ``*_prior_off`` the same with ``WalkConfig.blind()`` (the model's answers as they are);
  ``*_dis`` the default walk with OpenCV's DIS flow (``WalkConfig(flow="dis")``), the fast prior;
  ``*_every2`` / ``*_every4`` the default walk asking the model on every 2nd / 4th slice only
  (``WalkConfig(model_every=n)``: the prior carries the others, which are never encoded).
* ``walk_ms_per_slice_warm``: ms per slice of warm walks adding the pieces one at a time (flow
  prior, corridor, snap, memory of 3): what each costs.
* ``decoder_only_ms``: median per slice of ``Predictor.predict`` on embeddings already in memory
  (ours) and of ``SamPredictor.predict`` after ``set_image`` (naive; prompt making excluded).
* ``masks``: mean areas and per-slice IoU of ours vs naive and warm vs cold (the cache holds float16,
  a cold walk decodes from the encoder's float32 output, so the two may differ slightly).

The object is seeded as a mask on slice 0 (phantom: the middle wrap; EM: the largest cell) and walks
up with the stop rules off, so every slice is decoded whatever the weights (random here: timings do
not depend on them). Slices are whole (no tiling), as SamPredictor sees them. slices/s counts the
K - 1 slices walked; ``speedup_*`` = naive seconds / ours seconds; times are the best of ``--reps``.
Ours encodes in bf16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX-512 BF16,
``sam/precision.py``; ``NAPARI_SCROLL_SAM_CPU_BF16=0`` turns it off), naive always in float32:
the JSON's ``encoder_dtype`` says which ran. Needs the package's dependencies (dask,
zarr, scipy) on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import DATA, load_model as load  # noqa: E402  (also puts the source tree on the path if needed)
from napari_scroll_sam.io.volume import Volume, open_volume  # noqa: E402
from napari_scroll_sam.prompts import make_prompt  # noqa: E402
from napari_scroll_sam.propagation import Seed, StopRule, WalkConfig, propagate  # noqa: E402
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.predictor import Predictor  # noqa: E402
from napari_scroll_sam.sam.tiling import Tiling  # noqa: E402
from napari_scroll_sam.sampling import EverySlice, sample_image  # noqa: E402
from segment_anything import SamPredictor  # noqa: E402  (importable once napari_scroll_sam.sam is)

WHOLE = Tiling(tile=10**6, halo=0)  # never tile: SamPredictor resizes whole slices
T0 = time.perf_counter()


def log(msg):
    print(f"[bench_propagate {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def r(x, n=4):
    return None if x is None else float(f"{x:.{n}g}")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_data(kind, k):
    """(numpy-backed Volume of k slices, seed mask on slice 0)."""
    if kind == "phantom":
        from napari_scroll_sam.io.phantom import CONTRAST_LIMITS, scroll_phantom

        image, sheets, _ = scroll_phantom((k, 256, 256), seed=0)
        s0 = sheets[0].compute()
        wraps = np.unique(s0[s0 > 0])
        return Volume(levels=[image.compute()], contrast_limits=CONTRAST_LIMITS, name="phantom"), \
            s0 == wraps[len(wraps) // 2]
    root = DATA / "isbi2012-em"
    if not (root / "image").is_dir():
        sys.exit(f"bench_propagate: {root} not found (use --data phantom)")
    from scipy import ndimage

    vol = open_volume(root / "image")
    k = min(k, vol.shape[0])
    comp, _ = ndimage.label(open_volume(root / "label").data[0].compute() == 255)
    seed = comp == int(np.argmax(np.bincount(comp.ravel())[1:])) + 1
    return Volume(levels=[vol.data[:k].compute()], contrast_limits=vol.contrast_limits, name="em"), seed


def timed(fn, dev, reps):
    """(best seconds, cpu_util, last output) over ``reps`` calls; peak CUDA memory added by caller."""
    best, util, out = None, None, None
    for _ in range(reps):
        sync(dev)
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        sync(dev)
        dt = time.perf_counter() - t
        if best is None or dt < best:
            best, util = dt, (time.process_time() - c) / dt / torch.get_num_threads()
    return best, (r(util, 2) if dev.type == "cpu" else None), out


def ours(model, vol, seed, strategy, cache, bs, stop, walk=None):
    emb = SliceEmbedder(model, vol, cache=cache, tiling=WHOLE, batch_size=bs)
    labels = np.zeros(vol.shape, np.uint32)
    reports = list(propagate(emb, [Seed(1, 0, mask=seed)], labels, strategy=strategy, stop=stop, direction="up",
                             walk=walk))
    emb.walked = sum(1 for x in reports if x.direction and not x.stopped)  # must be every slice but the seed's
    return labels == 1, emb


def naive(model, rgbs, seed, strategy, split):
    """The loop a user would write; ``split`` collects set_image / prompt / predict seconds per slice."""
    pred, dev, rng = SamPredictor(model.sam), model.device, np.random.default_rng(0)
    prev, logits, masks = seed, None, [seed]
    for rgb in rgbs[1:]:
        t0 = time.perf_counter()
        pred.set_image(rgb)
        sync(dev)
        t1 = time.perf_counter()
        pr = make_prompt(prev, strategy, rng=rng)
        t2 = time.perf_counter()
        m, _, low = pred.predict(
            point_coords=pr.points[:, ::-1].copy() if len(pr.points) else None,
            point_labels=pr.labels if len(pr.points) else None,
            box=pr.box[[1, 0, 3, 2]] if pr.box is not None else None,
            mask_input=logits if pr.use_logits and logits is not None else None, multimask_output=False)
        sync(dev)
        t3 = time.perf_counter()
        for key, dt in (("set_image", t1 - t0), ("prompt", t2 - t1), ("predict", t3 - t2)):
            split.setdefault(key, []).append(dt)
        if m[0].any():
            prev, logits = m[0], low
        masks.append(m[0])
    return np.stack(masks)


def decoder_only(model, emb, seed, strategy, dev, reps):
    """Median ms of ``Predictor.predict`` on in-memory embeddings (one prompt from the seed mask),
    over all slices and ``reps``: a median, as single calls are short and a shared CPU is noisy."""
    pr = make_prompt(seed, strategy, rng=np.random.default_rng(0))
    tensors = [emb.get(z).tensor[0] for z in range(1, emb.volume.shape[0])]
    p, size = Predictor(model), emb.original_size
    kw = {"boxes": pr.box} if pr.box is not None else {}
    if len(pr.points):
        kw.update(points=pr.points, point_labels=pr.labels)
    times = [timed(lambda: p.predict(t, size, **kw), dev, 1)[0] for _ in range(reps) for t in tensors]
    return 1e3 * float(np.median(times))


def agreement(a, b):
    """Mean IoU per slice of two (K, H, W) mask stacks (1 where both are empty)."""
    inter, union = (a & b).sum(axis=(1, 2)), (a | b).sum(axis=(1, 2))
    return r(float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0))))


def bench_model(name, args, dev, vol, seed, rgbs):
    model = load(name, dev)
    n = vol.shape[0] - 1
    stop = StopRule(0, 0, None, max_empty=vol.shape[0] + 1, min_contrast_share=None)  # walk every slice whatever the masks
    bs = args.batch_size or None
    from napari_scroll_sam.sam.precision import compute_dtype

    res = {"model_id": model.model_id, "random_weights": model.model_id.endswith(":random"),
           "encoder_dtype": str(compute_dtype(dev)).replace("torch.", ""),
           "img_size": model.img_size, "slices_walked": n}
    with tempfile.TemporaryDirectory() as warmup:  # untimed: first-call costs of both paths
        ours(model, Volume(levels=[vol.data[:3]], contrast_limits=vol.contrast_limits, name="warmup"), seed,
             args.strategy, warmup, bs, stop)
        naive(model, rgbs[:2], seed, args.strategy, {})

    def peak(fn):
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        out = fn()
        return out, (r(torch.cuda.max_memory_allocated(dev) / 2**30) if dev.type == "cuda" else None)

    splits = []

    def run_naive():
        splits.append({})
        return naive(model, rgbs, seed, args.strategy, splits[-1])
    (t, util, nmasks), mem = peak(lambda: timed(run_naive, dev, args.reps))
    split = min(splits, key=lambda s: sum(map(sum, s.values())))  # the best rep's
    res["naive"] = {"seconds": r(t), "slices_per_s": r(n / t), "cpu_util": util, "peak_gib": mem,
                    **{f"{k}_s": r(sum(v)) for k, v in split.items()}}
    caches, variants = [], {"": WalkConfig(), "_prior_off": WalkConfig.blind(), "_dis": WalkConfig(flow="dis"),
                            "_every2": WalkConfig(model_every=2), "_every4": WalkConfig(model_every=4)}
    for suffix, walk in variants.items():
        def cold():
            caches.append(tempfile.TemporaryDirectory())
            return ours(model, vol, seed, args.strategy, caches[-1].name, bs, stop, walk)
        (t, util, (omasks, emb)), mem = peak(lambda: timed(cold, dev, args.reps))
        res["ours_cold" + suffix] = {"seconds": r(t), "slices_per_s": r(n / t), "cpu_util": util, "peak_gib": mem,
                                     "encoder_calls": emb.encoder_calls, "batch_size": emb.batch_size}
        cache = caches[-1].name
        (t, util, (wmasks, emb)), mem = peak(lambda: timed(lambda: ours(model, vol, seed, args.strategy, cache, bs,
                                                                             stop, walk), dev, args.reps))
        if emb.encoder_calls or emb.walked != n:
            raise AssertionError(f"warm run: {emb.encoder_calls} encoder calls (expected 0), {emb.walked} of {n} "
                                 f"slices walked (a stop rule fired?)")
        res["ours_warm" + suffix] = {"seconds": r(t), "slices_per_s": r(n / t), "cpu_util": util, "peak_gib": mem,
                                     "encoder_calls": emb.encoder_calls}
        res["speedup_cold_vs_naive" + suffix] = r(res["naive"]["seconds"] / res["ours_cold" + suffix]["seconds"], 3)
        res["speedup_warm_vs_naive" + suffix] = r(res["naive"]["seconds"] / res["ours_warm" + suffix]["seconds"], 3)
        if not suffix:
            default_masks = (omasks, wmasks)
    omasks, wmasks = default_masks
    # what each piece of the walk costs per slice (warm cache: no encoder), added one at a time
    parts = {"blind": WalkConfig.blind(), "flow": WalkConfig(snap=None, corridor=None, accept=0.0),
             "flow+corridor": WalkConfig(snap=None), "flow+corridor+snap (default)": WalkConfig(),
             "default+memory=3": WalkConfig(memory=3), "default, DIS flow": WalkConfig(flow="dis")}
    res["walk_ms_per_slice_warm"] = {
        k: r(1e3 * timed(lambda: ours(model, vol, seed, args.strategy, cache, bs, stop, w), dev, args.reps)[0] / n)
        for k, w in parts.items()}
    res["decoder_only_ms"] = {"ours": r(decoder_only(model, emb, seed, args.strategy, dev, args.reps)),
                              "naive": r(1e3 * float(np.median([x for sp in splits for x in sp["predict"]])))}
    res["masks"] = {"mean_area_ours": r(float(omasks[1:].sum(axis=(1, 2)).mean())),
                    "mean_area_naive": r(float(nmasks[1:].sum(axis=(1, 2)).mean())),
                    "iou_ours_vs_naive": agreement(omasks[1:], nmasks[1:]),
                    "iou_warm_vs_cold": agreement(wmasks[1:], omasks[1:])}
    for c in caches:
        c.cleanup()
    log(f"{name}: naive {res['naive']['slices_per_s']} slices/s, ours cold {res['ours_cold']['slices_per_s']}, "
        f"warm {res['ours_warm']['slices_per_s']} (x{res['speedup_cold_vs_naive']} / x{res['speedup_warm_vs_naive']}); "
        f"prior off x{res['speedup_cold_vs_naive_prior_off']} / x{res['speedup_warm_vs_naive_prior_off']}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", help="comma-separated (default: the built-in models on CPU, and vit_b on CUDA); "
                                     "or paths")
    ap.add_argument("--data", choices=("phantom", "em"), default="phantom")
    ap.add_argument("--slices", type=int, default=32, help="K slices (the EM stack has 30)")
    ap.add_argument("--strategy", default="box+farthest")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=0, help="embedder batch (default 2 CPU, 8 CUDA)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="8 slices, 1 rep")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.quick:
        args.slices, args.reps = min(args.slices, 8), 1
    dev = torch.device(args.device)
    from napari_scroll_sam.layers import BUILTIN_MODELS

    names = (args.models or ",".join(BUILTIN_MODELS + (("vit_b",) if dev.type == "cuda" else ()))).split(",")
    vol, seed = make_data(args.data, args.slices)
    rgbs = [sample_image(vol, z, EverySlice()) for z in range(vol.shape[0])]
    out = {"device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor(),
           "data": args.data, "shape": list(vol.shape), "strategy": args.strategy, "reps": args.reps,
           "models": {}}
    for name in names:
        log(f"{name} on {dev}, {vol.shape[0]} slices of {vol.shape[1:]}")
        out["models"][name] = bench_model(name.strip(), args, dev, vol, seed, rgbs)
        if dev.type == "cuda":  # the model is gone with bench_model's frame
            torch.cuda.empty_cache()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
