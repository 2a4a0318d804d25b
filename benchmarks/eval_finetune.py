"""Fine-tuning on real data: IoU before/after, training speed, cached embeddings vs encoder per step.

    python benchmarks/eval_finetune.py [--model small|vit_b|PATH] [--epochs 3] [--quick] [--table]

Data: the ISBI 2012 EM stack in ``../shared/data/isbi2012-em`` (exits with a message when absent).
Labels are *instance* labels (``objects="instances"``): the 2D connected components of label 255 on
each slice, given ids linked slice to slice by mutual largest overlap (``datasets.link_objects``),
so one id is one component per slice (the same objects as ``"components"`` on the binary mask) and
a 3D object through the stack. Training uses ``--train-slices`` (default 0-9), validation
``--val-slices`` (default 20-29): ``TrainingPair.slices`` = both, ``val_slices={0: val}``. To keep a
CPU run short, each validation slice keeps ``--eval-objects`` (default 10) components of at least
``--eval-min-area`` px, drawn with a fixed seed (the others are set to 0 there; 0: keep all);
training slices keep every object.

Reports (JSON on stdout; ``--table``: the markdown table instead; the table always on stderr):

* ``prompts``: ``evaluate_prompts`` IoU per strategy on the validation slices, before and after
  fine-tuning (the default ``TrainConfig``: LoRA rank 4 + decoder, but ``--epochs``/``--batch-size``);
* ``trainer_validate``: ``Trainer.validate()`` (deepest point + box) before and after (the last epoch's);
* ``propagation``: ``evaluate_propagation`` (one point on the middle slice, both ways) for
  ``--objects`` 3D objects, before/after, scored only on slices not used for training (the training
  slices' labels are blanked), so it measures generalisation to unseen slices;
* ``training``: steps/s (step time only) and each epoch's time (steps + validation + checkpoint);
* ``epoch_timing``: one epoch with the cached embeddings (``freeze="encoder"``) against the same epoch
  recomputing the image encoder every step without training it (the trainer's encoder path forced,
  encoder weights frozen), interleaved step by step on copies of the fine-tuned model; ``--last0``
  adds ``freeze="last:0"`` (encoder every step, its neck trained).

The built-in ``small`` model and ``vit_b`` without network have random weights: IoUs mean little
until run with ``--model PATH`` (real weights; ``--device cuda``).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:
    import napari_scroll_sam  # noqa: F401
except ImportError:  # a bare checkout: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from napari_scroll_sam.sam import models  # noqa: E402  (first: makes segment_anything importable)
from napari_scroll_sam.io.volume import open_volume  # noqa: E402
from napari_scroll_sam.training.data import TrainingPair  # noqa: E402
from napari_scroll_sam.training.evaluate import STRATEGIES, evaluate_prompts, evaluate_propagation, table  # noqa: E402
from napari_scroll_sam.training.trainer import EpochReport, StageReport, StepReport, TrainConfig, Trainer  # noqa: E402
from datasets import link_objects, load_model as load  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012-em"
T0 = time.perf_counter()


def log(msg):
    print(f"[eval_finetune {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def zlist(text):
    """'0-9' or '0,2,5-7' → [z…]."""
    out = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return sorted(set(out))


def pick_objects(labels, n, min_slices):
    """``n`` ids present on >= ``min_slices`` slices with a median area of 1000..15000 px, spread over size."""
    areas = np.ma.masked_equal(np.stack([np.bincount(sl.ravel(), minlength=int(labels.max()) + 1)
                                         for sl in labels])[:, 1:], 0)
    med, count = np.ma.median(areas, 0).filled(0), areas.count(0)
    cands = sorted((m, i + 1) for i, (m, c) in enumerate(zip(med, count)) if c >= min_slices and 1000 <= m <= 15000)
    return [cands[i][1] for i in sorted(set(np.linspace(0, len(cands) - 1, n).round().astype(int)))] if cands else []


def subsample(labels, zs, n, min_area, seed=0):
    """Keep ``n`` seeded random ids of at least ``min_area`` px on each slice of ``zs`` (in place)."""
    rng = np.random.default_rng(seed)
    for z in zs:
        ids, areas = np.unique(labels[z], return_counts=True)
        ids = ids[(ids > 0) & (areas >= min_area)]
        keep = rng.choice(ids, min(n, len(ids)), replace=False) if n else ids
        labels[z][~np.isin(labels[z], keep)] = 0


def propagation(model, pair, ids, cache):
    res = evaluate_propagation(model, pair, objects=ids, cache=cache)
    return {"mean_iou": res["mean_iou"], "objects": {str(i): {k: r[k] for k in ("mean_iou", "slices", "reached")}
                                                     for i, r in res["objects"].items()}}


def epoch_timing(model, pair, batch_size, out_dir, cache, val, hows):
    """One training epoch (no validation) per way in ``hows``, each on a copy of ``model``, the ways
    interleaved step by step (same batches, same prompt seed) so that load on the machine hits all
    alike. {how: (wall s, CPU s of this process, steps)}."""
    runs = {}
    for how in hows:
        cfg = TrainConfig(epochs=1, batch_size=batch_size, freeze="last:0" if how == "last0" else "encoder")
        t = Trainer(copy.deepcopy(model), [pair], out_dir / how, cfg, cache=cache, val_slices={0: val})
        if how == "cached":  # what run() does first with a frozen encoder: embeddings into memory
            zs = sorted({s.z for s in t.train_samples})
            for _ in t.embedders[0].embed(zs):
                pass
            t.embedders[0]._memory_slices = max(t.embedders[0]._memory_slices, len(zs))
        elif how == "encoder":
            t.encoder_trained = True  # _embedding runs the image encoder; its weights keep requires_grad=False
        runs[how] = [t, np.random.default_rng([cfg.seed, 0]), 0.0, 0.0]
    order = np.random.default_rng([0, 0]).permutation(len(runs["cached"][0].train_samples))
    torch.manual_seed(0)
    for b in range(0, len(order), batch_size):
        for r in runs.values():
            t, rng = r[0], r[1]
            w, c = time.perf_counter(), time.process_time()
            t._train_step([t.train_samples[i] for i in order[b:b + batch_size]], rng)
            r[2] += time.perf_counter() - w
            r[3] += time.process_time() - c
    return {how: (r[2], r[3], r[0].step) for how, r in runs.items()}


def markdown(r):
    cols = {"before": r["prompts"]["before"], "after": r["prompts"]["after"]}
    lines = [table(cols), "", "| measure | before | after |", "|---|---|---|"]
    tv = r["trainer_validate"]
    lines.append(f"| Trainer.validate IoU (point + box) | {tv['before']['iou']:.3f} | {tv['after']['iou']:.3f} |")
    p = r["propagation"]
    if p["ids"]:
        lines.append(f"| propagation IoU ({len(p['ids'])} objects, unseen slices) | {p['before']['mean_iou']:.3f} "
                     f"| {p['after']['mean_iou']:.3f} |")
    tr, et = r["training"], r["epoch_timing"]
    lines += ["", "| training | value |", "|---|---|",
              f"| training steps/s, frozen encoder (wall; per CPU s) | {tr['steps_per_s']:.2f}; "
              f"{tr['steps_per_cpu_s']:.2f} |",
              f"| epoch, cached embeddings (s) | {et['cached_s']:.2f} |",
              f"| epoch, encoder every step, not trained (s) | {et['encoder_every_step_s']:.2f} |",
              f"| ratio encoder-every-step / cached (wall; CPU time) | {et['ratio']:.2f}; {et['ratio_cpu']:.2f} |"]
    if "last0_s" in et:
        lines.append(f"| epoch, freeze=last:0 (encoder every step, neck trained) (s) | {et['last0_s']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small", help="small (built-in), vit_b, or a checkpoint path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-slices", default="0-9")
    ap.add_argument("--val-slices", default="20-29")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--objects", type=int, default=3, help="3D objects for the propagation IoU")
    ap.add_argument("--min-slices", type=int, default=10, help="... present on at least this many unseen slices")
    ap.add_argument("--eval-objects", type=int, default=10, help="objects kept per validation slice (0: all)")
    ap.add_argument("--eval-min-area", type=int, default=500)
    ap.add_argument("--last0", action="store_true", help="also time an epoch with freeze='last:0'")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3+2 slices, 1 epoch, 3 strategies, 5+1 objects")
    ap.add_argument("--table", action="store_true", help="print the markdown table on stdout, not JSON")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.train_slices, args.val_slices, args.epochs, args.objects = "0-2", "20-21", 1, 1
        args.eval_objects = min(args.eval_objects or 5, 5)
        args.strategies = "box,centroid,random_in_mask"
    if not (DATA / "image").is_dir() or not (DATA / "label").is_dir():
        log(f"{DATA} not found (it lives in ../shared/data next to the repository): nothing to evaluate")
        sys.exit(1)
    train, val = zlist(args.train_slices), zlist(args.val_slices)
    if set(train) & set(val):
        ap.error("training and validation slices overlap")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]

    vol = open_volume(DATA / "image")
    labels = link_objects(np.asarray(open_volume(DATA / "label").data.compute()) == 255)
    unseen = labels.copy()
    unseen[train] = 0  # propagation scored on slices the model was not trained on
    prop_pair = TrainingPair(vol, unseen, "isbi2012-em (training slices blanked)", objects="instances")
    ids = pick_objects(unseen, args.objects, args.min_slices)
    subsample(labels, val, args.eval_objects, args.eval_min_area)
    pair = TrainingPair(vol, labels, "isbi2012-em", slices=sorted(train + val), objects="instances")
    model = load(args.model, args.device)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    result = {"model": models.model_summary(model), "random_weights": model.model_id.endswith(":random"),
              "args": {k: str(v) for k, v in vars(args).items()},
              "data": {"volume": str(DATA / "image"), "shape": list(vol.shape),
                       "objects": "instances: per-slice connected components of label 255, ids linked across "
                                  "slices by mutual largest overlap", "train_slices": train, "val_slices": val,
                       "val_objects": f"{args.eval_objects or 'all'} per slice of >= {args.eval_min_area} px "
                                      "(seeded random), others zeroed on the validation slices"},
              "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}}
    tmp = Path(tempfile.mkdtemp(prefix="eval_finetune_"))
    cache = tmp / "cache"
    try:
        log(f"{result['model']['model_id']}: before fine-tuning ({len(val)} validation slices)")
        trainer = Trainer(model, [pair], tmp / "run", cfg, cache=cache, val_slices={0: val})
        result["samples"] = {"train": len(trainer.train_samples), "val": len(trainer.val_samples),
                             "val_objects": int(sum(len(s.masks) for s in trainer.val_samples)),
                             "steps_per_epoch": trainer.steps_per_epoch}
        before = {"prompts": evaluate_prompts(model, [pair], strategies, slices={0: val}, cache=cache),
                  "validate": trainer.validate(), "prop": propagation(model, prop_pair, ids, cache) if ids else None}
        log(f"training: {trainer.steps_per_epoch} steps/epoch x {cfg.epochs} epochs")
        step_s = step_cpu = embed_s = 0.0
        epochs, last, cpu = [], time.perf_counter(), time.process_time()
        epoch_start = last
        for rep in trainer.run():  # time between yields: the work of that report
            now = time.perf_counter()
            if isinstance(rep, StageReport):  # embedding (from the cache when there)
                embed_s, epoch_start = embed_s + now - last, now
            elif isinstance(rep, StepReport):
                step_s, step_cpu = step_s + now - last, step_cpu + time.process_time() - cpu
            elif isinstance(rep, EpochReport):  # steps + validation + checkpoints
                epochs.append({"epoch": rep.epoch, "seconds": round(now - epoch_start, 2),
                               "train_loss": rep.train_loss, "val_iou": rep.val_iou, "val_dice": rep.val_dice})
                log(f"epoch {rep.epoch}: loss {rep.train_loss:.4f}, val IoU {rep.val_iou:.3f}, "
                    f"{now - epoch_start:.1f} s")
                epoch_start = now
            last, cpu = time.perf_counter(), time.process_time()
        result["training"] = {"steps": trainer.step, "step_seconds": round(step_s, 2),
                              "steps_per_s": trainer.step / step_s, "steps_per_cpu_s": trainer.step / step_cpu,
                              "embedding_stage_s": round(embed_s, 2), "epochs": epochs}
        log("after fine-tuning")
        after = {"prompts": evaluate_prompts(model, [pair], strategies, slices={0: val}, cache=cache),
                 "validate": (epochs[-1]["val_iou"], epochs[-1]["val_dice"]),
                 "prop": propagation(model, prop_pair, ids, cache) if ids else None}
        result["prompts"] = {"before": before["prompts"], "after": after["prompts"]}
        result["trainer_validate"] = {k: {"iou": v["validate"][0], "dice": v["validate"][1]}
                                      for k, v in (("before", before), ("after", after))}
        result["propagation"] = {"ids": ids, "scored_on": "slices outside the training slices",
                                 "before": before["prop"], "after": after["prop"]}
        log("epoch timing: cached embeddings vs encoder every step")
        times = epoch_timing(model, pair, args.batch_size, tmp / "timing", cache, val,
                             ("cached", "encoder") + (("last0",) if args.last0 else ()))
        result["epoch_timing"] = {
            "baseline": "the same epoch (samples, order, prompts) with Trainer._embedding forced through the "
                        "image encoder for every sample of every step, encoder weights frozen (no encoder "
                        "gradients); the cached path reads the embeddings computed once (freeze='encoder'); "
                        "the two run interleaved step by step; *_cpu_s: CPU time of this process",
            "steps": times["cached"][2], "cached_s": round(times["cached"][0], 3),
            "encoder_every_step_s": round(times["encoder"][0], 3), "ratio": times["encoder"][0] / times["cached"][0],
            "cached_cpu_s": round(times["cached"][1], 3), "encoder_every_step_cpu_s": round(times["encoder"][1], 3),
            "ratio_cpu": times["encoder"][1] / times["cached"][1]}
        if "last0" in times:
            result["epoch_timing"].update(last0_s=round(times["last0"][0], 3), last0_cpu_s=round(times["last0"][1], 3),
                                          last0="freeze='last:0': encoder every step with the neck trained "
                                                "(backward through the neck)")
        result["seconds"] = round(time.perf_counter() - T0, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    md = markdown(result)
    print(md, file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(md if args.table else text)


if __name__ == "__main__":
    main()
