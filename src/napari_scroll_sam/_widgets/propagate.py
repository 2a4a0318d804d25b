"""The "Propagate" group of the Segment widget: carry every object of the masks layer through
the volume. A face over ``propagate_labels`` (core: ``plan_labels`` then ``run_plan``; its
module doc shows the same run from a script).

The walk options and the stop rule are forms built from ``WalkConfig`` and ``StopRule``
(``dataclass_form``): a field added there shows here. The run writes through the Objects
section's undo stack (Ctrl+Z undoes it as one step), off the GUI thread (``_workers.Job``;
``NAPARI_SCROLL_SAM_SYNC=1``: in it, for tests); the masks layer, the status and napari's
progress are refreshed a few times a second. Cancel stops after the slice being done.
"""

from __future__ import annotations

import time

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QSpinBox,
    QVBoxLayout, QWidget,
)

from ..layers import parse_slices
from ..prompts import STRATEGIES
from ..propagate_labels import PROPAGATED, SlicePrompts, describe, plan_labels, run_plan, run_summary
from ._errors import call_or_show, show_widget_error
from ._layout import status_label
from ._refresh import SliceRefresher
from ._workers import REFRESH_EVERY_S, Job
from .dataclass_form import DataclassForm
from .review import Review3DButton

DIRECTIONS = ("both", "up", "down")
#: the walk options shown first (the others fold under "more")
MAIN_WALK_OPTIONS = ("prior", "accept", "model_every", "snap", "corridor", "memory", "compete", "adapt_steps")


class PropagatePanel(QWidget):
    """Public parts: ``strategy_combo``, ``walk_form`` / ``stop_form`` (``DataclassForm``s of
    ``WalkConfig`` / ``StopRule``), ``direction_combo``, ``z_from_spin`` / ``z_to_spin`` (the
    slices the walks stay within, inclusive), ``stop_slices_edit``, ``objects_edit`` (ids;
    empty: every id, or the current object's prompts), ``replace_check`` (redo propagated
    slices), ``propagate_button``, ``cancel_button``, ``progress_bar``, ``status_label``,
    ``error_label``, ``show_3d_button``. ``propagate()``, ``cancel()``, ``reports`` (the last
    run's). Signals: ``report(SliceReport)``, ``finished(bool cancelled)``."""

    report = Signal(object)
    finished = Signal(bool)

    def __init__(self, segment):
        super().__init__()
        from ..propagation import StopRule, WalkConfig

        self.segment, self.viewer = segment, segment.viewer
        self.reports: list = []
        self._job = self._pbar = self._plan = self._masks = None
        self._done, self._last_refresh, self._failed, self._n_slices = 0, 0.0, False, None

        self.strategy_combo = QComboBox(toolTip="how a slice's mask prompts SAM on the next slice")
        self.strategy_combo.addItems(STRATEGIES)
        self.strategy_combo.setCurrentText("box+farthest")
        self.walk_form = DataclassForm(WalkConfig, main=MAIN_WALK_OPTIONS, title="Walk")
        self.stop_form = DataclassForm(StopRule, title="Stop a walk when")
        self.direction_combo = QComboBox(toolTip="outwards from the anchors: both ways, up (increasing z) or "
                                                 "down; gaps between anchors are always filled")
        self.direction_combo.addItems(DIRECTIONS)
        self.z_from_spin = QSpinBox(toolTip="first slice the walks may reach (anchors are taken from these only)")
        self.z_to_spin = QSpinBox(toolTip="last slice the walks may reach")
        self.stop_slices_edit = QLineEdit(placeholderText="e.g. 12, 40", toolTip="slices the walks stop before")
        self.objects_edit = QLineEdit(placeholderText="all in the masks layer",
                                      toolTip="object ids, e.g. 1, 2, 5-7; empty: every id in the masks layer "
                                              "(or the current object id, prompted on this slice)")
        self.replace_check = QCheckBox("redo propagated slices", toolTip="slices propagated earlier (and not "
                                       "edited since) are cleared and propagated again; off: every slice holding "
                                       "the object is an anchor and only the others are filled")
        self.propagate_button = QPushButton("Propagate", toolTip="carry the objects through the volume")
        self.cancel_button = QPushButton("Cancel", enabled=False, toolTip="stop (slices done stay written)")
        seg = segment
        self.show_3d_button = Review3DButton(self.viewer, lambda: (seg.layer, seg.masks_layer(), seg.scratch_layer()))
        self.progress_bar = QProgressBar(visible=False, format="%v / %m slices")
        self.status_label, self.error_label = status_label(), status_label("#e04040", visible=False)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Strategy", self.strategy_combo)
        form.addRow(self.walk_form.widget)
        form.addRow(self.stop_form.widget)
        form.addRow("Direction", self.direction_combo)
        form.addRow("Slices", _row((self.z_from_spin, 1), (QLabel("to"), 0), (self.z_to_spin, 1)))
        form.addRow("Stop at slices", self.stop_slices_edit)
        form.addRow("Objects", self.objects_edit)
        form.addRow(self.replace_check)
        buttons = _row((self.propagate_button, 1), (self.cancel_button, 0), (self.show_3d_button, 0))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addLayout(buttons)
        for w in (self.progress_bar, self.status_label, self.error_label):
            lay.addWidget(w)

        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.cancel_button.clicked.connect(self.cancel)
        self.show_3d_button.reviewed.connect(
            lambda hidden: self.status_label.setText("3D review" + (f"; hidden: {', '.join(hidden)}" if hidden else "")))
        self.on_image()

    def on_image(self) -> None:
        """The Segment widget's image changed: the z limits cover its slices (kept for the same depth)."""
        try:
            vol = self.segment.volume()
        except Exception:  # noqa: BLE001 - the Segment widget shows it
            vol = None
        n = int(vol.shape[0]) if vol is not None else None
        self.propagate_button.setEnabled(n is not None and not self.running)
        self.show_3d_button.setEnabled(n is not None)
        if n is None or n == self._n_slices:
            return
        self._n_slices = n
        for s in (self.z_from_spin, self.z_to_spin):
            s.setRange(0, n - 1)
        self.z_from_spin.setValue(0)
        self.z_to_spin.setValue(n - 1)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    # --- settings → arguments --------------------------------------------------------------------
    def stop_rule(self):
        """The ``StopRule`` of the form and the stop slices (``PropagationError`` when out of range)."""
        return self.stop_form.value(stop_slices=parse_slices(self.stop_slices_edit.text(), "stop slices",
                                                             self._n_slices) or [])

    def walk_config(self):
        """The ``WalkConfig`` of the form."""
        return self.walk_form.value()

    def z_limits(self) -> tuple[int, int]:
        """(start, stop) for ``propagate`` (stop exclusive)."""
        lo, hi = self.z_from_spin.value(), self.z_to_spin.value()
        if lo > hi:
            raise ValueError(f"slices {lo} to {hi}: the first slice is after the last")
        return lo, hi + 1

    def walk_options(self) -> dict:
        """``propagate``'s keyword arguments from this section (Segment volume uses them too)."""
        return {"strategy": self.strategy_combo.currentText(), "stop": self.stop_rule(), "walk": self.walk_config(),
                "direction": self.direction_combo.currentText(), "z_limits": self.z_limits()}

    def _prepare(self) -> dict:
        seg = self.segment
        layer, vol = seg.layer, seg.volume()
        if layer is None or vol is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        options = self.walk_options()
        ids = parse_slices(self.objects_edit.text(), "objects")
        if ids is not None and ids[0] < 1:
            raise ValueError(f"objects: ids start at 1 (0 is background), got {ids[0]}")
        z, prompts = seg.current_z(), []
        if z is not None and (seg.points_layer() is not None or seg.boxes_layer() is not None):
            # the current object's prompts, and those kept by the other objects on this slice:
            # objects clicked together (one point on each wrap, Next between) walk together
            oid = seg.object_id.value()
            prompts.append(SlicePrompts(oid, z, *seg._prompts_in_image(seg._z_world())))
            has_session = seg.masks_layer() is not None and seg.scratch_layer() is not None
            kept = seg.objects_panel.session().prompts if has_session else {}
            prompts += [SlicePrompts(k, z, *seg._prompts_in_image(seg._z_world(), state))
                        for k, state in sorted(kept.items()) if k != oid and state is not None]
        masks = seg.masks_layer()
        if masks is None:
            if not any(p.present for p in prompts):
                raise ValueError("nothing to propagate: no masks layer, and no point or box on the current slice "
                                 "(draw or segment an object first)")
            masks = seg._add_masks_layer(layer, vol)
        if tuple(masks.data.shape) != tuple(vol.shape):
            raise ValueError(f"the masks layer {masks.name!r} has shape {tuple(masks.data.shape)}, not the image's "
                             f"{tuple(vol.shape)}")
        labels = seg.objects_panel.session().recording(f"propagate ({masks.name})")
        plan = dict(ids=ids, prompts=prompts, z_limits=options["z_limits"], direction=options["direction"],
                    redo=self.replace_check.isChecked(), book=masks.metadata.setdefault(PROPAGATED, {}))
        return {"volume": vol, "mode": seg.mode_selector.mode(), "key": seg._wanted_model_key(), "masks": masks,
                "labels": labels, "plan": plan, "options": options}

    # --- run ---------------------------------------------------------------------------------------
    def propagate(self) -> None:
        """Propagate with the current settings (errors shown here; ``finished`` at the end)."""
        if self.running:
            return
        self._clear_error()
        prepared = call_or_show(self.error_label, self._prepare)
        if prepared is None:
            self.finished.emit(False)
            return
        self.reports, self._plan, self._done, self._failed = [], None, 0, False
        self._masks, self._last_refresh = prepared["masks"], 0.0
        self._refresher = SliceRefresher(self.viewer, lambda: [self._masks])
        self.propagate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(True)
        self.status_label.setText("propagating: finding the anchors…")
        self.segment.status_label.setText("")  # the last Segment slice's words no longer hold
        self._job = Job(self._job_gen(prepared), on_yield=self._on_item, on_error=self._on_error,
                        on_finish=self._on_finished)
        self._job.start()

    def _job_gen(self, p):
        from ..sam.embeddings import SliceEmbedder

        plan = plan_labels(p["labels"], **p["plan"])  # reads every slice: in the job
        model = yield from self.segment._model_job_part(p["key"])
        emb = SliceEmbedder(model, p["volume"], p["mode"])  # its own: shares the disk cache with Segment
        reports = run_plan(emb, p["labels"], plan, book=p["plan"]["book"], **p["options"])
        yield plan
        yield from reports

    def _on_item(self, item):
        from ..propagate_labels import LabelsPlan
        from ..propagation import SliceReport

        if isinstance(item, LabelsPlan):
            self._plan = item
            self.progress_bar.setRange(0, max(item.total, 1))
            self.progress_bar.setValue(0)
        elif isinstance(item, SliceReport):
            self.reports.append(item)
            self._done += 1 + self._plan.skipped(item)
            self.report.emit(item)
            self._show_progress(item)
        elif isinstance(item, str):  # news ("loading the model…")
            self.status_label.setText(item)
        else:
            self.segment._on_job_item(item)  # the model loaded: the Segment widget keeps it

    def _show_progress(self, r):
        """The shown slice of the masks layer (``SliceRefresher``), the status and the progress
        bars, at most every REFRESH_EVERY_S (texture uploads and progress events are the cost
        of a walk in the GUI thread)."""
        self._refresher.wrote(r.z)
        now = time.monotonic()
        if now - self._last_refresh < REFRESH_EVERY_S:
            return
        self._last_refresh = now
        total = self.progress_bar.maximum()
        self.progress_bar.setValue(min(self._done, total))
        self.status_label.setText(describe(r))
        if self._job is None or self._job.cancelled or not total:
            return
        from napari.utils import progress

        if self._pbar is None:
            self._pbar = progress(total=total, desc=f"Propagating {self.segment.image_combo.currentText()}")
        self._pbar.update(min(self._done, total) - self._pbar.n)

    def _on_error(self, exc):
        self._failed = True
        show_widget_error(self.error_label, exc)

    def cancel(self) -> None:
        """Stop after the slice being done; the slices done stay written."""
        if self.running:
            self.status_label.setText("cancelling after the current slice…")
            self.cancel_button.setEnabled(False)
            self._job.cancel()

    def _on_finished(self, cancelled: bool):
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.cancel_button.setEnabled(False)
        self.on_image()
        self._refresher.flush()
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(self.progress_bar.maximum() if not (cancelled or self._failed)
                                   else min(self._done, self.progress_bar.maximum()))
        if self._plan is None and self._failed:
            self.progress_bar.setVisible(False)
        self.status_label.setText(run_summary(self.reports, cancelled, self._failed))
        self.finished.emit(cancelled)

    def _clear_error(self):
        self.error_label.clear()
        self.error_label.hide()
        self.segment._clear_error()

    def closeEvent(self, event):  # noqa: N802 - Qt
        if self._job is not None:
            self._job.cancel()
        super().closeEvent(event)


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for w, stretch in widgets:
        row.addWidget(w, stretch)
    return row


__all__ = ["PropagatePanel"]
