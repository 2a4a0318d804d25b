"""Train the built-in offline model, in resumable pieces that fit a session's background.

Data (``--data``): domain-randomised synthetic slices (``training.synthetic``), synthetic
scrolls (seeds >= 1000), and the TRAIN parts of the real labelled volumes in
``../shared/data`` as ``benchmarks/data_split.json`` cuts them (ISBI EM z 0-9, chloroplast EM
x < 1600; the brain MRI never). Validation: whole held-out slices of those train parts
(ISBI z 8-9, chloroplast z 9, two synthetic volumes): nothing of an eval part is seen.

Each call trains for ``--minutes`` (or to the planned ``--epochs``), writes ``last.pt``
at every epoch end, at the time limit and on SIGTERM, and ``best.pt`` on a better
validation; ``--resume OUT/last.pt`` continues (same data: everything is seeded). Example::

    OMP_NUM_THREADS=1 nohup python scripts/train_builtin.py --arch small --init small \\
        --out runs/builtin --minutes 60 > runs/builtin.log 2>&1 &
    python scripts/train_builtin.py ... --resume runs/builtin/last.pt      # the next piece

On a machine without ``../shared/data`` (the GPU machine of ``scripts/gpu_train.sh``): ``--pack
FILE.npz`` writes the training data as built here (every pair's image, labels and validation
slices, the synthetic data generated; of a pair with named slices only those, renumbered) and
exits, replacing FILE only once it is whole; ``--packed FILE.npz`` trains from such a file
instead of building the data (``--data`` and its counts are then the file's).
``--device cuda`` (or ``auto``) trains on the GPU, in bf16 autocast as on a bf16 CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = Path(os.environ.get("NAPARI_SCROLL_SAM_DATA") or ROOT.parent / "shared" / "data")
SPLIT = json.loads((ROOT / "benchmarks" / "data_split.json").read_text())


def real_train_pairs(volumes=("isbi2012-em", "chloroplast-em")):
    """The TRAIN parts of the labelled real volumes (in memory), and their validation slices.

    ``volumes`` names which (``--real``): leaving one out trains the leave-one-volume-out model.
    """
    from napari_scroll_sam.io.volume import Volume, open_volume
    from napari_scroll_sam.training.data import TrainingPair

    pairs, val = [], []
    if "isbi2012-em" in volumes and (DATA / "isbi2012-em" / "label").is_dir():
        z0, z1 = SPLIT["isbi2012-em"]["train"]["z"]
        img = open_volume(DATA / "isbi2012-em" / "image")
        arr = np.asarray(img.data[z0:z1].compute())
        lab = (open_volume(DATA / "isbi2012-em" / "label").data[z0:z1].compute() == 255).astype(np.uint8)
        vol = Volume(levels=[arr], contrast_limits=tuple(img.contrast_limits), name="isbi-train")
        pairs.append(TrainingPair(vol, lab, name=vol.name, objects="components"))
        val.append([z1 - z0 - 2, z1 - z0 - 1])
    if "chloroplast-em" in volumes and (DATA / "chloroplast-em" / "labels.tif").is_file():
        import tifffile

        x0, x1 = SPLIT["chloroplast-em"]["train"]["x"]
        img = open_volume(DATA / "chloroplast-em" / "image")
        arr = np.asarray(img.data[:, :, x0:x1].compute())
        lab = tifffile.imread(DATA / "chloroplast-em" / "labels.tif")[:, :, x0:x1]
        vol = Volume(levels=[arr], contrast_limits=tuple(img.contrast_limits), name="chloroplast-train")
        # the same objects run through all 10 slices (consecutive IoU ~0.94): 3 train, 1 val
        pairs.append(TrainingPair(vol, lab, name=vol.name, slices=[0, 4, 8, 9]))
        val.append([9])
    return pairs, val


def real_label_slices(pairs, val) -> list:
    """[(instance labels, membrane or None)] of the real pairs' training slices (never a
    validation slice): what ``--rerendered`` draws its shapes from. EM components are
    numbered per slice, the membranes between them kept as a material of their own."""
    from scipy import ndimage

    out = []
    for p, v in zip(pairs, val):
        zs = [z for z in (p.slices if p.slices is not None else range(p.labels.shape[0])) if z not in v]
        for z in zs:
            lab = np.asarray(p.labels[z])
            if p.objects == "components":
                out.append((ndimage.label(lab > 0)[0], lab == 0))
            else:
                out.append((lab, None))
    return out


def phantom_pairs(n, shape=(8, 256, 256)):
    from napari_scroll_sam.io.phantom import CONTRAST_LIMITS, scroll_phantom
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.training.data import TrainingPair

    out = []
    for i in range(n):
        image, sheets, _ = scroll_phantom(shape, seed=1000 + i, wraps=(4, 5, 6, 8, 10)[i % 5])
        vol = Volume(levels=[image.compute()], contrast_limits=CONTRAST_LIMITS, name=f"phantom-{1000 + i}")
        out.append(TrainingPair(vol, sheets.compute(), name=vol.name))
    return out


def build_pairs(args):
    from napari_scroll_sam.training.synthetic import synthetic_pairs

    pairs, val = [], {}
    if "real" in args.data:
        real, rval = real_train_pairs(args.real)
        for p, v in zip(real, rval):
            val[len(pairs)] = v
            pairs.append(p)
    if "phantoms" in args.data:
        pairs += phantom_pairs(args.phantoms)
    if getattr(args, "rerendered", 0) and "real" in args.data:  # the real train slices' shapes, random looks
        from napari_scroll_sam.training.synthetic import rerendered_pairs

        pairs += rerendered_pairs(real_label_slices(real, rval), None, args.rerendered, slices=8,
                                  seed=args.seed * 100_000 + 50_000)
    if "synthetic" in args.data:
        syn = synthetic_pairs(None, args.synthetic, slices=8, seed=args.seed * 100_000)
        for j in range(min(2, len(syn))):
            val[len(pairs) + j] = [6, 7]
        pairs += syn
    return pairs, val


def pack(path, pairs, val):
    """The pairs as built (images, labels, annotated slices, validation slices) in one npz."""
    arrays, meta = {}, []
    for i, p in enumerate(pairs):
        keep = slice(None) if p.slices is None else sorted(int(z) for z in p.slices)
        # a pair with named slices keeps only those (the trainer samples every slice on its own:
        # no neighbour is read), renumbered
        where = (lambda z: z) if p.slices is None else keep.index
        arrays[f"image{i}"] = np.asarray(p.image.levels[0][keep])
        arrays[f"labels{i}"] = np.asarray(p.labels[keep])
        meta.append({"name": p.name, "contrast_limits": [float(v) for v in p.image.contrast_limits],
                     "slices": None if p.slices is None else [where(int(z)) for z in p.slices], "objects": p.objects,
                     "val": [where(int(z)) for z in val.get(i, [])]})
    tmp = Path(str(path) + ".part.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)
    return path


def unpack(path):
    """``pack``'s pairs and validation slices, back."""
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.training.data import TrainingPair

    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        pairs = [TrainingPair(Volume(levels=[f[f"image{i}"]], contrast_limits=tuple(m["contrast_limits"]),
                                     name=m["name"]), f[f"labels{i}"], name=m["name"], slices=m["slices"],
                              objects=m["objects"]) for i, m in enumerate(meta)]
    return pairs, {i: m["val"] for i, m in enumerate(meta) if m["val"]}


def build_model(args):
    from napari_scroll_sam.sam.config import CONFIGS, build_sam
    from napari_scroll_sam.sam.models import SamModel, load_model

    torch.manual_seed(args.seed)
    sam = build_sam(args.arch)
    if args.init != "random":  # warm start: every tensor of the same name, grid-shaped ones resized
        from napari_scroll_sam.sam.transfer import transfer_state_dict

        got = transfer_state_dict(load_model(args.init, device="cpu").sam.state_dict(), sam)
        print(f"warm start from {args.init}: {got['same']} tensors as they are, {len(got['resized'])} "
              f"resized to the grid, {len(got['skipped'])} left at their initial values", flush=True)
    from napari_scroll_sam.sam.models import resolve_device

    dev = resolve_device(args.device)
    return SamModel(sam.to(dev), CONFIGS[args.arch], dev, f"{args.arch}:train{args.seed}", args.arch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="small", help="a configuration name (small, small_hr, small_fb)")
    ap.add_argument("--init", default="small", help="warm-start weights (a model name or file), or 'random'")
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", default=None)
    ap.add_argument("--data", nargs="+", default=["real", "phantoms", "synthetic"])
    ap.add_argument("--real", nargs="+", default=["isbi2012-em", "chloroplast-em"],
                    choices=["isbi2012-em", "chloroplast-em"],
                    help="which real volumes' TRAIN parts 'real' takes (leave one out for a LOVO model)")
    ap.add_argument("--synthetic", type=int, default=32, help="synthetic volumes of 8 slices")
    ap.add_argument("--phantoms", type=int, default=8)
    ap.add_argument("--rerendered", type=int, default=0,
                    help="volumes of 8 slices whose labels are crops of the real TRAIN slices, rendered with "
                         "random looks (training.synthetic.rerendered_pairs; needs 'real' in --data)")
    ap.add_argument("--epochs", type=int, default=12, help="the planned run (the LR schedule spans it)")
    ap.add_argument("--minutes", type=float, default=0, help="stop this piece after so many minutes (0: no limit)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--warmup-epochs", type=float, default=0.3)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--single-mask-clicks", action="store_true",
                    help="one-click prompts also train SAM's single-mask output (what a click shows) and the "
                         "validation's click scores that output")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--fit", action="store_true",
                    help="with --minutes: after the first epoch, end the schedule (and the run) with the last "
                         "whole epoch that fits the minutes (--epochs: the most)")
    ap.add_argument("--pack", default=None, help="write the training data to this .npz and exit")
    ap.add_argument("--packed", default=None, help="train from a --pack file instead of building the data")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from napari_scroll_sam.training.trainer import EpochReport, StepReport, TrainConfig, Trainer

    t0 = time.time()
    pairs, val = unpack(args.packed) if args.packed else build_pairs(args)
    if args.pack:
        pack(args.pack, pairs, val)
        print(f"packed {len(pairs)} volumes ({sum(p.image.levels[0].nbytes for p in pairs) / 2**20:.0f} MiB of "
              f"images) into {args.pack} in {time.time() - t0:.0f} s", flush=True)
        return
    model = build_model(args)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, freeze="none", seed=args.seed,
                      val_fraction=0.0, patience=0, loss="bce", prompt_kinds=("point", "box", "points", "background"),
                      warmup_epochs=args.warmup_epochs, augment=not args.no_augment,
                      single_mask_clicks=args.single_mask_clicks)
    trainer = Trainer(model, pairs, args.out, cfg, cache=False, val_slices=val, resume=args.resume)
    print(f"data ready in {time.time() - t0:.0f} s: {len(pairs)} volumes, {len(trainer.train_samples)} training "
          f"and {len(trainer.val_samples)} validation samples, {trainer.steps_per_epoch} steps per epoch; "
          f"from step {trainer.step} epoch {trainer.epoch}", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    t1, losses, fit, first_epoch = time.time(), [], None, trainer.epoch
    for r in trainer.run():
        if isinstance(r, StepReport):
            losses.append(r.loss)
            if r.step % 10 == 0:
                print(f"step {r.step} epoch {r.epoch} loss {np.mean(losses[-10:]):.3f} train IoU {r.train_iou:.3f} "
                      f"lr {r.lr:.2e} {time.time() - t1:.0f} s", flush=True)
        elif isinstance(r, EpochReport):
            print(f"EPOCH {r.epoch} step {r.step} loss {r.train_loss:.3f} val IoU {r.val_iou:.3f} "
                  f"box {r.val_box:.3f} click {r.val_click:.3f}{' best' if r.best else ''} "
                  f"{time.time() - t1:.0f} s", flush=True)
            if args.fit and args.minutes and fit is None:  # one epoch timed: the schedule ends in time
                per_epoch = (time.time() - t1) / (r.epoch - first_epoch)
                fit = max(r.epoch + 1, min(args.epochs, first_epoch + int(0.97 * 60 * args.minutes / per_epoch)))
                trainer.total_steps = trainer.steps_per_epoch * fit
                print(f"fit: {per_epoch:.0f} s an epoch, the cosine ends with epoch {fit}", flush=True)
            if fit is not None and r.epoch >= fit:
                trainer.save("last.pt")
                print(f"fitted schedule done at epoch {r.epoch}, step {trainer.step}: {args.out}/last.pt", flush=True)
                break
        if stop["now"] or (args.minutes and time.time() - t1 > 60 * args.minutes):
            trainer.save("last.pt")
            print(f"piece done at step {trainer.step} ({time.time() - t1:.0f} s): {args.out}/last.pt; "
                  f"continue with --resume", flush=True)
            break
    print(f"wall {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
