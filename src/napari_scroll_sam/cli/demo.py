"""``napari-scroll-sam demo``: the main job on the built-in synthetic scroll."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..layers import BUILTIN_MODEL, BUILTIN_MODELS


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


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
    from ..io.atomic import atomic_output

    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return path


def run(args) -> int:
    from ..demo import run_demo
    from ..sam.models import load_model

    shape = tuple(args.shape)
    model = load_model(args.model, device=args.device)
    print(f"Synthetic scroll {shape} (seed {args.seed}); model {model.model_id} on {model.device}", flush=True)

    def show(r):
        if r.stopped:
            print(f"  slice {r.z:4d}: stop ({r.stopped})")

    res = run_demo(model, shape, seed=args.seed, wrap=args.wrap, cache=args.cache, on_report=show,
                   wraps=args.wraps, strategy=args.strategy)
    which = f"wrap {res.wrap}" if len(res.wraps) == 1 else f"{len(res.wraps)} wraps (all at once)"
    print(f"prompted {which} with one point each on slice {res.seed_z}")
    print(" slice  IoU vs ground truth")
    for z, iou in res.per_slice_iou.items():
        print(f" {z:5d}  {iou:.3f}")
    done = [z for z in range(shape[0]) if res.labels[z].any()]
    print(f"mean IoU {res.mean_iou:.3f} over {shape[0]} slices; segmented {len(done)} slices; "
          f"sheet switches {100 * res.switches:.1f} % of the segmented voxels; the prompted wraps as one "
          f"sheet: IoU {res.sheet_iou:.3f}")
    headless = args.headless or not _has_display()
    if headless:
        if not args.headless:
            print("No display found: running headless (use a desktop session, or xvfb-run, for the viewer).")
        return _demo_headless(res, Path(args.out))
    from .._widgets.demo_viewer import show_demo

    show_demo(res)
    return 0


def _demo_headless(res, out: Path) -> int:
    import numpy as np

    from ..io.writer import write_labels

    out.mkdir(parents=True, exist_ok=True)
    z = res.seed_z
    labels = write_labels(out / "labels.zarr", res.labels)
    png = preview_png(out / "demo_slice.png", np.asarray(res.volume.data[z]), res.labels[z], res.volume.contrast_limits)
    print(f"wrote {labels} and {png}")
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    demo = command("demo", help="the main job on the built-in synthetic scroll")
    demo.add_argument("--headless", action="store_true", help="write files instead of opening napari")
    demo.add_argument("--model", default=BUILTIN_MODEL, help=f"vit_b, vit_l, vit_h, {', '.join(BUILTIN_MODELS)} (built in; default {BUILTIN_MODEL}), or a checkpoint")
    demo.add_argument("--device", default="auto")
    demo.add_argument("--cache", default=None, help="embedding cache folder")
    demo.add_argument("--wraps", type=int, default=8, help="turns of the synthetic sheet (8: the File-menu sample)")
    demo.add_argument("--wrap", type=int, default=None, help="click only this wrap (default: every wrap)")
    demo.add_argument("--strategy", default="box+farthest", help="prompt strategy for the next slice")
    demo.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256), metavar=("Z", "Y", "X"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="scroll-sam-demo", help="output folder for --headless")
    demo.set_defaults(func=run)
