"""``napari-scroll-sam evaluate``: IoU per prompt strategy (and through the volume) for models."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import mode_from_args
from .train import training_pairs


def run(args) -> int:
    import json

    from ..sam.models import load_model
    from ..training.evaluate import CLICK_RULES, evaluate_propagation, evaluate_prompts, table

    pairs = training_pairs(args)
    if not pairs:
        from ..training.data import TrainingDataError

        raise TrainingDataError("no data: give --images and --labels (or --phantoms N)")
    slices = {0: args.slices} if args.slices else None
    columns, propagation = {}, {}
    for name in args.model:
        model = load_model(name, device=args.device)
        print(f"evaluating {model.model_id} …", file=sys.stderr, flush=True)
        columns[str(name)] = evaluate_prompts(model, pairs, args.strategies, slices=slices,
                                              mode=mode_from_args(args), cache=args.cache, seed=args.seed,
                                              click=args.click, refine=not args.no_refine)
        if args.propagation:
            propagation[str(name)] = evaluate_propagation(model, pairs[0], mode=mode_from_args(args),
                                                          cache=args.cache)
    drawn = "the model's own" if args.no_refine else "refined on the slice's edges, as segment_slice draws them"
    print(f"mean IoU per prompt (masks: {args.click}, {CLICK_RULES[args.click]}; {drawn})")
    print(table(columns, propagation=propagation or None))
    if args.json:
        out = {"click": args.click, "prompts": columns, "propagation": {k: {"mean_iou": v["mean_iou"]} for k, v in propagation.items()}}
        from ..io.atomic import atomic_output

        with atomic_output(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(out, indent=1))
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    ev = command("evaluate", help="IoU per prompt strategy (and through the volume) for models")
    ev.add_argument("--images", nargs="*")
    ev.add_argument("--labels", nargs="*")
    ev.add_argument("--objects", default="instances", choices=["instances", "components"])
    ev.add_argument("--phantoms", type=int, default=0)
    ev.add_argument("--phantom-shape", type=int, nargs=3, default=(8, 256, 256))
    ev.add_argument("--phantom-wraps", type=int, nargs="*", default=None)
    ev.add_argument("--model", action="append", required=True, help="repeat to compare (before/after)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--slices", type=int, nargs="*", help="slices of the first pair to score (default: all annotated)")
    ev.add_argument("--strategies", nargs="*", default=None)
    ev.add_argument("--propagation", action="store_true", help="also propagate each 3D object from its middle")
    ev.add_argument("--click", default="single", choices=["single", "best_of_3"],
                    help="which of SAM's masks answers a prompt: its single mask (what a click shows) "
                         "or the best scored of three")
    ev.add_argument("--no-refine", action="store_true",
                    help="score the model's own masks, not refined on the slice's edges")
    ev.add_argument("--mode", default="every")
    ev.add_argument("--stride", type=int, default=None)
    ev.add_argument("--d", type=int, default=None)
    ev.add_argument("--window", type=int, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--cache", default=None)
    ev.add_argument("--json", default=None, help="also write the figures as JSON here")
    ev.set_defaults(func=run)
