"""The ``napari-scroll-sam`` command.

    napari-scroll-sam demo [--headless] [--model small] [--shape Z Y X] [--seed N] [--out DIR]
    napari-scroll-sam info PATH_OR_URL
    napari-scroll-sam mesh LABELS --out DIR [--objects 1 2 …] [--format ply|obj] [--scene]
    napari-scroll-sam embed VOLUME --model small --mode tuples [--scheduler ADDRESS]
    napari-scroll-sam propagate VOLUME --prompts prompts.csv --model small --out labels.zarr
    napari-scroll-sam train --images IMG --labels LAB [--images … --labels …] --out ckpt/
    napari-scroll-sam evaluate --images IMG --labels LAB --model small --model ckpt/best.pt

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


def cmd_mesh(args) -> int:
    from .errors import ScrollSamError
    from .io.mesh import export_meshes, open_labels

    try:
        labels, voxel, translate, name = open_labels(args.labels)
        if args.voxel_size:
            voxel = tuple(args.voxel_size)
        report = lambda obj, nv, nf: print(f"object {obj}: {nv} vertices, {nf} faces", flush=True)  # noqa: E731
        paths = export_meshes(labels, args.out, objects=args.objects, voxel_size=voxel, translate=translate,
                              fmt=args.format, scene=args.scene, smooth=args.smooth, step=args.step,
                              name=name, on_object=report)
    except ScrollSamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
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
    from .io.atomic import atomic_output

    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
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

    res = run_demo(model, shape, seed=args.seed, cache=args.cache, on_report=show, wraps=args.wraps,
                   strategy=args.strategy)
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


def _walk_arguments(prop):
    """The stop rules and walk options of ``propagate``; defaults are StopRule's / WalkConfig's
    (calibrated on benchmarks/eval_quality.py). A rule given as 0 (or "none") is off."""
    from .propagation import StopRule, WalkConfig

    s, w = StopRule(), WalkConfig()
    num = lambda v: None if str(v).lower() in ("none", "off", "0") else float(v)  # noqa: E731
    cnt = lambda v: None if str(v).lower() in ("none", "off", "0") else int(v)  # noqa: E731
    prop.add_argument("--min-pred-iou", type=num, default=s.min_pred_iou, help=f"(default {s.min_pred_iou}: off)")
    prop.add_argument("--min-slice-iou", type=num, default=s.min_slice_iou, help=f"(default {s.min_slice_iou})")
    prop.add_argument("--max-area-change", type=num, default=s.max_area_change, help="0 disables")
    prop.add_argument("--max-empty", type=cnt, default=s.max_empty, help=f"(default {s.max_empty}; 0 disables)")
    prop.add_argument("--max-overruled", type=cnt, default=s.max_overruled,
                      help="stop after this many slices in a row where the model disagreed with the motion prior")
    prop.add_argument("--prior", default=w.prior, choices=["flow", "copy", "none"],
                      help="motion prior (none: the model's answers as they are)")
    prop.add_argument("--memory", type=int, default=w.memory, help="masks the prior votes over")
    prop.add_argument("--accept", type=float, default=w.accept,
                      help="IoU with the prior from which the model's mask is kept")
    prop.add_argument("--corridor", type=num, default=w.corridor, help="px beyond the measured motion (0: off)")
    prop.add_argument("--snap", type=num, default=w.snap, help="snap the prior to image edges within px (0: off)")
    prop.add_argument("--no-compete", action="store_true", help="no negative points on the other objects")
    prop.add_argument("--adapt-steps", type=int, default=w.adapt_steps,
                      help="decoder steps on the anchors before walking (0: off)")


def _walk_from_args(args):
    from .propagation import StopRule, WalkConfig

    stop = StopRule(min_pred_iou=args.min_pred_iou, min_slice_iou=args.min_slice_iou,
                    max_area_change=args.max_area_change, max_empty=args.max_empty,
                    stop_slices=frozenset(args.stop_slices or ()), max_overruled=args.max_overruled)
    walk = WalkConfig(prior=None if args.prior == "none" else args.prior, memory=args.memory, accept=args.accept,
                      corridor=args.corridor, snap=args.snap, compete=not args.no_compete,
                      adapt_steps=args.adapt_steps)
    return stop, walk


def cmd_propagate(args) -> int:
    import zarr

    from .io.atomic import atomic_output, check_output, partial_name
    from .io.volume import open_volume
    from .prompt_csv import check_prompts, check_strategy, read_prompts
    from .propagation import propagate, walk_summary
    from .sam.embeddings import SliceEmbedder, default_cache_root
    from .sam.models import load_model

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
    emb = SliceEmbedder(model, vol, mode=_mode_from_args(args), cache=args.cache, batch_size=args.batch_size)
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


def _mode_from_args(args):
    """The sampling mode named by --mode, with those of --stride/--d/--window/--seed
    (--mode-seed for `train`, whose --seed seeds the training) that it takes."""
    from .sampling import MODES, make_mode

    values = {"stride": args.stride, "d": args.d, "window": args.window,
              "seed": getattr(args, "mode_seed", getattr(args, "seed", None))}
    spec = MODES.get(args.mode)
    accepted = {p.name for p in spec.params} if spec else set(values)
    return make_mode(args.mode, **{k: v for k, v in values.items() if v is not None and k in accepted})


def cmd_embed(args) -> int:
    from tqdm import tqdm

    from .io.atomic import WriteError, check_writable
    from .sam.distributed import EmbedJob, embed_volume
    from .sam.embeddings import default_cache_root

    root = Path(args.cache) if args.cache else default_cache_root()
    try:  # embed's only product is the cache: refuse one that cannot take it, before any work
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{root}: cannot create the embedding cache ({exc.strerror or exc})") from None
    check_writable(root, f"{root}: the embedding cache")
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


def _training_pairs(args):
    from .io.volume import open_volume
    from .training.data import TrainingPair

    pairs = []
    if args.phantoms:
        from .io.phantom import scroll_phantom
        from .io.volume import Volume

        for i in range(args.phantoms):
            wraps = args.phantom_wraps[i % len(args.phantom_wraps)] if args.phantom_wraps else None
            image, sheets, _ = scroll_phantom(tuple(args.phantom_shape), seed=1000 + i, wraps=wraps)
            vol = Volume(levels=[image.compute()], contrast_limits=(7000, 40000), name=f"phantom-{1000 + i}")
            pairs.append(TrainingPair(vol, sheets.compute(), name=vol.name))
    if getattr(args, "synthetic", 0):
        from .training.synthetic import synthetic_pairs

        pairs += synthetic_pairs(None, args.synthetic, slices=8, seed=100_000)
    images, labels = args.images or [], args.labels or []
    if len(images) != len(labels):
        from .training.data import TrainingDataError

        raise TrainingDataError(f"{len(images)} --images but {len(labels)} --labels: give them in pairs")
    for img, lab in zip(images, labels):
        vol = open_volume(img)
        lab_vol = open_volume(lab)
        pairs.append(TrainingPair(vol, lab_vol.data, name=vol.name, objects=args.objects))
    return pairs


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .sam.models import load_model
    from .training.trainer import EpochReport, StageReport, StepReport, TrainConfig, Trainer

    if args.init == "random":
        import torch

        from .sam.config import build_sam
        from .sam.models import SamModel, resolve_device

        dev = resolve_device(args.device)
        torch.manual_seed(args.seed)
        sam = build_sam(args.model).to(dev)
        from .sam.config import CONFIGS

        model = SamModel(sam, CONFIGS[args.model], dev, f"{args.model}:scratch{args.seed}", args.model)
    else:
        model = load_model(args.model, device=args.device)
    pairs = _training_pairs(args)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, freeze=args.freeze,
                      seed=args.seed, val_fraction=args.val_fraction, patience=args.patience,
                      prompt_kinds=tuple(args.prompts), corrective_rounds=args.corrective_rounds,
                      objects_per_sample=args.objects_per_sample, warmup_steps=args.warmup,
                      warmup_epochs=args.warmup_epochs, min_steps=args.min_steps, augment=not args.no_augment,
                      loss=args.loss)
    trainer = Trainer(model, pairs, args.out, cfg, mode=_mode_from_args(args), cache=args.cache,
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


def cmd_evaluate(args) -> int:
    import json

    from .sam.models import load_model
    from .training.evaluate import CLICK_RULES, evaluate_propagation, evaluate_prompts, table

    pairs = _training_pairs(args)
    if not pairs:
        from .training.data import TrainingDataError

        raise TrainingDataError("no data: give --images and --labels (or --phantoms N)")
    slices = {0: args.slices} if args.slices else None
    columns, propagation = {}, {}
    for name in args.model:
        model = load_model(name, device=args.device)
        print(f"evaluating {model.model_id} …", file=sys.stderr, flush=True)
        columns[str(name)] = evaluate_prompts(model, pairs, args.strategies, slices=slices,
                                              mode=_mode_from_args(args), cache=args.cache, seed=args.seed,
                                              click=args.click)
        if args.propagation:
            propagation[str(name)] = evaluate_propagation(model, pairs[0], mode=_mode_from_args(args),
                                                          cache=args.cache)
    print(f"mean IoU per prompt (masks: {args.click}, {CLICK_RULES[args.click]})")
    print(table(columns, propagation=propagation or None))
    if args.json:
        out = {"click": args.click, "prompts": columns, "propagation": {k: {"mean_iou": v["mean_iou"]} for k, v in propagation.items()}}
        from .io.atomic import atomic_output

        with atomic_output(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(out, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-scroll-sam", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, **kw):  # every command takes --debug, before or after its name
        return sub.add_parser(name, parents=[common], **kw)

    demo = command("demo", help="the main job on the built-in synthetic scroll")
    demo.add_argument("--headless", action="store_true", help="write files instead of opening napari")
    demo.add_argument("--model", default="small", help="vit_b, vit_l, vit_h, small (built in), or a checkpoint")
    demo.add_argument("--device", default="auto")
    demo.add_argument("--cache", default=None, help="embedding cache folder")
    demo.add_argument("--wraps", type=int, default=5, help="turns of the synthetic sheet")
    demo.add_argument("--strategy", default="skeleton+background", help="prompt strategy for the next slice")
    demo.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256), metavar=("Z", "Y", "X"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="scroll-sam-demo", help="output folder for --headless")
    demo.set_defaults(func=cmd_demo)
    info = command("info", help="describe a volume (reads metadata only)")
    info.add_argument("path")
    info.add_argument("--volume", default=None, help="which volume of a .volpkg")
    info.set_defaults(func=cmd_info)
    mesh = command("mesh", help="export objects of a labels volume as surface meshes (.ply / .obj)")
    mesh.add_argument("labels", help="labels: .ome.zarr, .zarr, .tif, .nii.gz, … (any volume of integers)")
    mesh.add_argument("--out", required=True, help="output folder")
    mesh.add_argument("--objects", type=int, nargs="+", default=None, help="object ids (default: all)")
    mesh.add_argument("--format", default="ply", choices=["ply", "obj"])
    mesh.add_argument("--scene", action="store_true", help="one file with every object instead of one each")
    mesh.add_argument("--smooth", type=float, default=0.0, help="Gaussian sigma (voxels) before meshing")
    mesh.add_argument("--step", type=int, default=1, help="decimation: marching-cubes step in voxels")
    mesh.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="override the voxel size")
    mesh.set_defaults(func=cmd_mesh)
    embed = command("embed", help="precompute SAM embeddings of a volume into the cache")
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
    prop = command("propagate", help="propagate prompts through a volume into a labels zarr")
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
    _walk_arguments(prop)
    prop.add_argument("--stop-slices", type=int, nargs="*")
    prop.add_argument("--cache", default=None)
    prop.add_argument("--batch-size", type=int, default=None)
    prop.add_argument("--volpkg-volume", default=None)
    prop.set_defaults(func=cmd_propagate)
    tr = command("train", help="fine-tune SAM on annotated (image, labels) pairs")
    tr.add_argument("--images", nargs="*", help="image volumes (any format open_volume reads)")
    tr.add_argument("--labels", nargs="*", help="labels volumes, one per image")
    tr.add_argument("--objects", default="instances", choices=["instances", "components"])
    tr.add_argument("--phantoms", type=int, default=0, help="add N generated synthetic scrolls (wraps as objects)")
    tr.add_argument("--phantom-shape", type=int, nargs=3, default=(8, 256, 256))
    tr.add_argument("--phantom-wraps", type=int, nargs="*", default=None, help="wraps per phantom (cycled)")
    tr.add_argument("--out", required=True, help="output folder for best.pt / last.pt")
    tr.add_argument("--model", default="small")
    tr.add_argument("--init", default="pretrained", choices=["pretrained", "random"],
                    help="random: train a registry configuration from scratch")
    tr.add_argument("--resume", default=None, help="a last.pt to continue from")
    tr.add_argument("--device", default="auto")
    from .training.config import TrainConfig

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
    tr.set_defaults(func=cmd_train)
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
    ev.add_argument("--mode", default="every")
    ev.add_argument("--stride", type=int, default=None)
    ev.add_argument("--d", type=int, default=None)
    ev.add_argument("--window", type=int, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--cache", default=None)
    ev.add_argument("--json", default=None, help="also write the figures as JSON here")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None) -> int:
    """Run a command. The project's errors print as one line (exit 2), anything else as one
    line naming its type (exit 1), Ctrl-C exits 130; ``--debug`` adds the traceback."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    import logging

    if not logging.getLogger().handlers:  # warnings (e.g. a read-only cache) as one line each
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from .errors import ScrollSamError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            import traceback

            traceback.print_exc()
        print("cancelled (Ctrl-C)", file=sys.stderr)
        return 130
    except ScrollSamError as exc:
        _print_error(f"error: {exc}", debug)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug for the traceback
        text = str(exc).strip().splitlines()
        where = f" ({exc.filename})" if isinstance(exc, OSError) and getattr(exc, "filename", None) else ""
        _print_error(f"error: {type(exc).__name__}{where}: {text[0] if text else ''}"
                     + ("" if debug else "  (run again with --debug for the traceback)"), debug)
        return 1


def _print_error(line: str, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    print(" ".join(line.split("\n")), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
