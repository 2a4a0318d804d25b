"""Calibrate the refinement of prompted masks (``propagation.prior.refine``: the model's mask
settled on the slice's edges between ``inner`` px inside and ``outer`` px outside).

The built-in model draws each object of the TRAIN split (``data_split.json``: ISBI EM z 0-9,
chloroplast EM x < 1600, 8 objects; training phantom scrolls seeds 1000 (8 wraps) and 1001 (14
wraps), every 4th / 8th slice) from its true box and from one click at its deepest point; each
(inner, outer) of the grid refines those masks; mean IoU per volume, and for the chosen
constants on the EVAL split too (``--eval``: never used to choose). JSON out::

    python benchmarks/refine_calibrate.py --out benchmarks/results/refine_calibrate.json [--eval]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datasets  # noqa: E402  (puts the source tree on the path if needed)

from napari_scroll_sam.io.volume import Volume  # noqa: E402
from napari_scroll_sam.prompts import farthest_from_boundary  # noqa: E402
from napari_scroll_sam.propagation.prior import (REFINE_INNER, REFINE_OUTER, grow_box, mask_box, refine,  # noqa: E402
                                                 window)
from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.segment import segment_slice  # noqa: E402
from _json_out import emit  # noqa: E402  (benchmarks/ is the script's folder)

GRID = [(i, o) for i in (1, 2, 3, 4) for o in (3, 4, 6, 8, 10) if o > i]


def phantom(seed, wraps):
    from napari_scroll_sam.io.phantom import CONTRAST_LIMITS, scroll_phantom

    image, sheets, _ = scroll_phantom((16, 256, 256), seed=seed, wraps=wraps)
    s = sheets.compute()
    vol = Volume(levels=[image.compute()], contrast_limits=CONTRAST_LIMITS, name=f"phantom{seed}")
    return datasets.Dataset(f"phantom{seed}", vol, {int(k): s == k for k in np.unique(s[s > 0])}, "phantom")


def samples(model, sets):
    """[(volume, truth, box mask, click mask, grey crop, box)] in crops around each object."""
    out = []
    for ds in sets:
        emb = SliceEmbedder(model, ds.volume, cache=False)
        for g in ds.objects.values():
            zs = [z for z in range(g.shape[0]) if g[z].any()]
            if ds.name.startswith(("phantom", "scroll")):
                zs = zs[::8] if len(zs) > 16 else zs[::4]
            for z in zs:
                ys, xs = np.nonzero(g[z])
                b = np.array([ys.min(), xs.min(), ys.max(), xs.max()], float)
                mb = segment_slice(emb, z, box=b, refine=False).masks[0]
                mc = segment_slice(emb, z, points=farthest_from_boundary(g[z])[None], labels=[1],
                                   refine=False).masks[0]
                y0, x0, y1, x1 = grow_box(mask_box(g[z] | mb | mc), 24, g[z].shape)
                grey = window(np.asarray(ds.volume.data[z, y0:y1, x0:x1]), ds.volume.contrast_limits)
                crop = (slice(y0, y1), slice(x0, x1))
                out.append((ds.name, g[z][crop], mb[crop], mc[crop], grey, b - [y0, x0, y0, x0]))
        print(ds.name, len(out), "object-slices so far", file=sys.stderr, flush=True)
    return out


def score(data, inner=None, outer=None) -> dict:
    """{"box"|"click": {volume: mean IoU}} with the refinement (None: the model's masks)."""
    res = {"box": {}, "click": {}}
    for name, g, mb, mc, grey, b in data:
        for kind, m, box in (("box", mb, b), ("click", mc, None)):
            r = m if inner is None else refine(m, ((0, 0) + grey.shape, grey), box, inner, outer)
            u = (r | g).sum()
            res[kind].setdefault(name, []).append(float((r & g).sum() / u) if u else 1.0)
    return {k: {n: round(float(np.mean(v)), 4) for n, v in d.items()} for k, d in res.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from napari_scroll_sam.layers import BUILTIN_MODEL

    ap.add_argument("--model", default=BUILTIN_MODEL, help="default: the built-in model")
    ap.add_argument("--eval", action="store_true", help="also score the chosen constants on the EVAL split")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t0 = time.time()
    model = datasets.load_model(args.model)
    train = samples(model, [datasets.load("isbi", "train"), datasets.load("chloroplast", "train", max_objects=8),
                            phantom(1000, 8), phantom(1001, 14)])
    res = {"model": str(model.model_id), "object_slices": len(train), "grid": {}}
    res["grid"]["model"] = score(train)
    for i, o in GRID:
        res["grid"][f"inner{i}_outer{o}"] = score(train, i, o)
        print(f"inner {i} outer {o}", res["grid"][f"inner{i}_outer{o}"], file=sys.stderr, flush=True)
    mean = {k: float(np.mean([np.mean(list(v["box"].values())), np.mean(list(v["click"].values()))]))
            for k, v in res["grid"].items()}
    res["best_on_train"] = max(mean, key=mean.get)
    res["chosen"] = f"inner{REFINE_INNER:g}_outer{REFINE_OUTER:g}"
    if args.eval:
        ev = samples(model, [datasets.load(n, **kw) for n, kw in (("isbi", {}), ("chloroplast", {"max_objects": 16}),
                                                                   ("mri1", {}), ("mri2", {}), ("scroll", {}),
                                                                   ("scroll_touching", {}))])
        res["eval"] = {"model": score(ev), "chosen": score(ev, REFINE_INNER, REFINE_OUTER)}
    res["seconds"] = round(time.time() - t0, 1)
    emit(res, args.out)


if __name__ == "__main__":
    main()
