"""Which fine-tuning is best per minute? Frozen encoder, last-N blocks, LoRA, on the same slices.

Issue 12 (section 2): on the same 10 annotated slices of one real volume and the same minutes
(``--minutes`` of this process's CPU time, 1 torch thread: other jobs on the machine do not
change a run's budget), train the built-in model with

* ``encoder``: image encoder frozen (cached embeddings; augmented samples re-encoded without
  gradient), mask decoder trained;
* ``last:N``: the last N encoder blocks + neck + decoder trained;
* ``lora:R``: rank-R adapters on every encoder block's attention qkv / proj + decoder;

and score each, with the built-in model untouched as the baseline in the same run, by the
ceiling on the EVAL split of that volume (``data_split.json``; never trained on): every eval
object on every slice where it is present, prompted from its own true box, and with one click
at its deepest point (``evaluate.ceiling_scores``; both click rules: ``single`` = SAM's single
mask output, what a user sees, and ``best_of_3`` = the top-scored of three).

Training data: the TRAIN split (ISBI EM z 0-9: 10 slices of 512², all instance labels;
chloroplast EM x < 1600: all 10 slices of 2341 x 1600), every slice trained on (no validation
split: no model selection; the model at the end of the budget is scored). The schedule fits
the budget: the first steps are timed and the cosine is set to end when the minutes do; the
run is cut at the budget in any case. ::

    OMP_NUM_THREADS=1 python benchmarks/finetune_compare.py --dataset isbi --minutes 3 \\
        --method builtin --method encoder --method last:2 --method lora:4 --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import datasets  # noqa: E402

from napari_scroll_sam.io.volume import Volume, open_volume  # noqa: E402
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.models import load_model, model_summary  # noqa: E402
from napari_scroll_sam.training.data import TrainingPair  # noqa: E402
from napari_scroll_sam.training.evaluate import ceiling_scores  # noqa: E402
from napari_scroll_sam.training.trainer import StepReport, TrainConfig, Trainer  # noqa: E402

T0 = time.perf_counter()


def log(msg):
    print(f"[compare {time.perf_counter() - T0:6.0f}s] {msg}", file=sys.stderr, flush=True)


def train_pair(name) -> TrainingPair:
    """The TRAIN split of a volume with all its labels (in memory)."""
    if name == "isbi":
        root = datasets.DATA / "isbi2012-em"
        z0, z1 = datasets.SPLIT["isbi2012-em"]["train"]["z"]
        vol = open_volume(root / "image")
        img = np.asarray(vol.data[z0:z1].compute())
        lab = datasets.link_objects(open_volume(root / "label").data[z0:z1].compute() == 255).astype(np.uint32)
    elif name == "chloroplast":
        import tifffile

        root = datasets.DATA / "chloroplast-em"
        x0, x1 = datasets.SPLIT["chloroplast-em"]["train"]["x"]
        vol = open_volume(root / "image")
        img = np.asarray(vol.data[:, :, x0:x1].compute())
        lab = tifffile.imread(root / "labels.tif")[:, :, x0:x1].astype(np.uint32)
    else:
        raise SystemExit(f"unknown dataset {name!r}: isbi or chloroplast")
    v = Volume(levels=[img], contrast_limits=tuple(vol.contrast_limits), name=f"{name}-train")
    return TrainingPair(v, lab, name=f"{name} train split", objects="instances")


def eval_data(name, max_objects):
    d = datasets.load(name, "eval", **({"max_objects": max_objects} if name == "chloroplast" else {}))
    if d is None:
        raise SystemExit(datasets.SKIPPED[name])
    d.volume = Volume(levels=[np.asarray(d.volume.data.compute())], contrast_limits=d.volume.contrast_limits,
                      name=d.volume.name)
    return d


def score(model, d) -> dict:
    t = time.perf_counter()
    emb = SliceEmbedder(model, d.volume, cache=False)
    out = {rule: ceiling_scores(emb, d.objects, click=rule) for rule in ("single", "best_of_3")}
    res = {"box": out["single"]["box"], "click": out["single"]["click"], "click_best_of_3": out["best_of_3"]["click"],
           "n": out["single"]["n"], "eval_s": round(time.perf_counter() - t, 1)}
    return res


def train(method, pair, minutes, lr, tmp, seed, augment, smc=False, base="small"):
    model = load_model(base, device="cpu")
    cfg = TrainConfig(epochs=10_000, lr=lr, freeze=method, val_fraction=0.0, patience=0, seed=seed,
                      augment=augment, single_mask_clicks=smc)
    tr = Trainer(model, [pair], Path(tmp) / method.replace(":", "_"), cfg, cache=False)
    budget = 60 * minutes  # CPU seconds of this process (1 thread): other jobs on the machine do not count
    t0, w0 = time.process_time(), time.perf_counter()
    calibrated, losses, ious = False, [], []
    n_train = sum(p.numel() for p in model.sam.parameters() if p.requires_grad)
    run = tr.run()
    for rep in run:
        if not isinstance(rep, StepReport):
            continue
        losses.append(rep.loss)
        ious.append(rep.train_iou)
        el = time.process_time() - t0
        if rep.step == 1:
            first = el  # the embedding stage (frozen encoder) and the first step: not a step's cost
        if not calibrated and rep.step == 11:  # still in warm-up (23+ steps): the cosine can be fitted now
            per = (el - first) / 10
            tr.total_steps = max(rep.step + 1, rep.step + int((budget - el) / per))
            cfg.epochs = -(-tr.total_steps // tr.steps_per_epoch)
            calibrated = True
        if el >= budget or tr.step >= tr.total_steps:
            break
    run.close()  # a LoRA run folds its adapters into the weights here
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    return model, {"steps": tr.step, "epochs": round(tr.step / tr.steps_per_epoch, 2), "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                   "samples": len(tr.train_samples), "steps_per_epoch": tr.steps_per_epoch,
                   "trainable_params": int(n_train), "lr": lr,
                   "train_loss_last20": float(np.mean(losses[-20:])), "train_iou_last20": float(np.mean(ious[-20:]))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="isbi", choices=["isbi", "chloroplast"])
    ap.add_argument("--method", action="append", help="builtin, encoder, last:N, lora:R (repeatable); "
                    "METHOD@LR sets its learning rate; a '+smc' suffix: single_mask_clicks=True")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--chloroplast-objects", type=int, default=16)
    ap.add_argument("--out", default=None)
    from napari_scroll_sam.layers import BUILTIN_MODEL

    ap.add_argument("--model", default=BUILTIN_MODEL, help="the model fine-tuned (default: the built-in default)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    methods = args.method or ["builtin", "encoder", "last:2", "lora:4"]
    pair = train_pair(args.dataset)
    d = eval_data(args.dataset, args.chloroplast_objects)
    res = {"protocol": __doc__.split("\n\n")[1].strip(), "dataset": args.dataset, "train": pair.name,
           "train_slices": int(pair.image.shape[0]), "eval": d.source, "minutes": args.minutes,
           "augment": not args.no_augment, "seed": args.seed,
           "model": model_summary(load_model(args.model, device="cpu")), "runs": {}}
    path = Path(args.out) if args.out else None
    with tempfile.TemporaryDirectory() as tmp:
        for m in methods:
            smc = m.endswith("+smc")
            name, _, lr = m.removesuffix("+smc").partition("@")
            lr = float(lr) if lr else args.lr
            if name == "builtin":
                row = {"training": None, **score(load_model(args.model, device="cpu"), d)}
            else:
                log(f"{m}: training {args.minutes} min")
                model, info = train(name, pair, args.minutes, lr, tmp, args.seed, not args.no_augment, smc, args.model)
                info["single_mask_clicks"] = smc
                row = {"training": info, **score(model, d)}
            res["runs"][m] = row
            log(f"{m}: {row}")
            if path:  # after every run: a cut session keeps what was measured
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(res, indent=1))
    base = res["runs"].get("builtin")
    print(f"| {args.dataset} ({res['eval']}) | steps | box | click (single) | click (best of 3) | box gain |")
    print("|---|---|---|---|---|---|")
    for m, r in res["runs"].items():
        gain = f"{r['box'] - base['box']:+.3f}" if base else "—"
        steps = r["training"]["steps"] if r["training"] else "—"
        print(f"| {m} | {steps} | {r['box']:.3f} | {r['click']:.3f} | {r['click_best_of_3']:.3f} | {gain} |")


if __name__ == "__main__":
    main()
