"""What a scroll's turns cost per slice at the sizes of real scans: the seed slice's winding
split with the sheet completed from the image (``engine.split_seeds(grey=)``, once per
click slice) and the walk's re-cut (``recut.recut``, every slice of a walk of several
wraps), on the File-menu scroll's middle slice enlarged to each size (nearest neighbour:
the same sheet, 4-8 px thick at 256² and so many times thicker at the larger sizes; its
grey image with noise).

    OMP_NUM_THREADS=1 python benchmarks/bench_recut.py --sizes 256 1024 2048 4096 \\
        --out benchmarks/results/bench_recut.json

Masks: the true wraps with an arc of each cut out (the gaps the model leaves) for the
split; the true wraps with the cut between turns moved 20° (what the flow carries) for the
re-cut. Per size: seconds (best of ``--repeat``), the peak of Python-tracked memory
(numpy's arrays), and the mean IoU per wrap of the result (a check that it still works).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from napari_scroll_sam.io.phantom import scroll_phantom  # noqa: E402
from napari_scroll_sam.prompts import farthest_from_boundary  # noqa: E402
from napari_scroll_sam.propagation.engine import split_seeds  # noqa: E402
from napari_scroll_sam.propagation.prior import window  # noqa: E402
from napari_scroll_sam.propagation.recut import recut  # noqa: E402
from napari_scroll_sam.propagation.winding import sheet_centre  # noqa: E402
from _json_out import emit  # noqa: E402  (benchmarks/ is the script's folder)


def _angles(shape, centre):
    yy, xx = np.indices(shape, dtype=np.float32)
    return np.arctan2(yy - centre[0], xx - centre[1])


def _case(gt, image, f):
    gt = np.repeat(np.repeat(gt, f, 0), f, 1)
    grey = window(np.repeat(np.repeat(image, f, 0), f, 1), (7000, 40000))
    centre = sheet_centre(gt[::f, ::f] > 0) * f
    ang = _angles(gt.shape, centre)
    wraps = [int(w) for w in np.unique(gt) if w]
    gappy = [(gt == w) & ~(np.abs(np.angle(np.exp(1j * (ang - 0.9 * i - 1.0)))) < np.deg2rad(17))
             for i, w in enumerate(wraps)]
    clicks = [farthest_from_boundary(gt == w)[None] for w in wraps]
    contact = (gt == 2) & np.roll(gt == 1, 1, axis=0) | (gt == 2) & np.roll(gt == 1, -1, axis=1)
    yy, xx = np.nonzero(contact)
    end = np.arctan2(yy.mean() - centre[0], xx.mean() - centre[1])
    d = np.angle(np.exp(1j * (ang - end)))
    sector = (d < 0) & (d > -np.deg2rad(20))
    lab = np.where(sector & (gt > 0) & (gt < gt.max()), gt + 1, gt)
    carried = [lab == w for w in wraps]
    return gt, wraps, ((0, 0, *gt.shape), grey), gappy, clicks, carried


def _timed(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    image, sheets, _ = scroll_phantom((64, 256, 256), seed=0, wraps=8)
    gt0, im0 = np.asarray(sheets[32]), np.asarray(image[32])
    res = {"sizes": {}}
    for size in args.sizes:
        f = max(1, size // 256)
        gt, wraps, grey, gappy, clicks, carried = _case(gt0, im0, f)
        score = lambda masks: round(float(np.mean([((m & (gt == w)).sum() / max((m | (gt == w)).sum(), 1))  # noqa: E731
                                                    for w, m in zip(wraps, masks)])), 4)
        s_split, m_split, split = _timed(lambda: split_seeds(gappy, clicks, grey=grey), args.repeat)
        s_cut, m_cut, cut = _timed(lambda: recut(carried, grey), args.repeat)
        row = {"split_s": round(s_split, 3), "split_peak_mb": round(m_split / 2**20), "split_iou": score(split),
               "gappy_iou": score(gappy), "recut_s": round(s_cut, 3), "recut_peak_mb": round(m_cut / 2**20),
               "recut_iou": score(cut), "carried_iou": score(carried)}
        res["sizes"][size] = row
        print(size, row, file=sys.stderr, flush=True)
    emit(res, args.out)


if __name__ == "__main__":
    main()
