"""Benchmark SAM image encoding: our batched path against ``SamPredictor.set_image`` per slice.

    python benchmarks/bench_embed.py                  # CPU: small + vit_b, ~3-4 min on 2 cores
    python benchmarks/bench_embed.py --device cuda [--models vit_h] [--compile]

Prints one JSON document (progress on stderr). Per model, in the same run: ``naive`` (the
``SamPredictor.set_image`` loop, stock attention, fp32), ``ours`` (raw uint16 (B, 3, H, W)
batches -> torch preprocessing -> one sdpa encoder call per batch, per batch size and fp32 /
bf16 autocast: slices/s, ratio to naive, TFLOP/s, peak CUDA memory, difference from naive's
embeddings; OOM recorded per config) and ``attention`` (the encoder alone, stock / sdpa / flex,
``torch.compile``'d with ``--compile``: s/image, max |output - stock|).

Without dask/zarr/scipy (the GPU machine) or with ``--no-volume``, random slices go straight to
``sam.preprocess`` + the encoder and only ``sam.models`` / ``.preprocess`` / ``.attention`` are
imported; otherwise a phantom ``Volume`` feeds ``SliceEmbedder.encode``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    import napari_scroll_sam  # noqa: F401
except ImportError:  # a bare checkout (the GPU machine): use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_scroll_sam.sam.attention import patch_attention  # noqa: E402
from napari_scroll_sam.sam.models import CONFIGS, SamModel, build_sam, resolve_device  # noqa: E402
from napari_scroll_sam.sam.preprocess import preprocess  # noqa: E402
from segment_anything import SamPredictor  # noqa: E402  (importable once sam.models is)

WINDOW = (7000.0, 40000.0)  # contrast limits of the phantom (air ~10k, papyrus ~31k)
DTYPES = {"fp32": None, "bf16": torch.bfloat16}
NOTES = ["rates are best of reps; naive and ours include preprocessing (naive's uint8 RGB is made "
         "before timing), ours also the host-to-device copy; attention.* is the encoder alone",
         "tflops = FlopCounterMode FLOPs of one image (2 per multiply-add) x images/s; pct_of_peak is "
         "against --peak-tflops (bf16 dense) for every dtype", "weights are random (seed 0)"]
T0 = time.perf_counter()


def log(msg):
    print(f"[bench_embed {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def r(x, n=4):
    return None if x is None else float(f"{x:.{n}g}")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def autocast(dev, dtype):
    return torch.autocast(dev.type, dtype=DTYPES[dtype]) if DTYPES[dtype] else contextlib.nullcontext()


def oom_errors():
    return (torch.cuda.OutOfMemoryError,) if torch.cuda.is_available() else ()


def bench(fn, dev, warmup, reps):
    """(best seconds per call, {times, cpu_util}, last output), after ``warmup`` untimed calls.

    The best of ``reps`` (as timeit): the machine may be shared. ``cpu_util`` is this process's
    CPU time / (wall time x torch threads): well below 1 on CPU means other load took cores.
    """
    for _ in range(warmup):
        fn()
    times, cpu, out = [], 0.0, None
    for _ in range(reps):
        sync(dev)
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        sync(dev)
        times.append(time.perf_counter() - t)
        cpu += time.process_time() - c
    stats = {"times_s": [r(t) for t in times]}
    if dev.type == "cpu":
        stats["cpu_util"] = r(cpu / sum(times) / torch.get_num_threads(), 2)
    return min(times), stats, out


def max_diff(a, b):
    a, b = a.float().cpu(), b.float().cpu()
    return {"max_abs": r((a - b).abs().max().item()), "ref_max_abs": r(b.abs().max().item())}


def count_flops(name):
    """FLOPs of the encoder on one image (stock attention), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        enc = build_sam(name).image_encoder
        x = torch.empty(1, 3, enc.img_size, enc.img_size)
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            enc(x)
    return fc.get_total_flops()


def make_slices(n, size, use_volume):
    """(raw (n, 3, size, size) uint16, rgb list of (size, size, 3) uint8, Volume or None)."""
    if use_volume:
        from napari_scroll_sam.io.phantom import scroll_phantom
        from napari_scroll_sam.io.volume import Volume
        from napari_scroll_sam.sampling import EverySlice, sample_raw, window_to_uint8

        vol = Volume(levels=[scroll_phantom((n, size, size), seed=0)[0]], contrast_limits=WINDOW, name="phantom")
        raw = sample_raw(vol, range(n), EverySlice())
        return raw, [np.ascontiguousarray(window_to_uint8(s, WINDOW).transpose(1, 2, 0)) for s in raw], vol
    grey = np.random.default_rng(0).integers(5000, 42000, (n, 1, size, size), dtype=np.uint16)
    lo, hi = WINDOW
    u8 = np.clip(np.rint((grey.astype(np.float64) - lo) * (255 / (hi - lo))), 0, 255).astype(np.uint8)
    return np.repeat(grey, 3, axis=1), [np.repeat(s.transpose(1, 2, 0), 3, axis=2) for s in u8], None


def ours_fn(model, raw, bs, dtype, volume):
    """Callable encoding all of ``raw`` in batches of ``bs``, and the path it takes."""
    sam, dev = model.sam, model.device
    from napari_scroll_sam.sam.precision import compute_dtype

    if volume is not None and dtype == ("bf16" if compute_dtype(dev) == torch.bfloat16 else "fp32"):
        from napari_scroll_sam.sam.embeddings import SliceEmbedder

        emb = SliceEmbedder(model, volume, cache=False, batch_size=bs, attention="sdpa")
        return (lambda: emb.encode(raw)), "SliceEmbedder.encode"

    @torch.inference_mode()
    def run():
        outs = []
        for i in range(0, len(raw), bs):
            x, _ = preprocess(raw[i:i + bs], WINDOW, sam.image_encoder.img_size, dev)
            with autocast(dev, dtype):
                outs.append(sam.image_encoder(x).float())
        return torch.cat(outs)
    return run, "preprocess+image_encoder"


def bench_model(name, args, dev, raw_all, rgb_all, volume):
    res = {"img_size": CONFIGS[name].img_size, "flops_per_image": count_flops(name)}
    with torch.device(dev):
        torch.manual_seed(0)
        sam = build_sam(name).eval()
    model = SamModel(sam, CONFIGS[name], dev, f"{name}:random", name)
    res["params_m"] = r(sum(p.numel() for p in sam.parameters()) / 1e6)
    if dev.type == "cuda":
        res["weights_gib"] = r(torch.cuda.memory_allocated(dev) / 2**30)
    n = args.vitb_slices if name == "vit_b" and dev.type == "cpu" else args.slices
    # one-time warm-up of the module: one image, sdpa; a slow model (CPU) gets no per-path warm-up
    patch_attention(sam, "sdpa")
    x1, _ = preprocess(raw_all[:1], WINDOW, sam.image_encoder.img_size, dev)
    t = time.perf_counter()
    with torch.inference_mode():
        sam.image_encoder(x1)
    sync(dev)
    res["first_call_s"] = r(time.perf_counter() - t)
    warmup = args.warmup if dev.type == "cuda" or res["first_call_s"] < args.slow_s else 0
    reps = args.reps if dev.type == "cuda" or res["first_call_s"] < args.slow_s else 1
    res["warmup_per_path"], res["reps"] = warmup, reps
    flops = res["flops_per_image"]

    def rates(s, count):
        sps = count / s
        tf = flops * sps / 1e12
        return {"slices_per_s": r(sps), "s_per_slice": r(s / count), "tflops": r(tf),
                "pct_of_peak": r(100 * tf / args.peak_tflops, 3)}

    if "throughput" in args.sections:
        nb = min(n, args.baseline_slices or n)
        log(f"{name}: naive SamPredictor loop, {nb} slices")
        patch_attention(sam, "stock")
        pred = SamPredictor(sam)
        rgbs = rgb_all[:nb]

        def naive():
            feats = []
            for rgb in rgbs:
                pred.set_image(rgb)
                feats.append(pred.features)
            return torch.cat(feats)
        s, stats, ref = bench(naive, dev, warmup, reps)
        ref = ref.cpu()
        res["naive"] = {"slices": nb, **stats, **rates(s, nb)}
        del pred
        res["ours"], failed = [], set()
        for dtype in args.dtypes:
            for bs in args.batch_sizes:
                bs = min(bs, n)  # batch sizes ascend: after an OOM, larger ones are skipped
                entry = {"dtype": dtype, "batch_size": bs, "slices": n}
                if dtype in failed:
                    res["ours"].append({**entry, "skipped": "a smaller batch ran out of memory"})
                    continue
                if any(e["batch_size"] == bs and e["dtype"] == dtype for e in res["ours"]):
                    continue
                log(f"{name}: ours {dtype} batch {bs}, {n} slices")
                patch_attention(sam, "sdpa")
                raw = raw_all[:n]
                fn, entry["path"] = ours_fn(model, raw, bs, dtype, volume)
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(dev)
                try:
                    s, stats, out = bench(fn, dev, warmup, reps)
                except oom_errors() as exc:
                    entry["oom"] = str(exc).splitlines()[0][:200]
                    failed.add(dtype)
                    fn = out = None
                    gc.collect()
                    torch.cuda.empty_cache()
                    res["ours"].append(entry)
                    continue
                entry.update(**stats, **rates(s, n))
                entry["ratio_vs_naive"] = r(entry["slices_per_s"] / res["naive"]["slices_per_s"], 3)
                entry["diff_vs_naive"] = max_diff(out[:nb], ref)
                if dev.type == "cuda":
                    entry["max_mem_gib"] = r(torch.cuda.max_memory_allocated(dev) / 2**30)
                res["ours"].append(entry)
                del fn, out

    if "attention" in args.sections:
        ab = args.attn_batch or (8 if dev.type == "cuda" else 1)
        x, _ = preprocess(raw_all[:ab], WINDOW, sam.image_encoder.img_size, dev)
        res["attention"] = {"batch": ab, "dtype": args.attn_dtype, "compile": args.compile}
        ref = None
        for kind in ("stock", "sdpa", "flex"):
            if f"{name}:{kind}" in args.skip:
                res["attention"][kind] = {"skipped": "--skip"}
                continue
            log(f"{name}: attention {kind}, batch {ab}{' (compile)' if args.compile else ''}")
            patch_attention(sam, kind)
            enc, entry = sam.image_encoder, {}
            if args.compile:
                torch._dynamo.reset()
                enc = torch.compile(enc)

            @torch.inference_mode()
            def run(enc=enc):
                with autocast(dev, args.attn_dtype):
                    return enc(x).float()
            try:
                if args.compile:
                    t = time.perf_counter()
                    run()
                    sync(dev)
                    entry["compile_s"] = r(time.perf_counter() - t)
                s, stats, out = bench(run, dev, warmup, reps)
            except Exception as exc:  # noqa: BLE001 — OOM, or a compile failure: record it, go on
                key = "oom" if isinstance(exc, oom_errors()) else "error"
                first = (str(exc).strip().splitlines() or [""])[0]
                res["attention"][kind] = {key: f"{type(exc).__name__}: {first[:300]}"}
                log(f"{name}: attention {kind} failed: {res['attention'][kind][key][:120]}")
                gc.collect()
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            entry.update(s_per_image=r(s / ab), tflops=r(flops * ab / s / 1e12), **stats)
            if ref is None and kind == "stock":
                ref = out
            if ref is not None:
                entry["diff_vs_stock"] = max_diff(out, ref)
            res["attention"][kind] = entry
        base = res["attention"].get("stock", {}).get("s_per_image")
        for kind in ("sdpa", "flex"):
            if base and "s_per_image" in res["attention"].get(kind, {}):
                res["attention"][kind]["speedup_vs_stock"] = r(base / res["attention"][kind]["s_per_image"], 3)
        patch_attention(sam, "sdpa")
    del model, sam
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return res


def machine_info(dev):
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "loadavg_start": [r(v, 3) for v in os.getloadavg()], "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "device": str(dev)}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(device_name=p.name, device_mem_gib=r(p.total_memory / 2**30), cuda=torch.version.cuda,
                    capability=f"{p.major}.{p.minor}", allow_tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    allow_tf32_cudnn=torch.backends.cudnn.allow_tf32)
        a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)  # in-run ceiling: a bare bf16 matmul
        s, _, _ = bench(lambda: a @ a, dev, 3, 10)
        info["matmul_bf16_tflops_measured"] = r(2 * 8192**3 / s / 1e12)
        del a
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--models", help="default: small,vit_b on CPU; vit_b,vit_l,vit_h on CUDA")
    p.add_argument("--batch-sizes", help="default: 4,8 on CPU (capped at the slice count); 1,2,4,8,16,32 on CUDA")
    p.add_argument("--dtypes", help="fp32 and/or bf16 (autocast); default fp32,bf16 on CUDA and on CPUs with "
                                    "native bf16 (AMX / AVX-512 BF16), else fp32")
    p.add_argument("--slices", type=int, help="slices per ours config (default 16 CPU, 32 CUDA)")
    p.add_argument("--vitb-slices", type=int, default=2, help="slices for vit_b on CPU (~20-45 s per image)")
    p.add_argument("--baseline-slices", type=int, help="slices for the SamPredictor loop (default: CPU all, CUDA 16)")
    p.add_argument("--size", type=int, help="slice side in px (default 512 CPU, 1024 CUDA)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, help="timed repetitions (default 5 CPU, 3 CUDA; 1 for a slow CPU model)")
    p.add_argument("--slow-s", type=float, default=5.0, help="CPU: one rep, no per-path warm-up when one image takes longer")
    p.add_argument("--sections", default="throughput,attention")
    p.add_argument("--attn-batch", type=int, help="images per attention-variant call (default 1 CPU, 8 CUDA)")
    p.add_argument("--attn-dtype", help="default fp32 on CPU, bf16 on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder for the attention variants")
    p.add_argument("--skip", help="model:attention pairs to skip (default on CPU: vit_b:flex, eager flex ~75 s/img)")
    p.add_argument("--no-volume", action="store_true", help="random slices, no Volume/SliceEmbedder (no dask/zarr)")
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="peak for pct_of_peak (989: H100/H200 dense bf16; ~790 measured on bf16 matmuls)")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    split = lambda s: [v.strip() for v in s.split(",") if v.strip()]  # noqa: E731
    args.models = split(args.models or ("vit_b,vit_l,vit_h" if cuda else "small,vit_b"))
    args.batch_sizes = sorted({int(b) for b in split(args.batch_sizes or ("1,2,4,8,16,32" if cuda else "4,8"))})
    from napari_scroll_sam.sam.precision import cpu_bf16

    args.dtypes = split(args.dtypes or ("fp32,bf16" if cuda or cpu_bf16() else "fp32"))
    args.attn_dtype = args.attn_dtype or ("bf16" if cuda else "fp32")
    args.slices = args.slices or (32 if cuda else 16)
    args.reps = args.reps or (3 if cuda else 5)
    args.baseline_slices = args.baseline_slices or (16 if cuda else None)
    args.size = args.size or (1024 if cuda else 512)
    args.sections = split(args.sections)
    args.skip = set(split("vit_b:flex" if args.skip is None and not cuda else args.skip or ""))
    for d in [*args.dtypes, args.attn_dtype]:
        if d not in DTYPES or (d == "bf16" and not cuda):
            p.error(f"dtype {d!r}: use fp32, or bf16 on CUDA")
    for m in args.models:
        if m not in CONFIGS:
            p.error(f"unknown model {m!r}; known: {', '.join(CONFIGS)}")
    use_volume = not args.no_volume
    if use_volume:
        try:
            import dask  # noqa: F401
            import scipy  # noqa: F401
            import zarr  # noqa: F401
        except ImportError as exc:
            log(f"no Volume path ({exc}): random slices fed to preprocess + encoder")
            use_volume = False
    out = {"benchmark": "bench_embed", "args": {k: sorted(v) if isinstance(v, set) else v
                                                for k, v in vars(args).items()},
           "volume_path": use_volume, "machine": machine_info(dev), "notes": NOTES, "models": {}}
    n_raw = max(args.slices, max(args.batch_sizes), args.attn_batch or 8)
    log(f"making {n_raw} slices of {args.size}x{args.size} ({'phantom Volume' if use_volume else 'random'})")
    raw, rgb, volume = make_slices(n_raw, args.size, use_volume)
    for name in args.models:
        log(f"model {name}")
        out["models"][name] = bench_model(name, args, dev, raw, rgb, volume)
    out["machine"]["loadavg_end"] = [r(v, 3) for v in os.getloadavg()]
    out["wall_s"] = r(time.perf_counter() - T0)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
