"""Can the trainer learn at all? Overfit ONE annotated slice of each real volume.

Issue 12's sanity check: on one annotated slice (from the TRAIN part of data_split.json:
ISBI EM z 0; chloroplast EM z 0, a 512 x 512 region of x < 1600; the brain MRI is never
trained on), train the built-in model with true-box prompts only, encoder frozen and
unfrozen, no augmentation, and score that same slice with its true boxes (the ceiling
prompt). Target: >= 0.95 mean IoU within a few hundred steps. Writes JSON with the
untrained model's score (the baseline) beside each run's::

    OMP_NUM_THREADS=1 python benchmarks/overfit.py --steps 300 --out benchmarks/results/overfit.json
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
sys.path.insert(0, str(HERE.parent / "src"))
DATA = HERE.parents[1] / "shared" / "data"
SPLIT = json.loads((HERE / "data_split.json").read_text())


def slices():
    """name -> (uint8-able image (1, H, W), labels (1, H, W), window, objects kind)."""
    from napari_scroll_sam.io.volume import open_volume

    out = {}
    if (DATA / "isbi2012-em" / "label").is_dir():
        z = SPLIT["isbi2012-em"]["train"]["z"][0]
        img = open_volume(DATA / "isbi2012-em" / "image")
        lab = open_volume(DATA / "isbi2012-em" / "label").data[z:z + 1].compute() == 255
        out["isbi"] = (np.asarray(img.data[z:z + 1].compute()), lab.astype(np.uint8), img.contrast_limits,
                       "components")
    if (DATA / "chloroplast-em" / "labels.tif").is_file():
        import tifffile

        x1 = min(SPLIT["chloroplast-em"]["train"]["x"][1], 1600)
        img = open_volume(DATA / "chloroplast-em" / "image")
        y0, x0 = 900, x1 - 512
        lab = tifffile.imread(DATA / "chloroplast-em" / "labels.tif")[:1, y0:y0 + 512, x0:x0 + 512]
        out["chloroplast"] = (np.asarray(img.data[:1, y0:y0 + 512, x0:x0 + 512].compute()), lab,
                              img.contrast_limits, "instances")
    return out


@torch.no_grad()
def box_iou(trainer) -> float:
    from napari_scroll_sam import prompts as P

    trainer.sam.eval()
    ious = []
    for s in trainer.train_samples:
        emb = trainer._embedding(s)
        prompts = [P.Prompt(np.zeros((0, 2)), np.zeros(0), P.bbox(m)) for m in s.masks]
        logits, _, _ = trainer._decode(emb, s.masks.shape[1:], prompts)
        pred = (logits[:, 0] > 0).numpy()
        ious += [float((p & m).sum() / max(1, (p | m).sum())) for p, m in zip(pred, s.masks)]
    return float(np.mean(ious))


def main(argv=None):
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.sam.models import load_model
    from napari_scroll_sam.training.data import TrainingPair
    from napari_scroll_sam.training.trainer import StepReport, TrainConfig, Trainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="small")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--freeze", nargs="+", default=["encoder", "none"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", default="bce", choices=["bce", "focal"])
    ap.add_argument("--only", nargs="*", default=None, help="volumes to run (isbi, chloroplast)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = {"protocol": "one annotated train slice, true-box prompts, no augmentation; scored on that slice "
                       "with true boxes", "model": args.model, "steps": args.steps, "lr": args.lr, "loss": args.loss, "runs": {}}
    for name, (img, lab, window, kind) in slices().items():
        if args.only and name not in args.only:
            continue
        pair = TrainingPair(Volume(levels=[img], contrast_limits=tuple(window), name=name), lab, name=name,
                            objects=kind)
        for freeze in args.freeze:
            model = load_model(args.model, device="cpu")
            with tempfile.TemporaryDirectory() as tmp:
                cfg = TrainConfig(epochs=1, lr=args.lr, batch_size=4, freeze=freeze, val_fraction=0.0, patience=0,
                                  prompt_kinds=("box",), corrective_rounds=0, augment=False, loss=args.loss,
                                  warmup_steps=10, objects_per_sample=16)
                tr = Trainer(model, [pair], tmp, cfg, cache=False)
                cfg.epochs = max(1, -(-args.steps // tr.steps_per_epoch))
                tr.total_steps = tr.steps_per_epoch * cfg.epochs
                before, t = box_iou(tr), time.time()
                curve = {}
                for r in tr.run():
                    if isinstance(r, StepReport) and r.step % 50 == 0:
                        curve[r.step] = box_iou(tr)
                        print(name, freeze, r.step, f"{curve[r.step]:.3f}", flush=True)
                after = box_iou(tr)
            res["runs"][f"{name}/{freeze}"] = {"before": before, "after": after, "steps": tr.step,
                                               "samples": len(tr.train_samples), "curve": curve,
                                               "minutes": round((time.time() - t) / 60, 1)}
            print(name, freeze, res["runs"][f"{name}/{freeze}"], flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
