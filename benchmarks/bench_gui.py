"""How long napari's event loop stalls while the widgets work (a 50 ms QTimer recording gaps).

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb OMP_NUM_THREADS=1 \\
        python benchmarks/bench_gui.py [--shape 64 256 256]

On the plugin's sample with the built-in model, in a shown viewer, jobs in napari's thread
workers (as a user runs them): idle (the baseline in the same run), the sample in 3D (napari's
2D/3D switch: call + first frame; not with ``--only embed``) and back, Embed volume, Prompt
layers (adding the four layers and their first draw: 1 s), Segment slice, Segment volume
(one object, skeleton+background), Train 1 epoch, then Review 3D (call + first frame). For
each phase: wall time, ticks, the worst gap between ticks (the phase's start and end count
as ticks), the 95th percentile, and how many gaps exceed 100 / 200 ms
(a tick is due every 50 ms: a gap of g ms is a stall of g - 50).

Walk vs API: after the first Segment volume, the same walk (same volume, anchor slice, model,
sampling mode and Propagate settings) through the plain API (``napari_scroll_sam.propagate``
drained in a ``threading.Thread``, the GUI thread waiting in ``join``) and again through the
widget (Ctrl+Z in between), interleaved ``--walks`` times; ``walk_vs_api`` gives both walls, the
ratio of their medians and whether both wrote the same voxels. ``--only embed`` stops after
idle + Embed volume (run it in several processes to see the outliers of a first Embed;
``benchmarks/results/bench_gui_embed_ab.json`` holds 6 such pairs against main). With
``--trace-stalls`` a thread samples the GUI thread's stack while a tick is late, and each gap
over 100 ms lists the frames seen (the sampler costs the GUI thread a little: compare runs
without it for figures).

Prints JSON and writes it to ``--out`` (default ``benchmarks/results/bench_gui.json``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _json_out import emit  # noqa: E402  (benchmarks/ is the script's folder)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256))
    ap.add_argument("--walks", type=int, default=3, help="widget / API walk pairs (interleaved)")
    ap.add_argument("--trace-stalls", action="store_true",
                    help="sample the GUI thread's stack during gaps over 100 ms (what stalled it)")
    ap.add_argument("--only", choices=["embed"], help="stop after Embed volume")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_gui.json"))
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
    tracer = StallTracer(ticks) if args.trace_stalls else None

    def phase(name, start, done, timeout=600):
        ticks.clear()
        t0 = time.perf_counter()
        if tracer:
            tracer.start(t0)
        start()
        while not done() and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.002)
        t1 = time.perf_counter()
        wall = t1 - t0
        edges = [t0, *ticks, t1]
        gaps = np.diff(edges) * 1000  # the phase's ends count: a phase with no tick was one stall
        r = {"phase": name, "wall_s": round(wall, 2), "ticks": len(ticks), "max_gap_ms": round(float(gaps.max()), 1),
             "p95_gap_ms": round(float(np.percentile(gaps, 95)), 1), "gaps_over_100ms": int((gaps > 100).sum()),
             "gaps_over_200ms": int((gaps > 200).sum())}
        if tracer:
            r["stalls"] = tracer.stop(edges)
        return r

    out = []
    flags = {}
    out.append(phase("idle", lambda: flags.__setitem__("t", time.perf_counter()),
                     lambda: time.perf_counter() - flags["t"] > 3))
    if args.only != "embed":  # napari's own 2D/3D switch on the File-menu sample: the call and the first frame
        t0 = time.perf_counter()
        viewer.dims.ndisplay = 3
        viewer.window._qt_viewer.canvas.native.repaint()
        app.processEvents()
        out.append({"phase": "sample to 3D (call + first frame)", "wall_s": round(time.perf_counter() - t0, 2)})
        viewer.dims.ndisplay = 2
        out.append(phase("back to 2D", lambda: flags.__setitem__("t", time.perf_counter()),
                         lambda: time.perf_counter() - flags["t"] > 1))
    seg.embed_finished.connect(lambda c: flags.__setitem__("embed", True))
    out.append(phase("embed volume", seg.embed_volume, lambda: flags.get("embed")))
    if args.only == "embed":
        return finish(viewer, timer, args, {"phases": out})
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
    anchor = np.array(seg.scratch_layer().data[z])
    seg.propagate_panel.strategy_combo.setCurrentText("skeleton+background")
    seg.volume_finished.connect(lambda ok: flags.__setitem__("volume", True))
    out.append(phase("segment volume", seg.objects_panel.segment_volume, lambda: flags.get("volume")))
    out[-1]["slices"] = len({r.z for r in seg.objects_panel.reports if r.stopped is None and r.area})
    walks = walk_vs_api(seg, phase, flags, anchor, z, args.walks, first_s=out[-1]["wall_s"])
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
    finish(viewer, timer, args, {"phases": out, "walk_vs_api": walks})


class StallTracer:
    """A thread sampling the GUI thread's stack (and the others' innermost frames) every 5 ms
    while no tick came for 60 ms; ``stop(edges)``: for each gap over 100 ms, the frames seen."""

    def __init__(self, ticks):
        self.ticks, self.samples, self._run, self._t0 = ticks, [], False, 0.0

    def start(self, t0):
        self.samples, self._t0, self._run = [], t0, True
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        import sys
        import traceback

        main, me = threading.main_thread().ident, threading.get_ident()
        while self._run:
            time.sleep(0.005)
            now = time.perf_counter()
            if now - (self.ticks[-1] if self.ticks else self._t0) < 0.06:
                continue
            frames = sys._current_frames()
            stack = traceback.extract_stack(frames[main])[-8:] if main in frames else []
            others = [traceback.extract_stack(f)[-1] for tid, f in frames.items() if tid not in (main, me)]
            self.samples.append((now, [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack],
                                 sorted({f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in others})))

    def stop(self, edges):
        from collections import Counter

        self._run = False
        out = []
        for a, b in zip(edges[:-1], edges[1:]):
            if b - a > 0.1:
                seen = [(m, o) for t, m, o in self.samples if a <= t <= b]
                mains = Counter(" < ".join(reversed(m[-4:])) for m, _ in seen).most_common(3)
                others = Counter(x for _, o in seen for x in o).most_common(4)
                out.append({"gap_ms": round((b - a) * 1000, 1), "at_s": round(a - edges[0], 2), "samples": len(seen),
                            "gui": mains, "others": others})
        return out


def finish(viewer, timer, args, parts):
    timer.stop()
    result = {"shape": list(args.shape), "model": "small", "threads": 1,
              "load_average": [round(v, 2) for v in os.getloadavg()], **parts}
    emit(result, args.out)
    viewer.close()


def walk_vs_api(seg, phase, flags, anchor, z, n, first_s):
    """The widget's Segment volume against ``propagate`` in a plain thread on the same inputs:
    ``n`` interleaved pairs, the widget's first walk being the phase just measured (``first_s``),
    Ctrl+Z before each rerun brings the scratch back to the anchor slice."""
    from napari_scroll_sam import Seed, SliceEmbedder, propagate

    panel = seg.objects_panel
    model, vol, mode = seg.models.current(), seg.volume(), seg.mode_selector.mode()
    oid, options = seg.object_id.value(), seg.propagate_panel.walk_options()
    widget_s, api_s, same, reruns = [first_s], [], [], []
    for i in range(n):
        if i:
            panel.undo()
            flags["volume"] = False
            reruns.append(phase("segment volume (again)", panel.segment_volume, lambda: flags.get("volume")))
            widget_s.append(reruns[-1]["wall_s"])
        labels, reports = np.zeros(vol.shape, np.uint32), []

        def work():
            emb = SliceEmbedder(model, vol, mode)  # as the widget: its own embedder, the disk cache shared
            reports.extend(propagate(emb, [Seed(oid, z, mask=anchor != 0)], labels, replace=True, **options))

        t0 = time.perf_counter()
        th = threading.Thread(target=work)
        th.start()
        th.join()
        api_s.append(round(time.perf_counter() - t0, 2))
        same.append(bool(np.array_equal(labels != 0, np.asarray(seg.scratch_layer().data) != 0)))
    med_w, med_a = float(np.median(widget_s)), float(np.median(api_s))
    return {"widget_wall_s": widget_s, "api_wall_s": api_s, "ratio_median": round(med_w / med_a, 2),
            "ratios": [round(w / a, 2) for w, a in zip(widget_s, api_s)], "same_result": same,
            "api_slices": len({r.z for r in reports if r.stopped is None and r.area}), "widget_reruns": reruns}


if __name__ == "__main__":
    main()
