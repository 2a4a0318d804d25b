"""The ``napari-scroll-sam`` command.

    napari-scroll-sam demo [--headless] [--model small] [--shape Z Y X] [--seed N] [--out DIR]
    napari-scroll-sam info PATH
    napari-scroll-sam embed VOLUME --model small --mode tuples [--scheduler ADDRESS]
    napari-scroll-sam propagate VOLUME --prompts prompts.csv --model small --out labels.zarr

``demo`` is the main job on the built-in sample: it generates the synthetic
scroll, prompts one sheet with one point on the middle slice, propagates it
through the volume, prints each slice's IoU against the ground truth, and opens
napari on the result (volume, labels, 3D view). With ``--headless`` (or when
there is no display) it writes the labels (zarr) and a PNG instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


def cmd_info(args) -> int:
    from .io.volume import open_volume

    vol = open_volume(args.path, volume=args.volume)
    print(vol.describe())
    return 0


def preview_png(path: Path, image_slice, labels_slice, window) -> Path:
    """A PNG of one slice, grey in the window, with label outlines in colour."""
    import numpy as np
    from PIL import Image
    from skimage.segmentation import find_boundaries

    lo, hi = window
    grey = np.clip((image_slice.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    if labels_slice is not None:
        rng = np.random.default_rng(1)
        colours = rng.integers(64, 256, (int(labels_slice.max()) + 1, 3)).astype(np.uint8)
        edge = find_boundaries(labels_slice, mode="inner") & (labels_slice > 0)
        rgb[edge] = colours[labels_slice[edge]]
    Image.fromarray(rgb).save(path)
    return path


def cmd_demo(args) -> int:
    import numpy as np

    from .demo import run_demo
    from .sam.models import load_model

    shape = tuple(args.shape)
    model = load_model(args.model, device=args.device)
    print(f"Synthetic scroll {shape} (seed {args.seed}); model {model.model_id} on {model.device}", flush=True)

    def show(r):
        if r.stopped:
            print(f"  slice {r.z:4d}: stop ({r.stopped})")

    res = run_demo(model, shape, seed=args.seed, cache=args.cache, on_report=show)
    print(f"prompted wrap {res.wrap} with one point on slice {res.seed_z}")
    print(" slice  IoU vs ground truth")
    for z, iou in res.per_slice_iou.items():
        print(f" {z:5d}  {iou:.3f}")
    done = [z for z in range(shape[0]) if res.labels[z].any()]
    print(f"mean IoU {np.mean(list(res.per_slice_iou.values())):.3f} over {shape[0]} slices; "
          f"segmented {len(done)} slices")
    headless = args.headless or not _has_display()
    if headless:
        if not args.headless:
            print("No display found: running headless (use a desktop session, or xvfb-run, for the viewer).")
        return _demo_headless(res, Path(args.out))
    from ._widgets.demo_viewer import show_demo

    show_demo(res)
    return 0


def _demo_headless(res, out: Path) -> int:
    import numpy as np

    from .io.writer import write_labels

    out.mkdir(parents=True, exist_ok=True)
    z = res.seed_z
    labels = write_labels(out / "labels.zarr", res.labels)
    png = preview_png(out / "demo_slice.png", np.asarray(res.volume.data[z]), res.labels[z], res.volume.contrast_limits)
    print(f"wrote {labels} and {png}")
    return 0


def _read_prompts(path):
    """Seeds from a CSV with columns object,z,y,x[,label][,y1,x1]: a row with y1/x1 is a
    box (y, x)-(y1, x1); otherwise a point with label 1 (foreground) or 0 (background)."""
    import csv

    from .propagation import PropagationError, Seed

    rows = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"object", "z", "y", "x"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise PropagationError(f"{path}: needs columns object,z,y,x[,label][,y1,x1]; "
                                       f"has {reader.fieldnames}")
            for i, row in enumerate(reader, start=2):
                try:
                    key = (int(row["object"]), int(row["z"]))
                    y, x = float(row["y"]), float(row["x"])
                    entry = rows.setdefault(key, {"points": [], "labels": [], "box": None})
                    if row.get("y1") not in (None, "") and row.get("x1") not in (None, ""):
                        entry["box"] = [y, x, float(row["y1"]), float(row["x1"])]
                    else:
                        entry["points"].append([y, x])
                        entry["labels"].append(int(float(row.get("label") or 1)))
                except (TypeError, ValueError) as exc:
                    raise PropagationError(f"{path}, line {i}: {exc}") from exc
    except OSError as exc:
        raise PropagationError(f"{path}: cannot read prompts ({exc})") from exc
    if not rows:
        raise PropagationError(f"{path}: no prompts in it")
    return [Seed(o, z, points=e["points"] or None, labels=e["labels"] or None, box=e["box"])
            for (o, z), e in sorted(rows.items())]


def cmd_propagate(args) -> int:
    import os
    import shutil
    import zarr

    from .io.volume import open_volume
    from .io.writer import WriteError
    from .propagation import StopRule, propagate
    from .sam.embeddings import SliceEmbedder
    from .sam.models import load_model

    seeds = _read_prompts(args.prompts)
    vol = open_volume(args.volume, volume=args.volpkg_volume)
    stop = StopRule(min_pred_iou=args.min_pred_iou, min_slice_iou=args.min_slice_iou,
                    max_area_change=args.max_area_change or None, max_empty=args.max_empty,
                    stop_slices=frozenset(args.stop_slices or ()))
    out = Path(args.out)
    if not out.parent.is_dir():
        raise WriteError(f"{out}: folder {out.parent} does not exist")
    model = load_model(args.model, device=args.device)
    emb = SliceEmbedder(model, vol, mode=_mode_from_args(args), cache=args.cache, batch_size=args.batch_size)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    labels = zarr.create_array(str(partial), shape=vol.shape, dtype="uint32", fill_value=0,
                               chunks=(1, min(vol.shape[1], 1024), min(vol.shape[2], 1024)))
    try:
        gen = propagate(emb, seeds, labels, strategy=args.strategy, stop=stop, direction=args.direction,
                        z_limits=tuple(args.z_limits) if args.z_limits else None)
    except Exception:
        shutil.rmtree(partial, ignore_errors=True)  # bad input: nothing is written
        raise
    print("z,object,area,predicted_iou,slice_iou,direction,stopped")
    try:
        for r in gen:
            s_iou = "" if r.slice_iou is None else f"{r.slice_iou:.3f}"
            print(f"{r.z},{r.object_id},{r.area},{r.iou:.3f},{s_iou},{r.direction},{r.stopped or ''}", flush=True)
    except KeyboardInterrupt:
        gen.close()
        print("cancelled: the slices done so far are kept", file=sys.stderr)
    finally:  # what was done is complete slice by slice: move it into place
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(partial, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _mode_from_args(args):
    from .sampling import make_mode

    params = {}
    for name in ("stride", "d", "window", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return make_mode(args.mode, **params)


def cmd_embed(args) -> int:
    from tqdm import tqdm

    from .sam.distributed import EmbedJob, embed_volume

    job = EmbedJob(volume_path=str(args.volume), model=args.model, device=args.device, mode=_mode_from_args(args),
                   cache=args.cache, batch_size=args.batch_size, volume=args.volpkg_volume)
    zs = range(args.z[0], args.z[1]) if args.z else None
    reports = embed_volume(job, zs=zs, scheduler=args.scheduler)
    encoded = cached = 0
    with tqdm(desc="embedding", unit="slice") as bar:
        for r in reports:
            bar.total = r.total
            bar.update(1)
            cached += r.cached
            encoded += not r.cached
    where = args.cache or "the default cache"
    print(f"{encoded} slices encoded, {cached} already cached, in {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-scroll-sam", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job on the built-in synthetic scroll")
    demo.add_argument("--headless", action="store_true", help="write files instead of opening napari")
    demo.add_argument("--model", default="small", help="vit_b, vit_l, vit_h, small (built in), or a checkpoint")
    demo.add_argument("--device", default="auto")
    demo.add_argument("--cache", default=None, help="embedding cache folder")
    demo.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256), metavar=("Z", "Y", "X"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="scroll-sam-demo", help="output folder for --headless")
    demo.set_defaults(func=cmd_demo)
    info = sub.add_parser("info", help="describe a volume (reads metadata only)")
    info.add_argument("path")
    info.add_argument("--volume", default=None, help="which volume of a .volpkg")
    info.set_defaults(func=cmd_info)
    embed = sub.add_parser("embed", help="precompute SAM embeddings of a volume into the cache")
    embed.add_argument("volume")
    embed.add_argument("--model", default="small", help="vit_b, vit_l, vit_h, small, or a checkpoint path")
    embed.add_argument("--device", default="auto")
    embed.add_argument("--mode", default="every", help="slice sampling: every, tuples, random")
    embed.add_argument("--stride", type=int, default=None)
    embed.add_argument("--d", type=int, default=None, help="tuples: slice distance")
    embed.add_argument("--window", type=int, default=None, help="random tuples: half window")
    embed.add_argument("--seed", type=int, default=None)
    embed.add_argument("--z", type=int, nargs=2, metavar=("START", "STOP"), help="only slices START..STOP-1")
    embed.add_argument("--cache", default=None, help="cache folder (default: $NAPARI_SCROLL_SAM_CACHE or the OS cache)")
    embed.add_argument("--batch-size", type=int, default=None)
    embed.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    embed.add_argument("--volpkg-volume", default=None, help="which volume of a .volpkg")
    embed.set_defaults(func=cmd_embed)
    prop = sub.add_parser("propagate", help="propagate prompts through a volume into a labels zarr")
    prop.add_argument("volume")
    prop.add_argument("--prompts", required=True, help="CSV: object,z,y,x[,label][,y1,x1]")
    prop.add_argument("--out", required=True, help="labels output (.zarr)")
    prop.add_argument("--model", default="small")
    prop.add_argument("--device", default="auto")
    prop.add_argument("--mode", default="every")
    prop.add_argument("--stride", type=int, default=None)
    prop.add_argument("--d", type=int, default=None)
    prop.add_argument("--window", type=int, default=None)
    prop.add_argument("--seed", type=int, default=None)
    prop.add_argument("--strategy", default="box+farthest", help="prompt strategy (see napari_scroll_sam.prompts)")
    prop.add_argument("--direction", default="both", choices=["both", "up", "down"])
    prop.add_argument("--z-limits", type=int, nargs=2, metavar=("START", "STOP"))
    prop.add_argument("--min-pred-iou", type=float, default=0.5)
    prop.add_argument("--min-slice-iou", type=float, default=0.3)
    prop.add_argument("--max-area-change", type=float, default=4.0, help="0 disables")
    prop.add_argument("--max-empty", type=int, default=2)
    prop.add_argument("--stop-slices", type=int, nargs="*")
    prop.add_argument("--cache", default=None)
    prop.add_argument("--batch-size", type=int, default=None)
    prop.add_argument("--volpkg-volume", default=None)
    prop.set_defaults(func=cmd_propagate)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .io.volume import VolumeError
    from .io.writer import WriteError

    errors = (VolumeError, WriteError)
    if args.command in ("embed", "propagate", "demo"):
        from .propagation import PropagationError

        errors += (PropagationError,)
        from .sam.embeddings import EmbeddingError
        from .sam.models import ModelError
        from .sampling import SamplingError

        errors += (EmbeddingError, ModelError, SamplingError)
    try:
        return args.func(args)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
