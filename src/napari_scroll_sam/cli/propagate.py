"""``napari-scroll-sam propagate``: prompts through a volume into a labels zarr."""

from __future__ import annotations

import sys
from pathlib import Path

from ..layers import BUILTIN_MODEL
from ._common import mode_from_args


def _walk_arguments(prop):
    """The stop rules and walk options of ``propagate``; defaults are StopRule's / WalkConfig's
    (calibrated on benchmarks/eval_quality.py). A rule given as 0 (or "none") is off."""
    from ..propagation import StopRule, WalkConfig

    s, w = StopRule(), WalkConfig()
    num = lambda v: None if str(v).lower() in ("none", "off", "0") else float(v)  # noqa: E731
    cnt = lambda v: None if str(v).lower() in ("none", "off", "0") else int(v)  # noqa: E731
    prop.add_argument("--min-pred-iou", type=num, default=s.min_pred_iou, help=f"(default {s.min_pred_iou}: off)")
    prop.add_argument("--min-slice-iou", type=num, default=s.min_slice_iou, help=f"(default {s.min_slice_iou})")
    prop.add_argument("--max-area-change", type=num, default=s.max_area_change, help="0 disables")
    prop.add_argument("--max-empty", type=cnt, default=s.max_empty, help=f"(default {s.max_empty}; 0 disables)")
    prop.add_argument("--max-overruled", type=cnt, default=s.max_overruled,
                      help="stop after this many slices in a row where the model disagreed with the motion prior")
    prop.add_argument("--min-area-share", type=num, default=s.min_area_share,
                      help="stop where the mask shrinks below this share of its anchor's area (default off)")
    prop.add_argument("--min-contrast-share", type=num, default=s.min_contrast_share,
                      help="stop where the mask's contrast with its surroundings falls below this share of its "
                           f"anchor's on 2 slices in a row: the object has ended (default {s.min_contrast_share}; "
                           "0 disables)")
    prop.add_argument("--prior", default=w.prior, choices=["flow", "copy", "none"],
                      help="motion prior (none: the model's answers as they are)")
    from ..propagation.flow import FLOWS

    prop.add_argument("--flow", default=w.flow, choices=list(FLOWS),
                      help="optical flow of the prior (dis: OpenCV's DIS, fastest; needs opencv-python-headless)")
    prop.add_argument("--memory", type=int, default=w.memory, help="masks the prior votes over")
    prop.add_argument("--accept", type=float, default=w.accept,
                      help="IoU with the prior from which the model's mask is kept")
    prop.add_argument("--corridor", type=num, default=w.corridor, help="px beyond the measured motion (0: off)")
    prop.add_argument("--snap", type=num, default=w.snap, help="snap the prior to image edges within px (0: off)")
    prop.add_argument("--no-compete", action="store_true", help="no negative points on the other objects")
    prop.add_argument("--no-winding", action="store_true",
                      help="objects clicked together on a scroll's sheet: the geodesic split, not by turns")
    prop.add_argument("--no-recut", action="store_true",
                      help="a scroll's turns are not re-cut at each slice's inner end while they walk")
    prop.add_argument("--no-refine", action="store_true",
                      help="clicked / boxed seeds keep the model's mask as it is (not settled on the slice's edges)")
    prop.add_argument("--adapt-steps", type=int, default=w.adapt_steps,
                      help="decoder steps on the anchors before walking (0: off)")
    prop.add_argument("--model-every", type=int, default=w.model_every,
                      help="ask the model on every n-th slice only; the prior carries the others (no embedding)")


def _walk_from_args(args):
    from ..propagation import StopRule, WalkConfig

    stop = StopRule(min_pred_iou=args.min_pred_iou, min_slice_iou=args.min_slice_iou,
                    max_area_change=args.max_area_change, max_empty=args.max_empty,
                    stop_slices=frozenset(args.stop_slices or ()), max_overruled=args.max_overruled,
                    min_area_share=args.min_area_share, min_contrast_share=args.min_contrast_share)
    walk = WalkConfig(prior=None if args.prior == "none" else args.prior, memory=args.memory, accept=args.accept,
                      corridor=args.corridor, snap=args.snap, compete=not args.no_compete,
                      winding=not args.no_winding, recut=not args.no_recut, refine=not args.no_refine,
                      adapt_steps=args.adapt_steps, flow=args.flow, model_every=args.model_every)
    return stop, walk


def run(args) -> int:
    import zarr

    from ..io.atomic import atomic_output, check_output, partial_name
    from ..io.open import open_volume
    from ..prompt_csv import check_prompts, check_strategy, read_prompts
    from ..propagation import propagate, walk_summary
    from ..sam.embeddings import SliceEmbedder, default_cache_root
    from ..sam.models import load_model

    seeds, lines = read_prompts(args.prompts)
    vol = open_volume(args.volume, volume=args.volpkg_volume)
    z_limits = tuple(args.z_limits) if args.z_limits else None
    check_prompts(args.prompts, seeds, lines, vol, z_limits)
    check_strategy(args.strategy)
    stop, walk = _walk_from_args(args)
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else default_cache_root()
    # before the model loads: never write into (or over) what this run reads
    check_output(out, {"the input": args.volume, "the input volume": vol.path, "the prompts file": args.prompts,
                       "the embedding cache": cache},
                 kind="zarr", need_bytes=min(int(vol.data.size) * 4, 16 * 2**20))
    model = load_model(args.model, device=args.device)
    emb = SliceEmbedder(model, vol, mode=mode_from_args(args), cache=args.cache, batch_size=args.batch_size)
    chunks = (1, min(vol.shape[1], 1024), min(vol.shape[2], 1024))

    def said_partial(part):
        print(f"cancelled: {out} is untouched; the slices done so far are in {part}", file=sys.stderr)

    with atomic_output(out, keep_partial=True, on_partial=said_partial) as tmp:
        labels = zarr.create_array(str(tmp), shape=vol.shape, dtype="uint32", fill_value=0, chunks=chunks)
        gen = propagate(emb, seeds, labels, strategy=args.strategy, stop=stop, direction=args.direction,
                        z_limits=z_limits, walk=walk)
        print("z,object,area,predicted_iou,slice_iou,direction,stopped,source")
        reports = []
        try:
            for r in gen:
                reports.append(r)
                s_iou = "" if r.slice_iou is None else f"{r.slice_iou:.3f}"
                print(f"{r.z},{r.object_id},{r.area},{r.iou:.3f},{s_iou},{r.direction},{r.stopped or ''},"
                      f"{r.source}", flush=True)
        finally:
            gen.close()
    for line in walk_summary(reports):
        print(line, file=sys.stderr)
    if partial_name(out).exists():
        print(f"note: {partial_name(out)} is the partial result of an earlier cancelled run", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    prop = command("propagate", help="propagate prompts through a volume into a labels zarr")
    prop.add_argument("volume")
    prop.add_argument("--prompts", required=True, help="CSV: object,z,y,x[,label][,y1,x1]")
    prop.add_argument("--out", required=True, help="labels output (.zarr)")
    prop.add_argument("--model", default=BUILTIN_MODEL)
    prop.add_argument("--device", default="auto")
    prop.add_argument("--mode", default="every")
    prop.add_argument("--stride", type=int, default=None)
    prop.add_argument("--d", type=int, default=None)
    prop.add_argument("--window", type=int, default=None)
    prop.add_argument("--seed", type=int, default=None)
    prop.add_argument("--strategy", default="box+farthest", help="prompt strategy (see napari_scroll_sam.prompts)")
    prop.add_argument("--direction", default="both", choices=["both", "up", "down"])
    prop.add_argument("--z-limits", type=int, nargs=2, metavar=("START", "STOP"))
    _walk_arguments(prop)
    prop.add_argument("--stop-slices", type=int, nargs="*")
    prop.add_argument("--cache", default=None)
    prop.add_argument("--batch-size", type=int, default=None)
    prop.add_argument("--volpkg-volume", default=None)
    prop.set_defaults(func=run)
