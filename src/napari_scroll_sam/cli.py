"""The ``napari-scroll-sam`` command.

    napari-scroll-sam demo [--headless] [--shape Z Y X] [--seed N] [--out DIR]
    napari-scroll-sam info PATH
    napari-scroll-sam embed VOLUME --model small --mode tuples [--scheduler ADDRESS]

``demo`` is the main job on the built-in sample: it generates the synthetic
scroll and opens napari on it (volume, sheet labels, ink; 3D view). With
``--headless`` (or when there is no display) it writes the sample to ``--out``
(zarr) with a PNG preview instead.
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
    from .io.phantom import scroll_phantom

    shape = tuple(args.shape)
    print(f"Generating a synthetic scroll {shape} (seed {args.seed})…", flush=True)
    phantom = scroll_phantom(shape, seed=args.seed)
    headless = args.headless or not _has_display()
    if headless:
        if not args.headless:
            print("No display found: running headless (use a desktop session, or xvfb-run, for the viewer).")
        return _demo_headless(phantom, Path(args.out))
    return _demo_viewer(phantom)


def _demo_headless(phantom, out: Path) -> int:
    import numpy as np

    from .io.writer import write_labels

    out.mkdir(parents=True, exist_ok=True)
    z = phantom.image.shape[0] // 2
    image = phantom.image[z].compute()
    sheets = phantom.sheets[z].compute()
    write_labels(out / "sheets.zarr", phantom.sheets)
    write_labels(out / "ink.zarr", phantom.ink)
    png = preview_png(out / "sample_slice.png", image, sheets, (np.percentile(image, 1), np.percentile(image, 99.5)))
    print(f"wraps: {len(np.unique(sheets)) - 1} on slice {z}; ink voxels on it: {int(phantom.ink[z].sum().compute())}")
    print(f"wrote {out / 'sheets.zarr'}, {out / 'ink.zarr'} and {png}")
    return 0


def _demo_viewer(phantom) -> int:
    import napari

    from ._widgets.volume import VolumeWidget
    from .io.phantom import sample_scroll

    viewer = napari.Viewer(title="napari-scroll-sam demo")
    for data, meta, kind in sample_scroll(phantom=phantom):
        getattr(viewer, f"add_{kind}")(data, **meta)
    viewer.window.add_dock_widget(VolumeWidget(viewer), name="Volume", area="right")
    viewer.dims.ndisplay = 3
    napari.run()
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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .io.volume import VolumeError
    from .io.writer import WriteError

    errors = (VolumeError, WriteError)
    if args.command == "embed":
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
