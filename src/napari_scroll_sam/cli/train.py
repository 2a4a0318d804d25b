"""``napari-scroll-sam train``: fine-tune SAM on (image, labels) pairs; ``training_pairs``
(the data arguments) is shared with ``evaluate``."""

from __future__ import annotations

import sys

from ..layers import BUILTIN_MODEL
from ._common import mode_from_args


def training_pairs(args):
    from ..io.open import open_volume
    from ..training.data import TrainingPair

    pairs = []
    if args.phantoms:
        from ..io.phantom import scroll_phantom
        from ..io.volume import Volume

        for i in range(args.phantoms):
            wraps = args.phantom_wraps[i % len(args.phantom_wraps)] if args.phantom_wraps else None
            image, sheets, _ = scroll_phantom(tuple(args.phantom_shape), seed=1000 + i, wraps=wraps)
            vol = Volume(levels=[image.compute()], contrast_limits=(7000, 40000), name=f"phantom-{1000 + i}")
            pairs.append(TrainingPair(vol, sheets.compute(), name=vol.name))
    if getattr(args, "synthetic", 0):
        from ..training.synthetic import synthetic_pairs

        pairs += synthetic_pairs(None, args.synthetic, slices=8, seed=100_000)
    images, labels = args.images or [], args.labels or []
    if len(images) != len(labels):
        from ..training.data import TrainingDataError

        raise TrainingDataError(f"{len(images)} --images but {len(labels)} --labels: give them in pairs")
    for img, lab in zip(images, labels):
        vol = open_volume(img)
        lab_vol = open_volume(lab)
        pairs.append(TrainingPair(vol, lab_vol.data, name=vol.name, objects=args.objects))
    return pairs


def run(args) -> int:
    from tqdm import tqdm

    from ..sam.models import load_model
    from ..training.trainer import EpochReport, StageReport, StepReport, TrainConfig, Trainer

    if args.init == "random":
        import torch

        from ..sam.config import build_sam
        from ..sam.models import SamModel, resolve_device

        dev = resolve_device(args.device)
        torch.manual_seed(args.seed)
        sam = build_sam(args.model).to(dev)
        from ..sam.config import CONFIGS

        model = SamModel(sam, CONFIGS[args.model], dev, f"{args.model}:scratch{args.seed}", args.model)
    else:
        model = load_model(args.model, device=args.device)
    pairs = training_pairs(args)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, freeze=args.freeze,
                      seed=args.seed, val_fraction=args.val_fraction, patience=args.patience,
                      prompt_kinds=tuple(args.prompts), corrective_rounds=args.corrective_rounds,
                      objects_per_sample=args.objects_per_sample, warmup_steps=args.warmup,
                      warmup_epochs=args.warmup_epochs, min_steps=args.min_steps, augment=not args.no_augment,
                      loss=args.loss)
    trainer = Trainer(model, pairs, args.out, cfg, mode=mode_from_args(args), cache=args.cache,
                      resume=args.resume)
    print(f"{len(trainer.train_samples)} training and {len(trainer.val_samples)} validation samples; "
          f"{trainer.total_steps} steps; model {model.model_id} on {model.device}", flush=True)
    if trainer.validation_warning:
        print(f"warning: {trainer.validation_warning}", file=sys.stderr, flush=True)
    bar = None
    gen = trainer.run()
    try:
        for r in gen:
            if isinstance(r, StageReport):
                continue
            if bar is None:
                bar = tqdm(total=trainer.total_steps, initial=trainer.step - 1, desc="training", unit="step")
            if isinstance(r, StepReport):
                bar.update(1)
                bar.set_postfix(loss=f"{r.loss:.3f}", iou=f"{r.train_iou:.3f}", lr=f"{r.lr:.2e}")
            elif isinstance(r, EpochReport):
                val = "" if r.val_iou is None else (f" val IoU {r.val_iou:.3f} Dice {r.val_dice:.3f} (true box "
                                                    f"{r.val_box:.3f}, one click {r.val_click:.3f}; "
                                                    f"{r.val_slices} held-out slices)")
                tqdm.write(f"epoch {r.epoch}: train loss {r.train_loss:.3f}{val}{' (best)' if r.best else ''}")
                if r.stopped:
                    tqdm.write(f"early stop: {r.stopped}")
    except KeyboardInterrupt:
        gen.close()
        if bar is not None:
            bar.close()
        print(f"cancelled: the last finished epoch's checkpoints are kept in {args.out}", file=sys.stderr)
        return 130
    if bar is not None:
        bar.close()
    print(f"checkpoints in {args.out} (best.pt, last.pt)")
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    tr = command("train", help="fine-tune SAM on annotated (image, labels) pairs")
    tr.add_argument("--images", nargs="*", help="image volumes (any format open_volume reads)")
    tr.add_argument("--labels", nargs="*", help="labels volumes, one per image")
    tr.add_argument("--objects", default="instances", choices=["instances", "components"])
    tr.add_argument("--phantoms", type=int, default=0, help="add N generated synthetic scrolls (wraps as objects)")
    tr.add_argument("--phantom-shape", type=int, nargs=3, default=(8, 256, 256))
    tr.add_argument("--phantom-wraps", type=int, nargs="*", default=None, help="wraps per phantom (cycled)")
    tr.add_argument("--out", required=True, help="output folder for best.pt / last.pt")
    tr.add_argument("--model", default=BUILTIN_MODEL)
    tr.add_argument("--init", default="pretrained", choices=["pretrained", "random"],
                    help="random: train a registry configuration from scratch")
    tr.add_argument("--resume", default=None, help="a last.pt to continue from")
    tr.add_argument("--device", default="auto")
    from ..training.config import TrainConfig

    tr.add_argument("--freeze", default=TrainConfig.freeze, help=f"lora:R (rank-R adapters on the encoder's "
                    f"attention), encoder (frozen: cached embeddings), none, or last:N (the last N encoder blocks "
                    f"train); default {TrainConfig.freeze}")
    tr.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    tr.add_argument("--lr", type=float, default=TrainConfig.lr)
    tr.add_argument("--batch-size", type=int, default=4)
    tr.add_argument("--warmup", type=int, default=None, help="warm-up in steps (overrides --warmup-epochs)")
    tr.add_argument("--warmup-epochs", type=float, default=1.0, help="warm-up in epochs, the unit of --patience")
    tr.add_argument("--min-steps", type=int, default=100, help="no early stop before this many steps")
    tr.add_argument("--no-augment", action="store_true", help="train without augmentation (on by default)")
    tr.add_argument("--synthetic", type=int, default=0,
                    help="add N domain-randomised synthetic volumes of 8 slices (training.synthetic)")
    tr.add_argument("--objects-per-sample", type=int, default=8)
    tr.add_argument("--prompts", nargs="+", default=["point", "box", "background"])
    tr.add_argument("--corrective-rounds", type=int, default=1)
    tr.add_argument("--loss", default="focal", choices=["focal", "bce"], help="focal (SAM) or bce, + Dice")
    tr.add_argument("--val-fraction", type=float, default=0.2)
    tr.add_argument("--patience", type=int, default=5)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--mode", default="every")
    tr.add_argument("--stride", type=int, default=None)
    tr.add_argument("--d", type=int, default=None)
    tr.add_argument("--window", type=int, default=None)
    tr.add_argument("--mode-seed", type=int, default=None, help="random tuples: their seed")
    tr.add_argument("--cache", default=None)
    tr.set_defaults(func=run)
