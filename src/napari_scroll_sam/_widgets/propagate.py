"""The "Propagate" group of the Segment widget: carry objects through the volume.

A thin face over ``propagation.propagate``; a script does the same with::

    seeds = [Seed(oid, z, mask=labels[z] == oid) for every slice z holding oid]
    stop = StopRule(min_pred_iou, min_slice_iou, max_area_change, max_empty, stop_slices)  # None: a rule off
    for report in propagate(embedder, seeds, labels, strategy, stop, direction, (z0, z1 + 1),
                            replace=True, walk=WalkConfig(...)): ...  # motion prior, snap, adapt

Seeds. For each chosen object id, every slice of the masks layer (within the z
limits) where the id has voxels is an *anchor*: ``Seed(id, z, mask=labels[z] == id)``,
kept exactly as drawn. Since the anchors already hold their ids in the masks layer,
``propagate`` is called with ``replace=True`` (allowing ids already present): the
anchor slices are rewritten identically, and the walks only fill slices where the
object is absent — gaps between anchors, then outwards until a stop rule fires.
An object without voxels is prompted from the Points / Boxes layers on the current
slice instead (the Segment widget's current object id only: its points and at most
one box become the seed). So "Propagate" again after a stop continues from where
the object ends; to redo a stretch, erase it (or tick "redo propagated slices").

"redo propagated slices" (``replace_check``): the slices this panel propagated
earlier, and which were not edited since (a checksum per object and slice, kept in
the masks layer's ``metadata["scroll_sam_propagated"]``), are not anchors: they are
cleared (after the input was checked) and propagated again with the current
settings. Slices drawn, segmented, or edited after propagation stay anchors.

The work runs off the GUI thread (the Segment widget's ``Job``, napari's
``thread_worker``; ``NAPARI_SCROLL_SAM_SYNC=1`` runs it in the GUI thread for
tests): the model loads if needed, slices are encoded in batches into the embedding
cache (with their own ``SliceEmbedder``, sharing the disk cache with Segment), the
masks layer is refreshed as slices arrive (at most every 0.2 s) and progress shows
here and in napari's activity panel. Cancel closes the generator after the slice
being done: the slices done stay written.
"""

from __future__ import annotations

import re
import time
import zlib

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout, QWidget,
)

from ..prompts import STRATEGIES
from ._errors import call_or_show, show_widget_error

DIRECTIONS = ("both", "up", "down")
#: ``masks.metadata[PROPAGATED]``: {object id: {z: crc32 of the object's mask on z}} of slices
#: this panel wrote (not anchors when "redo propagated slices" is ticked and they are unchanged)
PROPAGATED = "scroll_sam_propagated"
REFRESH_EVERY_S = 0.2
class _Plan:
    """A job's news: the seeds made and how many reports to expect (for the progress bar)."""

    def __init__(self, seeds, walks, cleared, forget):
        self.seeds, self.walks, self.cleared, self.forget = seeds, walks, cleared, forget
        self.total = len(seeds) + sum(abs(end - start) for *_, start, end in walks)


def parse_ints(text: str, what: str) -> list[int]:
    """``"12, 40"`` / ``"1 2 5-7"`` → sorted unique ints (ranges inclusive); ValueError on junk."""
    out = set()
    for part in (p for p in re.split(r"[,\s;]+", text.strip()) if p):
        m = re.fullmatch(r"(-?\d+)(?:\s*(?:-|\.\.)\s*(\d+))?", part)
        if not m:
            raise ValueError(f"{what}: {part!r} is not a number or a range like 5-7")
        a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if b < a:
            raise ValueError(f"{what}: the range {part!r} runs backwards")
        if b - a > 1_000_000:
            raise ValueError(f"{what}: the range {part!r} is too long")
        out.update(range(a, b + 1))
    return sorted(out)


def _crc(mask: np.ndarray) -> int:
    return zlib.crc32(np.packbits(np.asarray(mask, bool)).tobytes())


def _object_slices(labels, lo: int, hi: int, ids=None) -> dict[int, list[int]]:
    """{object id: [slices in lo..hi-1 where it has voxels]} (only ``ids`` when given)."""
    found: dict[int, list[int]] = {}
    want = None if ids is None else np.asarray(sorted(ids), dtype=np.int64)
    for z in range(lo, hi):
        sl = np.asarray(labels[z])
        nz = sl[sl != 0]
        if not nz.size:
            continue
        present = np.unique(nz)
        if want is not None:
            present = present[np.isin(present, want)]
        for v in present.tolist():
            found.setdefault(int(v), []).append(z)
    return found


def _walks(zs, direction, lo, hi) -> list[tuple]:
    """(object walks of ``propagate``) [(step, anchor z, first z, last z)] for sorted anchor slices ``zs``,
    to estimate the reports to come: the same rule as ``propagation._run``."""
    out = []
    for a, b in zip(zs[:-1], zs[1:]):
        mid = (a + b) // 2
        if mid > a:
            out.append((+1, a, a, mid))
        if b - 1 > mid:
            out.append((-1, b, b, mid + 1))
    if direction in ("both", "down") and zs[0] > lo:
        out.append((-1, zs[0], zs[0], lo))
    if direction in ("both", "up") and zs[-1] < hi - 1:
        out.append((+1, zs[-1], zs[-1], hi - 1))
    return out


class PropagatePanel(QWidget):
    """Propagate the masks layer's objects (or the current slice's prompts) through the volume.

    Lives inside a ``SegmentWidget`` (``segment``), whose image, model, device, sampling
    mode, masks / points / boxes layers and object id it uses. Public parts:

    ``strategy_combo``
        how a slice's mask prompts the next (``prompts.STRATEGIES``; default ``box+farthest``).
    ``min_pred_iou_spin`` / ``min_slice_iou_spin`` / ``max_area_spin`` / ``max_empty_spin``
        the stop rule (``StopRule``); a max area change of 0 is off.
    ``direction_combo``
        ``both``, ``up`` (increasing z) or ``down``: the outward walks (gaps between
        anchors are always filled).
    ``z_from_spin`` / ``z_to_spin``
        the slices the walks stay within (inclusive; default the whole volume); anchors
        are taken from these slices only.
    ``stop_slices_edit``
        slices the walks stop before, e.g. ``12, 40``.
    ``objects_edit``
        ids to propagate (``1, 2, 5-7``); empty: every id in the masks layer (and the
        current object id when it has no voxels but the current slice has prompts).
    ``replace_check``
        redo propagated slices (see the module doc).
    ``propagate_button`` / ``cancel_button`` / ``progress_bar`` / ``status_label`` / ``error_label``
        run, stop (slices done stay written), how far, what happened last, the last error.
    ``show_3d_button``
        ``viewer.dims.ndisplay = 3`` with the image as a MIP and the masks over it (checked);
        unchecked: back to 2D.

    ``propagate()`` runs it (as the button); ``cancel()``; ``reports``: the last run's
    ``SliceReport``s. Signals: ``report(SliceReport)``; ``finished(bool cancelled)`` when a run
    is over (also after an error, shown here).
    """

    report = Signal(object)
    finished = Signal(bool)

    def __init__(self, segment):
        super().__init__()
        self.segment = segment
        self.viewer = segment.viewer
        self.reports: list = []
        self._job = None
        self._pbar = None
        self._plan: _Plan | None = None
        self._done = 0
        self._last_refresh = 0.0
        self._masks = None
        self._record: dict = {}
        self._failed = False
        self._n_slices = None

        self.strategy_combo = QComboBox(toolTip="how a slice's mask prompts SAM on the next slice")
        self.strategy_combo.addItems(STRATEGIES)
        self.strategy_combo.setCurrentText("box+farthest")
        from ..propagation import StopRule, WalkConfig

        rule0, walk0 = StopRule(), WalkConfig()  # the calibrated defaults (benchmarks/eval_quality.py)
        self.min_pred_iou_spin = self._dspin(rule0.min_pred_iou or 0, 0, 1,
                                             "stop when SAM's predicted IoU is below this (0: off)")
        self.min_slice_iou_spin = self._dspin(rule0.min_slice_iou or 0, 0, 1, "stop when the mask's IoU with the "
                                                                             "previous slice's mask is below this (0: off)")
        self.max_area_spin = self._dspin(rule0.max_area_change or 0, 0, 1e6, "stop when the area grows or shrinks "
                                                                             "by more than this factor (0: off)", step=0.5)
        self.max_area_spin.setSpecialValueText("off")
        self.max_empty_spin = QSpinBox(toolTip="stop after this many empty masks in a row")
        self.max_empty_spin.setRange(1, 10000)
        self.max_empty_spin.setValue(rule0.max_empty or 10000)
        self.prior_check = QCheckBox("motion prior", checked=walk0.prior is not None,
                                     toolTip="carry each mask by optical flow and keep SAM's answer only where it "
                                             "agrees with it (off: SAM's answers as they are)")
        self.accept_spin = self._dspin(walk0.accept, 0, 1, "keep SAM's mask when its IoU with the motion prior is "
                                                           "at least this; else keep the prior")
        self.snap_check = QCheckBox("snap to edges", checked=walk0.snap is not None,
                                    toolTip=f"snap the prior to the image's edges within {walk0.snap or 2:g} px")
        self.adapt_check = QCheckBox("adapt on anchors", checked=False,
                                     toolTip="first tune SAM's decoder for 60 steps on the anchor slices "
                                             "(seconds; the loaded model is not changed)")
        self.direction_combo = QComboBox(toolTip="outwards from the anchors: both ways, up (increasing z) or "
                                                 "down; gaps between anchors are always filled")
        self.direction_combo.addItems(DIRECTIONS)
        self.z_from_spin = QSpinBox(toolTip="first slice the walks may reach (anchors are taken from "
                                            "these slices only)")
        self.z_to_spin = QSpinBox(toolTip="last slice the walks may reach")
        for s in (self.z_from_spin, self.z_to_spin):
            s.setRange(0, 0)
        self.stop_slices_edit = QLineEdit(placeholderText="e.g. 12, 40",
                                          toolTip="slices the walks stop before (not written)")
        self.objects_edit = QLineEdit(placeholderText="all in the masks layer",
                                      toolTip="object ids, e.g. 1, 2, 5-7; empty: every id in the masks layer "
                                              "(or the current object id, prompted on this slice)")
        self.replace_check = QCheckBox(
            "redo propagated slices",
            toolTip="slices propagated earlier (and not edited since) are cleared and propagated again; "
                    "off: every slice holding the object is an anchor and only the others are filled")
        self.propagate_button = QPushButton("Propagate", toolTip="carry the objects through the volume")
        self.cancel_button = QPushButton("Cancel", enabled=False, toolTip="stop (slices done stay written)")
        self.progress_bar = QProgressBar(visible=False, format="%v / %m slices")
        self.status_label = QLabel(wordWrap=True)
        self.error_label = QLabel(wordWrap=True, styleSheet="color: #e04040;", visible=False)
        for lbl in (self.status_label, self.error_label):
            lbl.setTextFormat(Qt.TextFormat.PlainText)
            lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.show_3d_button = QPushButton("Show 3D", checkable=True,
                                          toolTip="3D view: the image as a MIP with the masks over it")

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Strategy", self.strategy_combo)
        rule = QGridLayout()  # the stop rule, two by two
        rule.setContentsMargins(0, 0, 0, 0)
        for i, (text, spin) in enumerate((("min pred. IoU", self.min_pred_iou_spin),
                                          ("min slice IoU", self.min_slice_iou_spin),
                                          ("max area ×", self.max_area_spin),
                                          ("max empty", self.max_empty_spin))):
            lbl = QLabel(text, toolTip=spin.toolTip())
            rule.addWidget(lbl, i // 2, 2 * (i % 2))
            rule.addWidget(spin, i // 2, 2 * (i % 2) + 1)
            spin.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)  # narrow: wheel / arrow keys
        rule.setColumnStretch(1, 1)
        rule.setColumnStretch(3, 1)
        form.addRow(QLabel("Stop a walk when"))
        form.addRow(rule)
        walk = QGridLayout()
        walk.setContentsMargins(0, 0, 0, 0)
        walk.addWidget(self.prior_check, 0, 0)
        walk.addWidget(QLabel("accept IoU", toolTip=self.accept_spin.toolTip()), 0, 1)
        walk.addWidget(self.accept_spin, 0, 2)
        walk.addWidget(self.snap_check, 1, 0)
        walk.addWidget(self.adapt_check, 1, 1, 1, 2)
        form.addRow(walk)
        form.addRow("Direction", self.direction_combo)
        zrow = QHBoxLayout()
        zrow.addWidget(self.z_from_spin, 1)
        zrow.addWidget(QLabel("to"))
        zrow.addWidget(self.z_to_spin, 1)
        form.addRow("Slices", zrow)
        form.addRow("Stop at slices", self.stop_slices_edit)
        form.addRow("Objects", self.objects_edit)
        form.addRow(self.replace_check)
        brow = QHBoxLayout()
        brow.addWidget(self.propagate_button, 1)
        brow.addWidget(self.cancel_button)
        brow.addWidget(self.show_3d_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addLayout(brow)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status_label)
        lay.addWidget(self.error_label)

        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.cancel_button.clicked.connect(self.cancel)
        self.show_3d_button.toggled.connect(self.show_3d)
        self.viewer.dims.events.ndisplay.connect(self._on_ndisplay)
        self.on_image()

    @staticmethod
    def _dspin(value, lo, hi, tip, step=0.05):
        s = QDoubleSpinBox(toolTip=tip, decimals=2, singleStep=step)
        s.setRange(lo, hi)
        s.setValue(value)
        return s

    # --- the image ------------------------------------------------------------------------------------
    def on_image(self) -> None:
        """The Segment widget's image changed: the z limits cover its slices (kept when the
        depth is the same)."""
        vol = None
        if self.segment.layer is not None:
            try:
                vol = self.segment.volume()
            except Exception:  # noqa: BLE001 - the Segment widget shows it
                vol = None
        n = int(vol.shape[0]) if vol is not None else None
        running = self._job is not None and self._job.running
        self.propagate_button.setEnabled(n is not None and not running)
        self.show_3d_button.setEnabled(n is not None)
        if n is None or n == self._n_slices:
            return
        self._n_slices = n
        for s in (self.z_from_spin, self.z_to_spin):
            s.setRange(0, n - 1)
        self.z_from_spin.setValue(0)
        self.z_to_spin.setValue(n - 1)

    # --- settings → arguments --------------------------------------------------------------------------
    def stop_rule(self):
        """The ``StopRule`` of the controls (``PropagationError`` when out of range)."""
        from ..propagation import StopRule

        area = self.max_area_spin.value()
        stops = parse_ints(self.stop_slices_edit.text(), "stop slices")
        return StopRule(min_pred_iou=self.min_pred_iou_spin.value(), min_slice_iou=self.min_slice_iou_spin.value(),
                        max_area_change=area if area > 0 else None, max_empty=self.max_empty_spin.value(),
                        stop_slices=stops)

    def walk_config(self):
        """The ``WalkConfig`` of the controls."""
        from ..propagation import WalkConfig

        if not self.prior_check.isChecked():
            return WalkConfig.blind(adapt_steps=60 if self.adapt_check.isChecked() else 0)
        return WalkConfig(accept=self.accept_spin.value(), snap=WalkConfig().snap if self.snap_check.isChecked()
                          else None, adapt_steps=60 if self.adapt_check.isChecked() else 0)

    def z_limits(self) -> tuple[int, int]:
        """(start, stop) for ``propagate`` (stop exclusive)."""
        lo, hi = self.z_from_spin.value(), self.z_to_spin.value()
        if lo > hi:
            raise ValueError(f"slices {lo} to {hi}: the first slice is after the last")
        return lo, hi + 1

    def _prepare(self) -> dict:
        from ..sam.layer_prompts import on_slice, prompts_on_slice

        seg = self.segment
        layer, vol = seg.layer, seg.volume()
        if layer is None or vol is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        stop = self.stop_rule()
        lo, hi = self.z_limits()
        if hi > vol.shape[0]:
            raise ValueError(f"slices {lo} to {hi - 1}: the image has slices 0 to {vol.shape[0] - 1}")
        ids = parse_ints(self.objects_edit.text(), "objects") or None
        if ids is not None and ids[0] < 1:
            raise ValueError(f"objects: ids start at 1 (0 is background), got {ids[0]}")

        # the current slice's prompts, for the current object id when it has no voxels
        prompt_seed = None
        z = seg.current_z()
        oid = seg.object_id.value()
        if z is not None and (seg.points_layer() is not None or seg.boxes_layer() is not None):
            z_world = float(self.viewer.dims.point[-3]) if self.viewer.dims.ndim >= 3 else 0.0
            pts, pos, rects = seg._prompts_in_image(z_world)
            has = bool(len(pts) and on_slice(pts[:, 0], z).any()) or any(
                np.all(on_slice(r[:, 0], z)) for r in rects)
            if has and (ids is None or oid in ids):
                try:
                    pr = prompts_on_slice(pts, pos, rects, z, vol.shape)
                    if pr["box"] is not None and len(pr["box"]) > 1:
                        raise ValueError(f"{len(pr['box'])} boxes on slice {z}: propagation takes one box per "
                                         f"object; segment the slice (Segment slice) and propagate its mask")
                except ValueError as exc:  # raised in the job if the prompts are needed (no voxels)
                    prompt_seed = {"object_id": oid, "z": z, "error": exc}
                else:
                    h, w = vol.shape[1:]
                    yx = np.clip(np.asarray(pr["points"][0], float).reshape(-1, 2), 0, [h - 1, w - 1])
                    prompt_seed = dict(object_id=oid, z=z, points=yx if len(yx) else None,
                                       labels=np.asarray(pr["labels"][0], float) if len(yx) else None,
                                       box=None if pr["box"] is None else np.asarray(pr["box"][0], float))

        masks = seg.masks_layer()
        if masks is None:
            if prompt_seed is None:
                raise ValueError("nothing to propagate: no masks layer, and no point or box on the current slice "
                                 "(draw or segment an object first)")
            masks = seg._add_masks_layer(layer, vol)
        if tuple(masks.data.shape) != tuple(vol.shape):
            raise ValueError(f"the masks layer {masks.name!r} has shape {tuple(masks.data.shape)}, not the image's "
                             f"{tuple(vol.shape)}")
        return {"volume": vol, "mode": seg.mode_selector.mode(), "key": seg._wanted_model_key(), "masks": masks,
                "labels": masks.data, "ids": ids, "prompt_seed": prompt_seed, "stop": stop, "z_limits": (lo, hi),
                "strategy": self.strategy_combo.currentText(), "direction": self.direction_combo.currentText(),
                "redo": self.replace_check.isChecked(), "walk": self.walk_config(),
                "propagated": {int(k): dict(v) for k, v in masks.metadata.get(PROPAGATED, {}).items()}}

    # --- run ------------------------------------------------------------------------------------------
    def propagate(self) -> None:
        """Propagate with the current settings (errors shown here; ``finished`` at the end)."""
        from ._workers import Job

        if self._job is not None and self._job.running:
            return
        self._clear_error()
        prepared = self._try(self._prepare)
        if prepared is None:
            self.finished.emit(False)
            return
        self.reports = []
        self._plan, self._done, self._failed = None, 0, False
        self._masks, self._record, self._last_refresh = prepared["masks"], {}, 0.0
        self.propagate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(True)
        self.status_label.setText("propagating: finding the anchors…")
        self._job = Job(self._job_gen(prepared), on_yield=self._on_item, on_error=self._on_error,
                        on_finish=self._on_finished)
        self._job.start()

    def _seeds(self, p) -> _Plan:
        """The seeds from the masks layer (or the prompts), the walks planned, and with "redo": the
        propagated slices to clear and those edited since (anchors now, forgotten); in the job."""
        from ..propagation import PropagationError, Seed

        labels, (lo, hi) = p["labels"], p["z_limits"]
        found = _object_slices(labels, lo, hi, p["ids"])
        ids = p["ids"] if p["ids"] is not None else sorted(found)
        ps = p["prompt_seed"]
        if ps is not None and ps["object_id"] not in found and ps["object_id"] not in ids:
            ids = sorted([*ids, ps["object_id"]])
        if not ids:
            raise PropagationError(f"nothing to propagate: the masks layer holds no object on slices {lo} to "
                                   f"{hi - 1}, and the current slice has no point or box (draw or segment an "
                                   f"object first)")
        seeds, walks, clear, forget = [], [], {}, {}
        missing = []
        for oid in ids:
            zs = found.get(oid, [])
            old = p["propagated"].get(oid, {})
            if p["redo"] and old:
                same = {z for z in zs if z in old and _crc(np.asarray(labels[z]) == oid) == old[z]}
                forget[oid] = [z for z in old if lo <= z < hi and z not in same]  # edited or erased since
                if same and len(same) < len(zs):  # keep at least the drawn slices
                    clear[oid] = sorted(same)
                    zs = [z for z in zs if z not in same]
            if zs:
                seeds += [Seed(oid, z, mask=np.asarray(labels[z]) == oid) for z in zs]
            elif ps is not None and ps["object_id"] == oid:
                if "error" in ps:
                    raise ps["error"]
                seeds.append(Seed(**ps))
                zs = [ps["z"]]
            else:
                missing.append(oid)
                continue
            walks += [(oid, *w) for w in _walks(sorted(zs), p["direction"], lo, hi)]
        if missing:
            raise PropagationError(f"object(s) {', '.join(map(str, missing))} have no voxels in the masks layer on "
                                   f"slices {lo} to {hi - 1}" + (
                                       "" if ps is None else f", nor prompts on slice {ps['z']} (those prompt "
                                                             f"object {ps['object_id']}, the current id)"))
        return _Plan(seeds, walks, clear, forget)

    def _job_gen(self, p):
        from ..propagation import propagate
        from ..sam.embeddings import SliceEmbedder

        plan = self._seeds(p)
        model = yield from self.segment._model_job_part(p["key"])
        # its own embedder (Segment may use its one meanwhile); they share the disk cache
        emb = SliceEmbedder(model, p["volume"], p["mode"])
        labels = p["labels"]
        # replace=True: the anchors hold their ids already and are rewritten as drawn
        reports = propagate(emb, plan.seeds, labels, p["strategy"], stop=p["stop"], direction=p["direction"],
                            z_limits=p["z_limits"], replace=True, walk=p["walk"])
        for oid, zs in plan.cleared.items():  # "redo": after the checks, before the walks
            for z in zs:
                sl = np.asarray(labels[z])
                if (sl == oid).any():
                    labels[z] = np.where(sl == oid, 0, sl).astype(sl.dtype)
        yield plan
        record = self._record
        try:
            for r in reports:
                if r.stopped is None and r.direction != 0 and r.area:
                    record.setdefault(r.object_id, {})[r.z] = _crc(np.asarray(labels[r.z]) == r.object_id)
                yield r
        finally:
            reports.close()

    def _on_item(self, item):
        from ..propagation import SliceReport

        if isinstance(item, _Plan):
            self._plan = item
            book = self._masks.metadata.get(PROPAGATED, {})
            for part in (item.cleared, item.forget):
                for oid, zs in part.items():
                    for z in zs:
                        book.get(oid, {}).pop(z, None)
            self.progress_bar.setRange(0, max(item.total, 1))
            self.progress_bar.setValue(0)
            self._refresh(force=bool(item.cleared))
            return
        if not isinstance(item, SliceReport):
            if isinstance(item, str):  # news ("loading the model…")
                self.status_label.setText(item)
            else:
                self.segment._on_job_item(item)  # the model loaded: the Segment widget keeps it
            return
        self.reports.append(item)
        self._done += 1 + self._skipped(item)
        total = self.progress_bar.maximum()
        self.progress_bar.setValue(min(self._done, total))
        self.status_label.setText(self._describe(item))
        self._refresh()
        self.report.emit(item)
        if self._job is not None and self._job.cancelled:
            return
        from napari.utils import progress

        if self._pbar is None and total:
            self._pbar = progress(total=total, desc=f"Propagating {self.segment.image_combo.currentText()}")
        if self._pbar is not None:
            self._pbar.update(min(self._done, total) - self._pbar.n)

    def _skipped(self, r) -> int:
        """Planned reports that will not come because walk(s) stopped at ``r``."""
        if r.stopped is None or self._plan is None:
            return 0
        n = 0
        for oid, step, anchor, start, end in self._plan.walks:
            if oid != r.object_id:
                continue
            if r.direction == 0 and anchor == r.z:  # an empty anchor: its walks never start
                n += abs(end - start)
            elif step == r.direction and min(start, end) <= r.z <= max(start, end) and r.z != start:
                n += abs(end - r.z)
        return n

    @staticmethod
    def _describe(r) -> str:
        if r.stopped:
            way = {1: " (going up)", -1: " (going down)"}.get(r.direction, "")
            return f"object {r.object_id} stopped at slice {r.z}: {r.stopped}{way}"
        what = "anchor, as drawn" if r.direction == 0 and r.iou == 1.0 else f"IoU {r.iou:.2f}"
        prev = f", {r.slice_iou:.2f} with the previous slice" if r.slice_iou is not None else ""
        lost = f", {r.overlap} px kept for other objects" if r.overlap else ""
        return f"slice {r.z}, object {r.object_id}: {what}{prev}; {r.area} px{lost}"

    def _refresh(self, force: bool = False):
        now = time.monotonic()
        if self._masks is not None and (force or now - self._last_refresh >= REFRESH_EVERY_S):
            self._last_refresh = now
            try:
                self._masks.refresh()
            except Exception:  # noqa: BLE001 - a removed layer: nothing to show
                pass

    def _on_error(self, exc):
        self._failed = True
        self._show_error(exc)

    def cancel(self) -> None:
        """Stop after the slice being done; the slices done stay written."""
        if self._job is not None and self._job.running:
            self.status_label.setText("cancelling after the current slice…")
            self.cancel_button.setEnabled(False)
            self._job.cancel()

    def _on_finished(self, cancelled: bool):
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.cancel_button.setEnabled(False)
        self.on_image()
        masks = self._masks
        if masks is not None and self._record:
            book = masks.metadata.setdefault(PROPAGATED, {})
            for oid, zs in self._record.items():
                book.setdefault(oid, {}).update(zs)
        self._refresh(force=True)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
        if not cancelled and not self._failed:
            self.progress_bar.setValue(self.progress_bar.maximum())
        if self._plan is None and self._failed:
            self.progress_bar.setVisible(False)
        self.status_label.setText(self._summary(cancelled))
        self.finished.emit(cancelled)

    def _summary(self, cancelled: bool) -> str:
        reps = self.reports
        if not reps:
            return "propagation cancelled before the first slice" if cancelled else (
                "propagation failed before the first slice" if self._failed else "")
        objects = sorted({r.object_id for r in reps})
        anchors = sum(1 for r in reps if r.direction == 0)
        written = sum(1 for r in reps if r.direction != 0 and r.stopped is None and r.area)
        head = {True: "cancelled: ", False: "stopped by an error: " if self._failed else ""}[cancelled]
        lines = [f"{head}object{'s' if len(objects) > 1 else ''} {', '.join(map(str, objects))}: {written} slice"
                 f"{'s' if written != 1 else ''} propagated, {anchors} anchor{'s' if anchors != 1 else ''} kept"
                 + (" (the slices done stay written)" if cancelled else "")]
        from ..propagation import walk_summary

        per_object = walk_summary(reps)
        lines += per_object[:6]
        if len(per_object) > 6:
            lines.append(f"… and {len(per_object) - 6} more objects")
        return "\n".join(lines)

    # --- 3D ---------------------------------------------------------------------------------------------
    def show_3d(self, on: bool = True) -> None:
        """3D view (``on``): the image as an attenuated MIP, the masks layer over it, visible;
        else back to 2D."""
        self.show_3d_button.blockSignals(True)
        self.show_3d_button.setChecked(bool(on))
        self.show_3d_button.blockSignals(False)
        if not on:
            self.viewer.dims.ndisplay = 2
            return
        image, masks = self.segment.layer, self.segment.masks_layer()
        if self.viewer.dims.ndisplay != 3:
            self.viewer.dims.ndisplay = 3
            scene = getattr(self.viewer, "scene", None)  # napari >= 0.9: viewer.scene.camera
            camera = scene.camera if scene is not None else self.viewer.camera
            if any(np.allclose(camera.angles, a) for a in ((0, 0, 0), (0, 0, 90))):  # a top view: tilt it
                camera.angles = (0, 30, 60)
        if image is not None:
            image.visible = True
            image.rendering = "attenuated_mip"
        if masks is not None:
            masks.visible = True
            layers = self.viewer.layers
            if image is not None and layers.index(masks) < layers.index(image):
                layers.move(layers.index(masks), layers.index(image) + 1)

    def _on_ndisplay(self, event=None):
        self.show_3d_button.blockSignals(True)
        self.show_3d_button.setChecked(self.viewer.dims.ndisplay == 3)
        self.show_3d_button.setText("Show 2D" if self.viewer.dims.ndisplay == 3 else "Show 3D")
        self.show_3d_button.blockSignals(False)

    # --- errors -----------------------------------------------------------------------------------------
    def _clear_error(self):
        self.error_label.clear()
        self.error_label.hide()
        self.segment._clear_error()

    def _show_error(self, exc):
        show_widget_error(self.error_label, exc)

    def _try(self, fn, *args, **kwargs):
        """``fn()``, or None with the error shown in red and as a notification."""
        return call_or_show(self.error_label, fn, *args, **kwargs)

    def closeEvent(self, event):  # noqa: N802 - Qt
        if self._job is not None:
            self._job.cancel()
        super().closeEvent(event)


__all__ = ["PropagatePanel", "parse_ints"]
