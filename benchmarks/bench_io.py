"""Benchmark lazy opening (``open_volume``) against eager reads and napari's own reader.

    python benchmarks/bench_io.py [--slices 2000] [--size 512] [--quick] [--workdir DIR] [--keep]

Prints one JSON document on stdout (progress goes to stderr). Every measured
approach runs in a fresh subprocess (this script re-invoked with ``--child``),
so its peak RSS (``ru_maxrss``) is its own; ``delta`` subtracts the child's
high-water mark after its imports. The OS page cache cannot be dropped without
root: the first run of each approach comes right after the files were written
(so they are in cache anyway, "cold-ish" only for Python-side caches), the
second is a plain repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAG = "BENCH_JSON "  # prefix of the one result line a child prints
ZARR_SHAPE = (14376, 7888, 8096)  # a full-scroll-sized volume, nothing written
NAPARI_CALL = ("napari.plugins.io.read_data_with_plugins([path], plugin='napari', stack=False)"
               "  # what viewer.open(path, plugin='napari') runs; -> napari_builtins.io.magic_imread")


def log(msg: str) -> None:
    print(f"[bench_io] {msg}", file=sys.stderr, flush=True)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


# ----------------------------------------------------------------------------- child side
def child(spec: dict) -> None:
    """Open ``spec['path']`` one way, time it and a couple of reads, print one JSON line."""
    import dask.array as da  # common imports, all charged to the baseline
    import numpy as np
    import tifffile
    import zarr  # noqa: F401

    approach, path = spec["approach"], spec["path"]
    if approach == "ours":
        import napari_scroll_sam.io.tiff  # noqa: F401  (open_volume imports these lazily)
        import napari_scroll_sam.io.zarr  # noqa: F401
        from napari_scroll_sam import open_volume
    elif approach == "napari":
        from napari.plugins import _initialize_plugins
        from napari.plugins.io import read_data_with_plugins
        _initialize_plugins()  # plugin discovery: done once at napari start-up, not per open
    out = {"approach": approach, "baseline_rss_mb": round(maxrss_mb(), 1)}
    if spec.get("cap_gb"):  # cap the address space the approach may add on top of the imports
        limit = vm_size_bytes() + int(spec["cap_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        out["rlimit_as_bytes"] = limit

    t0 = time.perf_counter()
    try:
        if approach == "ours":
            data = open_volume(path).data
        elif approach == "naive":
            data = tifffile.imread(sorted(str(p) for p in Path(path).glob("*.tif")))
        else:
            layers, reader = read_data_with_plugins([path], plugin="napari", stack=False)
            data, out["reader"] = layers[0][0], reader
    except BaseException as exc:  # MemoryError included: report it, don't die silently
        out.update(error=f"{type(exc).__name__}: {str(exc)[:300]}", failed_after_s=time.perf_counter() - t0)
        out["peak_rss_mb"] = round(maxrss_mb(), 1)
        print(TAG + json.dumps(out), flush=True)
        return
    out["open_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = round(maxrss_mb(), 1)
    out["delta_rss_mb"] = round(out["peak_rss_mb"] - out["baseline_rss_mb"], 1)
    lazy = isinstance(data, da.Array)
    out.update(type=type(data).__module__ + "." + type(data).__name__, lazy=lazy,
               shape=list(data.shape), dtype=str(data.dtype))
    if lazy:
        out["dask_chunks"] = data.npartitions
        z, (ny, nx), c = data.shape[0] // 2, data.shape[1:], spec["crop"]
        y0, x0 = (ny - c) // 2, (nx - c) // 2
        for name, sel in (("slice", (z,)), ("crop", (z, slice(y0, y0 + c), slice(x0, x0 + c)))):
            times = []
            for _ in range(2):  # first read, then the same read again
                t = time.perf_counter()
                np.asarray(data[sel].compute())
                times.append(time.perf_counter() - t)
            out[f"read_{name}_s"] = {"first": times[0], "repeat": times[1]}
        out["peak_rss_after_reads_mb"] = round(maxrss_mb(), 1)
    print(TAG + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- parent side
def run_child(approach: str, path: Path, crop: int, timeout: float, cap_gb: float | None = None) -> dict:
    spec = {"approach": approach, "path": str(path), "crop": crop, "cap_gb": cap_gb}
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"approach": approach, "error": f"timeout after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    if not lines:  # killed (e.g. by the memory cap) before it could report
        return {"approach": approach, "error": f"exit code {proc.returncode}", "stderr_tail": proc.stderr[-600:]}
    res = json.loads(lines[-1][len(TAG):])
    res["subprocess_wall_s"] = time.perf_counter() - t
    return res


def runs(approach: str, path: Path, crop: int, timeout: float, repeats: int = 2, **kw) -> dict:
    """First run (right after writing the data), then a repeat, each in a fresh process."""
    res = {}
    for key in ("first", "repeat")[:repeats]:
        log(f"{approach} on {path.name} ({key})")
        res[key] = run_child(approach, path, crop, timeout, **kw)
    return res


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def write_tiffs(folder: Path, n: int, size: int) -> dict:
    import numpy as np
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 60000, (size, size), dtype=np.uint16)  # random-ish: rolled base + noise
    t = time.perf_counter()
    for z in range(n):
        img = np.roll(base, z, axis=1) + rng.integers(0, 2000, (size, size), dtype=np.uint16)
        tifffile.imwrite(folder / f"{z:05d}.tif", img)
    return {"write_s": time.perf_counter() - t, "bytes_on_disk": sum(p.stat().st_size for p in folder.iterdir())}


def machine() -> dict:
    import dask
    import napari
    import numpy
    import tifffile
    import zarr

    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "numpy": numpy.__version__, "dask": dask.__version__, "zarr": zarr.__version__,
            "tifffile": tifffile.__version__, "napari": napari.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=2000, help="TIFF slices to write (default 2000)")
    ap.add_argument("--size", type=int, default=512, help="slice height and width (default 512)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 slices")
    ap.add_argument("--workdir", help="where to write the data (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data afterwards")
    ap.add_argument("--timeout", type=float, default=120, help="per-subprocess time limit, s")
    ap.add_argument("--cap-gb", type=float, default=4, help="address-space cap for napari on the big zarr")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if args.quick:
        args.slices = min(args.slices, 200)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_io_"))
    work.mkdir(parents=True, exist_ok=True)
    crop_t = min(512, args.size // 2)  # a 512² crop of a 512² slice would be the slice itself
    result = {"machine": machine(), "params": {
        "slices": args.slices, "size": args.size, "dtype": "uint16", "quick": args.quick, "workdir": str(work),
        "tiff_crop": crop_t, "zarr_shape": list(ZARR_SHAPE), "zarr_chunks": [128] * 3, "zarr_crop": 512,
        "timeout_s": args.timeout, "napari_zarr_cap_gb": args.cap_gb}}
    try:
        # 1. folder of 2D TIFF slices -------------------------------------------------------
        folder = work / "slices"
        log(f"writing {args.slices} TIFF slices of {args.size}² to {folder}")
        tif = write_tiffs(folder, args.slices, args.size)
        tif["approaches"] = {
            "ours": {"call": "napari_scroll_sam.open_volume(folder).data",
                     **runs("ours", folder, crop_t, args.timeout)},
            "naive_eager": {"call": "tifffile.imread(sorted(folder.glob('*.tif')))",
                            **runs("naive", folder, crop_t, args.timeout)},
            "napari_builtin": {"call": NAPARI_CALL, **runs("napari", folder, crop_t, args.timeout)},
        }
        rep = {k: v["repeat"] for k, v in tif["approaches"].items()}  # ratios from the repeat runs
        tif["ratios_from_repeat_run"] = {
            f"{other}_over_ours": {
                "open_time": ratio(rep[other].get("open_s"), rep["ours"].get("open_s")),
                "peak_rss_raw": ratio(rep[other].get("peak_rss_mb"), rep["ours"].get("peak_rss_mb")),
                "peak_rss_delta": ratio(rep[other].get("delta_rss_mb"), rep["ours"].get("delta_rss_mb"))}
            for other in ("naive_eager", "napari_builtin")}
        result["tiff_folder"] = tif

        # 2. huge, empty zarr v3 array --------------------------------------------------------
        import zarr

        zpath = work / "empty.zarr"
        log(f"creating empty zarr {ZARR_SHAPE} at {zpath}")
        zarr.create_array(store=str(zpath), shape=ZARR_SHAPE, chunks=(128, 128, 128), dtype="uint16",
                          fill_value=0, zarr_format=3)
        nbytes = 2 * ZARR_SHAPE[0] * ZARR_SHAPE[1] * ZARR_SHAPE[2]
        result["empty_zarr"] = {
            "ours": {"call": "napari_scroll_sam.open_volume(path).data",  # no data: one run is enough
                     **runs("ours", zpath, 512, args.timeout, repeats=1)},
            "naive_eager": {"skipped": True, "would_need_bytes": nbytes,
                            "would_need_tib": round(nbytes / 2**40, 2)},
            "napari_builtin": {"call": NAPARI_CALL, **runs("napari", zpath, 512, args.timeout, repeats=1,
                                                            cap_gb=args.cap_gb)},
        }
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["notes"] = [
        "Times are wall seconds (time.perf_counter) inside the child; files are warm in the OS page cache.",
        "read_slice_s / read_crop_s: data[z] and a centred crop at z = nz // 2, each read twice in the same process.",
        "peak_rss_mb is the child's ru_maxrss after opening; delta_rss_mb subtracts its high-water mark after imports.",
        "On the empty zarr the napari child is capped (RLIMIT_AS): post-import address space + napari_zarr_cap_gb.",
    ]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
