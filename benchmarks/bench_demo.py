"""The demo over several phantom scrolls: one click on every wrap of the middle slice, all at
once: the default walk (winding split of the sheet completed from the image, turns re-cut on
every slice), the same without the re-cut, and the geodesic split with neither.

    OMP_NUM_THREADS=1 python benchmarks/bench_demo.py --seeds 0 1 2 3 4 5 6 7 \\
        --out benchmarks/results/bench_demo.json

Seed 0 with 8 wraps is the File-menu sample (``napari-scroll-sam demo``); the other seeds
move the spiral's centre, phase, squash and thickness. Per seed and split: mean IoU per
slice against the phantom's wraps (``demo.run_demo``), sheet switches (fraction of
segmented voxels on another wrap), the sheet found (every wrap as one) and seconds. The
baselines run in the same process on the same embeddings.
JSON on stdout (and ``--out``), a markdown table on stderr.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from napari_scroll_sam.demo import run_demo  # noqa: E402
from napari_scroll_sam.propagation import WalkConfig  # noqa: E402
from napari_scroll_sam.sam.models import load_model  # noqa: E402
from _json_out import emit  # noqa: E402  (benchmarks/ is the script's folder)

SPLITS = {"winding": WalkConfig(), "no_recut": WalkConfig(recut=False),
          "geodesic": WalkConfig(winding=False, recut=False)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="small_hr")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--wraps", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu")
    res = {"model": args.model, "wraps": args.wraps, "seeds": {}, "mean": {}}
    with tempfile.TemporaryDirectory() as cache:
        for seed in args.seeds:
            row = {}
            for name, walk in SPLITS.items():
                t = time.time()
                r = run_demo(model, seed=seed, wraps=args.wraps, walk=walk, cache=cache)
                row[name] = {"mean_iou": round(r.mean_iou, 4), "switches": round(r.switches, 4),
                             "sheet_iou": round(r.sheet_iou, 4), "s": round(time.time() - t, 1)}
            res["seeds"][seed] = row
            print(seed, row, file=sys.stderr, flush=True)
    for name in SPLITS:
        res["mean"][name] = {k: round(float(np.mean([row[name][k] for row in res["seeds"].values()])), 4)
                             for k in ("mean_iou", "switches", "sheet_iou")}
    print("| seed | " + " | ".join(f"{n}: IoU / switches / sheet" for n in SPLITS) + " |", file=sys.stderr)
    print("|---|" + "---|" * len(SPLITS), file=sys.stderr)
    for seed, row in [*res["seeds"].items(), ("mean", res["mean"])]:
        cells = [f"{row[n]['mean_iou']:.3f} / {100 * row[n]['switches']:.1f} % / {row[n]['sheet_iou']:.3f}"
                 for n in SPLITS]
        print(f"| {seed} | " + " | ".join(cells) + " |", file=sys.stderr)
    emit(res, args.out)


if __name__ == "__main__":
    main()
