"""What several commands share: the sampling-mode arguments."""

from __future__ import annotations


def mode_from_args(args):
    """The sampling mode named by --mode, with those of --stride/--d/--window/--seed
    (--mode-seed for `train`, whose --seed seeds the training) that it takes."""
    from ..sampling import MODES, make_mode

    values = {"stride": args.stride, "d": args.d, "window": args.window,
              "seed": getattr(args, "mode_seed", getattr(args, "seed", None))}
    spec = MODES.get(args.mode)
    accepted = {p.name for p in spec.params} if spec else set(values)
    return make_mode(args.mode, **{k: v for k, v in values.items() if v is not None and k in accepted})
