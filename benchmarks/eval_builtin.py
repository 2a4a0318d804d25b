"""The built-in model's ceiling on the EVAL split: true box and one deepest-point click.

For each model and each labelled volume of ``benchmarks/datasets.py`` (eval parts only,
as ``data_split.json`` cuts them), every object on every slice where it is present is
prompted once with its true bounding box and once with one click at its deepest point
(``training.evaluate.ceiling_scores``; no propagation): ``box`` / ``click`` the model's own
masks, ``box_refined`` / ``click_refined`` as ``segment_slice`` draws them (settled on the
slice's edges, ``propagation.prior.refine``). Also times encoder + decoder
per 256² slice. Writes JSON (figures of every model side by side: the baseline is in the
same run)::

    OMP_NUM_THREADS=1 python benchmarks/eval_builtin.py --model small --model runs/x/best.pt \\
        --out benchmarks/results/builtin_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import datasets  # noqa: E402

from napari_scroll_sam.sam.embeddings import SliceEmbedder  # noqa: E402
from napari_scroll_sam.sam.models import load_model, model_summary  # noqa: E402
from napari_scroll_sam.training.evaluate import ceiling_scores  # noqa: E402


def slice_ms(model, side=256, reps=10) -> dict:
    """ms per slice: encoder, and decoder for one box prompt, on this CPU."""
    sam = model.sam
    x = torch.randn(1, 3, model.img_size, model.img_size)
    with torch.inference_mode():
        sam.image_encoder(x)
        t = time.perf_counter()
        for _ in range(reps):
            e = sam.image_encoder(x)
        enc = (time.perf_counter() - t) / reps
        sp, de = sam.prompt_encoder(points=None, boxes=torch.tensor([[10.0, 10, 100, 100]]), masks=None)
        t = time.perf_counter()
        for _ in range(reps):
            sam.mask_decoder(image_embeddings=e, image_pe=sam.prompt_encoder.get_dense_pe(),
                             sparse_prompt_embeddings=sp, dense_prompt_embeddings=de, multimask_output=True)
        dec = (time.perf_counter() - t) / reps
    return {"encoder_ms": 1000 * enc, "decoder_ms": 1000 * dec}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--datasets", nargs="+", default=["isbi", "chloroplast", "mri1", "mri2", "scroll"])
    ap.add_argument("--chloroplast-objects", type=int, default=16, help="objects of the chloroplast eval part")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = {"protocol": "ceiling: each eval object-slice prompted from its own true box, and one deepest-point "
                       "click (best of 3 masks); eval parts of data_split.json", "models": {}}
    data = {}
    for name in args.datasets:
        kw = {"max_objects": args.chloroplast_objects} if name == "chloroplast" else {}
        d = datasets.load(name, "eval", **kw)
        if d is None:
            print(name, "skipped:", datasets.SKIPPED[name], file=sys.stderr)
            continue
        if name == "chloroplast":  # in memory: every tile is read many times
            from napari_scroll_sam.io.volume import Volume

            d.volume = Volume(levels=[np.asarray(d.volume.data.compute())], contrast_limits=d.volume.contrast_limits,
                              name=d.volume.name)
        data[name] = d
    for m in args.model:
        model = load_model(m, device="cpu")
        row = {"summary": model_summary(model), **slice_ms(model)}
        for name, d in data.items():
            t = time.time()
            emb = SliceEmbedder(model, d.volume, cache=False)
            row[name] = ceiling_scores(emb, d.objects, refine=False)  # the model's own masks
            got = ceiling_scores(emb, d.objects)  # as segment_slice draws them: settled on the edges
            row[name].update(box_refined=got["box"], click_refined=got["click"])
            row[name]["s"] = round(time.time() - t, 1)
            print(m, name, row[name], flush=True)
        res["models"][m] = row
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
    names = list(data)
    print("| model | " + " | ".join(f"{n} box | {n} click" for n in names) + " | ms/256² |")
    print("|---|" + "---|---|" * len(names) + "---|")
    for m, row in res["models"].items():
        for sfx, what in (("", "model"), ("_refined", "refined")):
            print(f"| {m} ({what}) | " + " | ".join(f"{row[n]['box' + sfx]:.3f} | {row[n]['click' + sfx]:.3f}"
                                                    for n in names) + f" | {row['encoder_ms'] + row['decoder_ms']:.0f} |")


if __name__ == "__main__":
    main()
