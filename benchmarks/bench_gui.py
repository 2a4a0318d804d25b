"""How long napari's event loop stalls while the widgets work (a 50 ms QTimer recording gaps).

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb OMP_NUM_THREADS=1 \\
        python benchmarks/bench_gui.py [--shape 64 256 256]

On the plugin's sample with the built-in model, in a shown viewer, jobs in napari's thread
workers (as a user runs them): idle (the baseline in the same run), Embed volume, Prompt
layers (adding the four layers and their first draw: 1 s), Segment slice, Segment volume
(one object, skeleton+background), Train 1 epoch, then Review 3D (call + first frame). For
each phase: wall time, ticks, the worst gap between ticks (the phase's start and end count
as ticks), the 95th percentile, and how many gaps exceed 100 / 200 ms
(a tick is due every 50 ms: a gap of g ms is a stall of g - 50). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256))
    args = ap.parse_args()
    os.environ.setdefault("NAPARI_SCROLL_SAM_CACHE", tempfile.mkdtemp(prefix="nss-bench-gui-"))
    os.environ.pop("NAPARI_SCROLL_SAM_SYNC", None)
    import napari
    import torch
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_scroll_sam._widgets.segment import SegmentWidget
    from napari_scroll_sam._widgets.train import TrainWidget
    from napari_scroll_sam.io.phantom import sample_scroll
    from napari_scroll_sam.prompts import farthest_from_boundary

    torch.set_num_threads(1)
    viewer = napari.Viewer(show=True)
    for data, meta, kind in sample_scroll(shape=tuple(args.shape)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    seg, train = SegmentWidget(viewer), TrainWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment")
    viewer.window.add_dock_widget(train, name="Train", tabify=True)
    app = QApplication.instance()
    ticks: list[float] = []
    timer = QTimer(interval=50)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()

    def phase(name, start, done, timeout=600):
        ticks.clear()
        t0 = time.perf_counter()
        start()
        while not done() and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.002)
        t1 = time.perf_counter()
        wall = t1 - t0
        gaps = np.diff([t0, *ticks, t1]) * 1000  # the phase's ends count: a phase with no tick was one stall
        return {"phase": name, "wall_s": round(wall, 2), "ticks": len(ticks), "max_gap_ms": round(float(gaps.max()), 1),
                "p95_gap_ms": round(float(np.percentile(gaps, 95)), 1), "gaps_over_100ms": int((gaps > 100).sum()),
                "gaps_over_200ms": int((gaps > 200).sum())}

    out = []
    flags = {}
    out.append(phase("idle", lambda: flags.__setitem__("t", time.perf_counter()),
                     lambda: time.perf_counter() - flags["t"] > 3))
    seg.embed_finished.connect(lambda c: flags.__setitem__("embed", True))
    out.append(phase("embed volume", seg.embed_volume, lambda: flags.get("embed")))
    z = args.shape[0] // 2
    viewer.dims.set_point(0, z)
    truth = np.asarray(viewer.layers["sheets"].data[z])
    wraps = [int(v) for v in np.unique(truth) if v]
    out.append(phase("prompt layers", lambda: (seg.add_prompt_layers(), flags.__setitem__("t", time.perf_counter())),
                     lambda: time.perf_counter() - flags["t"] > 1))
    seg.points_layer().add([z, *farthest_from_boundary(truth == wraps[len(wraps) // 2])])
    t_point = time.perf_counter()
    while time.perf_counter() - t_point < 0.5:  # the point drawn before Segment slice starts
        app.processEvents()
        time.sleep(0.002)
    seg.segment_finished.connect(lambda ok: flags.__setitem__("slice", True))
    out.append(phase("segment slice", seg.segment, lambda: flags.get("slice")))
    seg.propagate_panel.strategy_combo.setCurrentText("skeleton+background")
    seg.volume_finished.connect(lambda ok: flags.__setitem__("volume", True))
    out.append(phase("segment volume", seg.objects_panel.segment_volume, lambda: flags.get("volume")))
    out[-1]["slices"] = len({r.z for r in seg.objects_panel.reports if r.stopped is None and r.area})
    seg.objects_panel.commit()
    train.labels_combo.setCurrentText("scroll masks")
    train.epochs_spin.setValue(1)
    train.training_finished.connect(lambda o: flags.__setitem__("train", o))
    out.append(phase("train 1 epoch", train.start, lambda: flags.get("train")))
    out[-1]["outcome"] = flags.get("train")
    t0 = time.perf_counter()  # Review 3D: the call and the first 3D frame drawn
    seg.objects_panel.review()
    viewer.window._qt_viewer.canvas.native.repaint()
    app.processEvents()
    out.append({"phase": "review 3D (call + first frame)", "wall_s": round(time.perf_counter() - t0, 2)})
    timer.stop()
    print(json.dumps({"shape": list(args.shape), "model": "small", "threads": 1, "phases": out}, indent=1))
    viewer.close()


if __name__ == "__main__":
    main()
