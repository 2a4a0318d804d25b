"""Benchmark data in and out: remote zarr (against local), labels writers, mesh export.

    python benchmarks/bench_io_formats.py            # ~1 min on 2 cores; uses ../shared/data when there

Prints one JSON document. ``remote``: an OME-Zarr pyramid (FiberForm micro-CT, 100³ uint8,
from ../shared/data, else a synthetic volume) served by http.server on 127.0.0.1, opened
through ``open_volume(url)``: requests and seconds for open, one slice, the same slice after
re-opening with the chunk cache; the local open of the same store is the baseline.
``labels``: the chloroplast instance labels (10 × 2341 × 3293, 104 objects) written to
``.ome.zarr`` / ``.zarr`` / ``.tif`` and re-read through the plugin's reader: seconds, bytes,
levels, identical or not. ``mesh``: all chloroplasts meshed (seconds, vertices, faces).
"""

from __future__ import annotations

import collections
import functools
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def _serve(folder):
    counts = collections.Counter()

    class H(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            counts[self.path] += 1
            super().do_GET()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=str(folder)))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, counts


def remote(tmp: Path) -> dict:
    from napari_scroll_sam import open_volume
    from tests.helpers import write_ome_zarr

    src = DATA / "fiberform-100.tif"
    vol = np.asarray(open_volume(src).data) if src.is_file() else \
        np.random.default_rng(0).integers(0, 255, (100, 100, 100), dtype=np.uint8)
    write_ome_zarr(tmp / "site" / "v.zarr", vol, levels=3, chunks=(32, 32, 32), zarr_format=3)
    t = time.perf_counter()
    local = open_volume(tmp / "site" / "v.zarr")
    local_s = time.perf_counter() - t
    srv, counts = _serve(tmp / "site")
    url = f"http://127.0.0.1:{srv.server_address[1]}/v.zarr"
    out = {"source": src.name if src.is_file() else "synthetic", "shape": list(vol.shape), "chunks": [32] * 3,
           "local_open_s": round(local_s, 4)}
    t = time.perf_counter()
    v = open_volume(url, chunk_cache=tmp / "cache")
    out["open_s"], out["open_requests"] = round(time.perf_counter() - t, 4), sum(counts.values())
    n = sum(counts.values())
    t = time.perf_counter()
    sl = v.data[50].compute()
    out["slice_s"], out["slice_requests"] = round(time.perf_counter() - t, 4), sum(counts.values()) - n
    assert np.array_equal(sl, vol[50])
    again = open_volume(url, chunk_cache=tmp / "cache")
    n = sum(counts.values())
    again.data[50].compute()
    out["cached_slice_requests"] = sum(counts.values()) - n
    srv.shutdown()
    return out


def labels(tmp: Path) -> dict:
    import tifffile

    from napari_scroll_sam import write_labels
    from napari_scroll_sam.io.reader import get_reader

    src = DATA / "chloroplast-em" / "labels.tif"
    lab = tifffile.imread(src) if src.is_file() else np.zeros((10, 2341, 3293), np.uint8)
    out = {"source": src.name, "shape": list(lab.shape), "objects": int(len(np.unique(lab)) - 1)}
    for suffix in (".ome.zarr", ".zarr", ".tif"):
        t = time.perf_counter()
        p = write_labels(tmp / f"lab{suffix}", lab, scale=(40.0, 5.0, 5.0), translate=(0.0, 100.0, 0.0), unit="nm")
        w = time.perf_counter() - t
        t = time.perf_counter()
        (data, meta, kind), = get_reader(str(p))(str(p))
        back = np.asarray(data[0] if isinstance(data, list) else data)
        r = time.perf_counter() - t
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
        out[suffix] = {"write_s": round(w, 3), "read_s": round(r, 3), "bytes": size, "kind": kind,
                       "levels": len(data) if isinstance(data, list) else 1,
                       "identical": bool(np.array_equal(back, lab)), "scale": list(meta["scale"]),
                       "translate": list(meta["translate"])}
    return out, lab


def mesh(tmp: Path, lab) -> dict:
    import dask.array as da

    from napari_scroll_sam.io.mesh import export_meshes, read_mesh

    t = time.perf_counter()
    paths = export_meshes(da.from_array(lab, chunks=(10, 1024, 1024)), tmp / "meshes", voxel_size=(40.0, 5.0, 5.0),
                          name="chloroplasts")
    s = time.perf_counter() - t
    verts = faces = 0
    for p in paths:
        v, f = read_mesh(p)
        verts, faces = verts + len(v), faces + len(f)
    return {"files": len(paths), "seconds": round(s, 2), "vertices": verts, "faces": faces}


def main():
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = {"remote": remote(tmp)}
        res["labels"], lab = labels(tmp)
        res["mesh"] = mesh(tmp, lab)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
