"""The "Train" dock widget: fine-tune SAM on (image, labels) layer pairs, watch it learn, use it.

A thin face over ``training.trainer.Trainer``; a script does the same with::

    pairs = [TrainingPair(volume, labels, name, objects="instances")]
    trainer = Trainer(model, pairs, out_dir, TrainConfig(epochs=…, lr=…, freeze=…), mode=mode)
    for report in trainer.run(): ...   # StageReport, StepReport per step, EpochReport per epoch

The model loads, the data are checked, embeddings are computed and the model is
trained off the GUI thread (``_workers.Job``; ``NAPARI_SCROLL_SAM_SYNC=1`` runs it in
the GUI thread, for tests). Stop closes the trainer's generator: the checkpoints of
the last finished epoch stay (the trainer writes ``last.pt`` / ``best.pt`` only at
epoch ends). "Use this model" hands ``best.pt`` to the Segment widget, with the
sampling mode the model was trained with.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from napari.layers import Image, Labels
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
    QLineEdit, QListWidget, QProgressBar, QPushButton, QSpinBox, QWidget,
)

from ..layers import default_train_dir, parse_slices, training_pairs
from ._errors import call_or_show, show_widget_error
from ._layers import refill_combo, volume_image_names
from ._layout import scrolled, section, status_label
from ._model import ModelChoice
from ._workers import Job
from .plot import TrainingPlot
from .sampling import ModeSelector

FREEZE_CHOICES = ("encoder", "none", "last:1", "last:2", "last:4")
FREEZE_HELP = {"encoder": "image and prompt encoders frozen: only the mask decoder learns (fast: cached "
                          "embeddings)",
               "none": "every weight learns (slow: the encoder runs at every step)",
               "last:1": "the decoder and the encoder's last block learn",
               "last:2": "the decoder and the encoder's last 2 blocks learn",
               "last:4": "the decoder and the encoder's last 4 blocks learn"}
PROMPT_HELP = {"point": "one positive point in the object", "box": "the object's box, jittered",
               "points": "2-4 positive points", "background": "adds 1-2 negative points (half of the prompts)"}
OBJECT_KINDS = ("instances", "components")


@dataclasses.dataclass
class _Started:
    """A job's news: the trainer is built (data checked, samples made); training starts."""

    trainer: object


class TrainWidget(QWidget):
    """Fine-tune SAM on annotated slices of (image, labels) layer pairs.

    Public parts (for scripts and tests):

    Data: ``image_combo``, ``labels_combo``, ``objects_combo`` (``instances``: every label id
    is an object; ``components``: connected components of a binary mask such as ink),
    ``add_pair_button``, ``pairs_list`` and ``remove_pair_button``; with no pair added, the
    pair in the two combos is used. ``val_fraction`` (share of the annotated slices held out
    for validation) or ``val_slices_edit`` (explicit validation slices of the first pair,
    e.g. ``"3, 10-12"``; when filled, the fraction is not used).

    Model: ``model_combo`` (editable: a registry name or a checkpoint path),
    ``checkpoint_button``, ``device_combo``, ``freeze_combo``, ``prompt_checks`` (kind →
    QCheckBox), ``epochs_spin``, ``lr_spin``, ``batch_spin``, ``patience_spin`` (0: never
    stop early), ``mode_selector`` (the sampling mode: the model learns on the 3-channel
    images it will see in Segment), ``out_edit`` / ``browse_button`` (the output folder:
    ``best.pt`` and ``last.pt`` there are replaced).

    Run: ``start_button`` / ``stop_button``, ``progress_bar`` (slices embedded, then steps),
    ``status_label`` (epoch, loss, validation IoU / Dice), ``error_label`` (red; also a
    napari notification), ``plot`` (a ``TrainingPlot``), ``use_button`` ("Use this model":
    ``best.pt`` into the Segment widget, docking one if none is).

    Methods: ``add_pair(image, labels, objects=None)``, ``remove_pair(i)``, ``pairs()``,
    ``set_model(model)`` (train a copy of this loaded ``SamModel``, until the model or
    device choice changes), ``set_checkpoint(path)``, ``config()`` (the ``TrainConfig``),
    ``start()``, ``stop()``, ``best_checkpoint()``, ``use_model()`` (returns the Segment
    widget). Attributes: ``trainer`` (the last run's ``Trainer``), ``history`` (its
    ``EpochReport``s), ``running``.
    Signals: ``report(object)`` for every trainer report; ``training_finished(str)`` with
    ``"done"`` (all epochs, or stopped early by patience), ``"stopped"`` or ``"failed"``.
    """

    report = Signal(object)
    training_finished = Signal(str)

    def __init__(self, napari_viewer):
        super().__init__()
        from ..training.trainer import TrainConfig

        defaults = TrainConfig()
        self.viewer = napari_viewer
        self._pairs: list[tuple[str, str, str]] = []
        self._job: Job | None = None
        self._failed = False
        self._run: dict = {}
        self.trainer = None
        self.history: list = []

        # data
        self.image_combo = QComboBox(toolTip="a 3D image layer")
        self.labels_combo = QComboBox(toolTip="its labels (same shape); slices with any label are the annotated ones")
        self.objects_combo = QComboBox(toolTip="instances: every label id is an object; components: the "
                                               "connected components of the labelled voxels (e.g. ink)")
        self.objects_combo.addItems(OBJECT_KINDS)
        self.add_pair_button = QPushButton("Add pair", toolTip="add the image and labels above to the training data")
        self.pairs_list = QListWidget(toolTip="training data; with none added, the pair chosen above is used")
        self.pairs_list.setMaximumHeight(60)
        self.remove_pair_button = QPushButton("Remove", toolTip="remove the selected pair", enabled=False)
        self.val_fraction = QDoubleSpinBox(decimals=2, singleStep=0.05, toolTip="share of the annotated slices "
                                           "held out to score each epoch (at least one when there are two)")
        self.val_fraction.setRange(0.0, 0.9)
        self.val_fraction.setValue(defaults.val_fraction)
        self.val_slices_edit = QLineEdit(placeholderText="or slices of the first pair, e.g. 3, 10-12",
                                         toolTip="explicit validation slices (annotated ones) of the first pair")

        # model: the built-in small first unless vit_b is cached
        self.models = ModelChoice(self, device_tip="where training runs", show_label=False)
        self.freeze_combo = QComboBox(editable=True, toolTip="which weights stay fixed (last:N: the encoder's "
                                                             "last N blocks learn too)")
        self.freeze_combo.addItems(FREEZE_CHOICES)
        for i, name in enumerate(FREEZE_CHOICES):
            self.freeze_combo.setItemData(i, FREEZE_HELP[name], Qt.ItemDataRole.ToolTipRole)
        self.prompt_checks = {k: QCheckBox(k, toolTip=PROMPT_HELP[k], checked=k in defaults.prompt_kinds)
                              for k in PROMPT_HELP}
        self.epochs_spin = QSpinBox(toolTip="passes over the training slices")
        self.epochs_spin.setRange(1, 100_000)
        self.epochs_spin.setValue(defaults.epochs)
        self.lr_spin = QDoubleSpinBox(decimals=6, singleStep=1e-5, toolTip="peak learning rate (AdamW; "
                                      "warm-up, then cosine decay)")
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setValue(defaults.lr)
        self.batch_spin = QSpinBox(toolTip="slices (or tiles) per step")
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(defaults.batch_size)
        self.patience_spin = QSpinBox(toolTip="stop after this many epochs without a better validation score",
                                      specialValueText="never")
        self.patience_spin.setRange(0, 100_000)
        self.patience_spin.setValue(defaults.patience)
        self.mode_selector = ModeSelector()
        self.out_edit = QLineEdit(placeholderText="default: <cache>/checkpoints/<image>-<time>",
                                  toolTip="best.pt (best validation score) and last.pt (each epoch) are written "
                                          "here, replacing earlier ones")
        self.browse_button = QPushButton("Browse…")

        # run
        self.start_button = QPushButton("Start", toolTip="check the data, then train")
        self.stop_button = QPushButton("Stop", enabled=False,
                                       toolTip="stop now; the last finished epoch's checkpoints stay")
        self.progress_bar = QProgressBar(visible=False)
        self.status_label, self.error_label = status_label(), status_label("#e04040", visible=False)
        self.plot = TrainingPlot(theme=getattr(napari_viewer, "theme", "dark"))
        self.use_button = QPushButton("Use this model", enabled=False,
                                      toolTip="load best.pt into the Segment widget (docking one if needed)")

        # layout: a scroll area with folding sections (fits a 1,000 px screen)
        dform = QFormLayout()
        dform.addRow("Image", self.image_combo)
        dform.addRow("Labels", self.labels_combo)
        dform.addRow("Objects", _row(self.objects_combo, self.add_pair_button))
        list_row = QHBoxLayout()
        list_row.addWidget(self.pairs_list, 1)
        list_row.addWidget(self.remove_pair_button, 0, Qt.AlignmentFlag.AlignTop)
        dform.addRow("Pairs", list_row)
        dform.addRow("Validation", _row(self.val_fraction, self.val_slices_edit))
        mform = QFormLayout()
        mform.addRow("Start from", self.models.row)
        mform.addRow("Device", self.device_combo)
        mform.addRow("Frozen", self.freeze_combo)
        mform.addRow("Prompts", _row(*self.prompt_checks.values(), stretch=True))
        grid = QGridLayout()
        for i, (label, w) in enumerate((("Epochs", self.epochs_spin), ("Batch", self.batch_spin),
                                        ("LR", self.lr_spin), ("Patience", self.patience_spin))):
            grid.addWidget(QLabel(label), i // 2, 2 * (i % 2))
            grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        mform.addRow(grid)
        lay = scrolled(self)
        lay.addWidget(section("Data", dform))
        lay.addWidget(section("Model", mform))
        lay.addWidget(section("Sampling", self.mode_selector, expanded=False))
        lay.addLayout(_row(QLabel("Output"), self.out_edit, self.browse_button))
        lay.addLayout(_row(self.start_button, self.stop_button))
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status_label)
        lay.addWidget(self.error_label)
        lay.addWidget(self.use_button)
        lay.addWidget(self.plot, 1)

        # events
        self.add_pair_button.clicked.connect(lambda: self._try(self.add_pair))
        self.remove_pair_button.clicked.connect(self._remove_selected)
        self.pairs_list.itemSelectionChanged.connect(
            lambda: self.remove_pair_button.setEnabled(bool(self.pairs_list.selectedItems())))
        self.browse_button.clicked.connect(self._browse_out)
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(lambda: self._try(self.use_model))
        self.image_combo.currentIndexChanged.connect(self._on_image)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._on_layers)
        for ly in self.viewer.layers:
            ly.events.name.connect(self._on_layers)
        if hasattr(self.viewer, "events") and hasattr(self.viewer.events, "theme"):
            self.viewer.events.theme.connect(lambda e: self.plot.set_theme(str(e.value)))
        self._on_layers()

    # --- data ----------------------------------------------------------------------------------------
    def pairs(self) -> list[tuple[str, str, str]]:
        """The added pairs: (image layer name, labels layer name, objects kind)."""
        return list(self._pairs)

    def add_pair(self, image: str | None = None, labels: str | None = None, objects: str | None = None) -> None:
        """Add (image, labels) to the training data (default: the combos' choice)."""
        image = image if image is not None else self.image_combo.currentText()
        labels = labels if labels is not None else self.labels_combo.currentText()
        objects = objects or self.objects_combo.currentText()
        if not image or not labels:
            raise ValueError("choose an image layer and a labels layer first")
        if objects not in OBJECT_KINDS:
            raise ValueError(f"objects must be {' or '.join(OBJECT_KINDS)}, not {objects!r}")
        pair = (image, labels, objects)
        if pair in self._pairs:
            raise ValueError(f"{image} ↔ {labels} is already in the training data")
        self._pairs.append(pair)
        self.pairs_list.addItem(f"{image} ↔ {labels} ({objects})")

    def remove_pair(self, i: int) -> None:
        del self._pairs[i]
        self.pairs_list.takeItem(i)

    def _remove_selected(self):
        for row in sorted((self.pairs_list.row(it) for it in self.pairs_list.selectedItems()), reverse=True):
            self.remove_pair(row)

    # --- model ---------------------------------------------------------------------------------------
    def _wanted_model_key(self) -> tuple:
        return self.models.wanted()

    def set_model(self, model) -> None:
        """Start from this loaded ``SamModel`` (a copy is trained, the model itself is left as
        it is) until the model or device choice changes."""
        self.models.set_model(model)

    def set_checkpoint(self, path) -> None:
        """Start from this checkpoint file (e.g. a previous run's best.pt)."""
        self.models.set_checkpoint(path)

    def _browse_out(self):
        path = QFileDialog.getExistingDirectory(self, "Output folder for best.pt / last.pt", self.out_edit.text())
        if path:
            self.out_edit.setText(path)

    def config(self):
        """The ``TrainConfig`` the controls describe (raises ``TrainingError`` when they do not fit)."""
        from ..training.trainer import TrainConfig, TrainingError

        kinds = tuple(k for k, cb in self.prompt_checks.items() if cb.isChecked())
        if not [k for k in kinds if k != "background"]:
            raise TrainingError("choose at least one prompt kind besides background (point, box or points)")
        return TrainConfig(epochs=self.epochs_spin.value(), lr=float(self.lr_spin.value()),
                           batch_size=self.batch_spin.value(), freeze=self.freeze_combo.currentText().strip(),
                           prompt_kinds=kinds, val_fraction=float(self.val_fraction.value()),
                           patience=self.patience_spin.value())

    # --- run -------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    def _layer(self, name, kind, what):
        if name not in self.viewer.layers:
            raise ValueError(f"the {what} layer {name!r} is no longer in the viewer")
        layer = self.viewer.layers[name]
        if not isinstance(layer, kind):
            raise ValueError(f"{name!r} is not {'an image' if kind is Image else 'a labels'} layer")
        return layer

    def _prepare(self) -> dict:
        pairs = self._pairs or ([(self.image_combo.currentText(), self.labels_combo.currentText(),
                                  self.objects_combo.currentText())]
                                if self.image_combo.currentText() and self.labels_combo.currentText() else [])
        if not pairs:
            raise ValueError("no training data: choose an image and its labels layer (Add pair for more than one)")
        layers = [(self._layer(image, Image, "image"), self._layer(labels, Labels, "labels"), objects)
                  for image, labels, objects in pairs]
        specs = training_pairs(layers)
        cfg = self.config()
        val = parse_slices(self.val_slices_edit.text())
        out = self.out_edit.text().strip() or str(default_train_dir(pairs[0][0]))
        key = self._wanted_model_key()
        if not key[0]:
            from ..sam.models import ModelError

            raise ModelError("choose a model to start from: vit_b, vit_l, vit_h, small or a checkpoint file")
        model = self.models.current()
        return {"specs": specs, "config": cfg, "mode": self.mode_selector.mode(), "key": key, "model": model,
                "out": Path(out).expanduser(), "val_slices": None if val is None else {0: val}}

    def start(self) -> None:
        """Check the data and start training (errors shown here, nothing started)."""
        if self.running:
            return
        self._clear_error()
        prepared = self._try(self._prepare)
        if prepared is None:
            self.training_finished.emit("failed")
            return
        self.plot.clear()
        self.history = []
        self.trainer = None
        self._failed = False
        self._run = {"out": prepared["out"], "mode": prepared["mode"], "epochs": prepared["config"].epochs,
                     "best": None, "total": 0, "last_step": None, "stopped": None}
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.use_button.setEnabled(False)
        self.progress_bar.setRange(0, 0)  # busy until the first report
        self.progress_bar.setFormat("")
        self.progress_bar.setVisible(True)
        self.status_label.setText("starting…")
        self._job = Job(self._job_gen(prepared), on_yield=self._on_item, on_error=self._on_error,
                        on_finish=self._on_finished)
        self._job.start()

    def _job_gen(self, p):
        from ..training.trainer import Trainer

        model = p["model"]
        if model is None:
            from ..sam.models import load_model

            name, device = p["key"]
            yield f"loading {name} on {device}…"
            model = load_model(name, device)
        else:
            model = copy.deepcopy(model)  # training changes the weights in place
        yield "checking the training data…"
        pairs = p["specs"]
        out = p["out"]
        made = [d for d in (out, *out.parents) if not d.exists()]
        try:
            trainer = Trainer(model, pairs, out, p["config"], mode=p["mode"], val_slices=p["val_slices"])
        except BaseException:
            for d in made:  # folders made for nothing go again (only empty ones)
                try:
                    d.rmdir()
                except OSError:
                    break
            raise
        yield _Started(trainer)
        reports = trainer.run()
        try:
            yield from reports
        finally:
            reports.close()

    def _on_item(self, item):
        from ..training.trainer import EpochReport, StageReport, StepReport

        if isinstance(item, str):
            self.status_label.setText(item)
            return
        if isinstance(item, _Started):
            tr = self.trainer = item.trainer
            self._run["total"] = tr.total_steps
            self.plot.set_total_steps(tr.total_steps, tr.steps_per_epoch)
            self._run["summary"] = (f"{len(tr.train_samples)} training / {len(tr.val_samples)} validation "
                                    f"samples, {tr.total_steps} steps; {tr.model.model_id} on {tr.device}")
            self.status_label.setText(self._run["summary"])
            return
        if isinstance(item, StageReport):
            self.progress_bar.setRange(0, max(item.total, 1))
            self.progress_bar.setValue(item.done)
            self.progress_bar.setFormat(f"{item.stage} %v / %m slices")
            self.status_label.setText(f"{item.stage}: {item.done} / {item.total} slices "
                                      f"(the encoder is frozen: once, then from the cache)")
        elif isinstance(item, StepReport):
            total = self._run["total"]
            if self.progress_bar.maximum() != total:
                self.progress_bar.setRange(0, max(total, 1))
                self.progress_bar.setFormat("%v / %m steps")
            self.progress_bar.setValue(item.step)
            self.plot.add_step(item.step, item.loss)
            self._run["last_step"] = item
            self.status_label.setText(self._status_text())
        elif isinstance(item, EpochReport):
            self.history.append(item)
            self.plot.add_epoch(item.epoch, item.step, item.train_loss, item.val_iou, item.val_dice)
            if item.best:
                self._run["best"] = item
            self._run["stopped"] = item.stopped
            if self.best_checkpoint() is not None:
                self.use_button.setEnabled(True)
            self.status_label.setText(self._status_text())
        self.report.emit(item)

    def _val_text(self) -> str:
        if not self.history:
            return ""
        last, best = self.history[-1], self._run.get("best")
        if last.val_iou is None:
            return f"epoch {last.epoch}: train loss {last.train_loss:.3f} (no validation slice)"
        text = f"epoch {last.epoch}: val IoU {last.val_iou:.3f}, Dice {last.val_dice:.3f}"
        if best is not None and best.val_iou is not None:
            text += f" (best IoU {best.val_iou:.3f}, epoch {best.epoch})"
        return text

    def _status_text(self) -> str:
        lines = []
        s = self._run.get("last_step")
        if s is not None:
            lines.append(f"epoch {s.epoch + 1}/{self._run['epochs']} · step {s.step}/{self._run['total']} · "
                         f"loss {s.loss:.3f} · train IoU {s.train_iou:.2f} · lr {s.lr:.1e}")
        val = self._val_text()
        if val:
            lines.append(val)
        return "\n".join(lines)

    def _on_error(self, exc):
        self._failed = True
        self._show_error(exc)

    def stop(self) -> None:
        """Stop after the current step; the last finished epoch's checkpoints stay."""
        if self.running:
            self.stop_button.setEnabled(False)
            self.status_label.setText("stopping after the current step…")
            self._job.cancel()

    def _on_finished(self, cancelled: bool):
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.plot.flush()
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setVisible(False)
        done = len(self.history)
        out = self._run.get("out")
        best = self.best_checkpoint()
        where = f"best.pt: {best}" if best is not None else f"checkpoints in {out}"
        val = self._val_text()
        if self._failed:
            outcome = "failed"
            text = (f"training failed after epoch {self.history[-1].epoch}; {where}" if done
                    else "training did not start" if self.trainer is None else "training failed; no checkpoint")
        elif cancelled:
            outcome = "stopped"
            text = (f"stopped in epoch {done + 1}: the checkpoints of epoch {self.history[-1].epoch} stay; {where}"
                    if done else "stopped before the first epoch ended: no checkpoint written")
        else:
            outcome = "done"
            why = f"stopped early ({self._run['stopped']})" if self._run.get("stopped") else "done"
            text = f"{why}: {done} epoch{'s' if done != 1 else ''}; {where}"
        self.status_label.setText(text + (f"\n{val}" if val else ""))
        self.use_button.setEnabled(best is not None)
        self.training_finished.emit(outcome)

    # --- results -----------------------------------------------------------------------------------------
    def best_checkpoint(self) -> Path | None:
        """The last run's best.pt, once it exists."""
        out = self._run.get("out")
        if out is None:
            return None
        path = Path(out) / "best.pt"
        return path if path.is_file() else None

    def _find_segment_widget(self):
        from .segment import SegmentWidget

        window = getattr(self.viewer, "window", None)
        if window is None:
            return None
        docked = getattr(window, "dock_widgets", None)
        inner = list(docked.values()) if docked is not None else [
            d.widget() for d in getattr(window, "_dock_widgets", {}).values()]
        for w in inner:
            w = getattr(w, "native", w)
            if isinstance(w, SegmentWidget):
                return w
            if isinstance(w, QWidget):
                found = w.findChildren(SegmentWidget)
                if found:
                    return found[0]
        return None

    def use_model(self):
        """Load best.pt into the Segment widget (docked now if there is none), with the
        sampling mode it was trained with; returns that widget."""
        from .segment import SegmentWidget

        best = self.best_checkpoint()
        if best is None:
            raise ValueError("no best.pt yet: it is written at the end of the first epoch")
        seg = self._find_segment_widget()
        if seg is None:
            seg = SegmentWidget(self.viewer)
            self.viewer.window.add_dock_widget(seg, name="Segment")
        seg.set_checkpoint(best)
        mode = self._run.get("mode")
        if mode is not None:
            try:
                seg.mode_selector.set_mode(mode)
            except Exception as e:  # noqa: BLE001 - the checkpoint is set; the mode is a courtesy
                self._show_error(f"the Segment widget could not take the sampling mode: {e}")
        from qtpy.QtWidgets import QDockWidget

        dock = seg.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        if dock is not None:
            dock.show()
            dock.raise_()
        self.status_label.setText(f"{best} is the Segment widget's model now")
        return seg

    # --- layers ------------------------------------------------------------------------------------------
    def _on_inserted(self, event):
        event.value.events.name.connect(self._on_layers)
        self._on_layers()

    def _on_layers(self, *_):
        labels = [ly.name for ly in self.viewer.layers if isinstance(ly, Labels) and ly.ndim == 3]
        refill_combo(self.image_combo, volume_image_names(self.viewer))
        refill_combo(self.labels_combo, labels)
        self._on_image()

    def _on_image(self, *_):
        name = self.image_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is None:
            self.mode_selector.set_arrays({})
            return
        data = layer.data[0] if layer.multiscale else layer.data
        shape = tuple(data.shape)
        self.mode_selector.set_n_slices(shape[0])
        arrays = {ly.name: ly.data for ly in self.viewer.layers
                  if isinstance(ly, Labels) and not ly.multiscale and tuple(ly.data.shape) == shape}
        self.mode_selector.set_arrays(arrays)
        # the labels layer of this image's shape, when the current one does not fit
        cur = self.labels_combo.currentText()
        if cur not in arrays and arrays:
            self.labels_combo.setCurrentText(next(iter(arrays)))

    # --- errors ------------------------------------------------------------------------------------------
    def _clear_error(self):
        self.error_label.clear()
        self.error_label.hide()

    def _show_error(self, exc):
        show_widget_error(self.error_label, exc)

    def _try(self, fn, *args, **kwargs):
        """``fn()``, or None with the error shown in red and as a notification."""
        return call_or_show(self.error_label, fn, *args, **kwargs)

    def closeEvent(self, event):  # noqa: N802 - Qt
        if self._job is not None:
            self._job.cancel()
        super().closeEvent(event)


def _row(*widgets, stretch: bool = False) -> QHBoxLayout:
    row = QHBoxLayout()
    for i, w in enumerate(widgets):
        row.addWidget(w, 1 if (i == 0 and len(widgets) == 2 and not stretch) or isinstance(w, QLineEdit) else 0)
    if stretch:
        row.addStretch(1)
    return row


__all__ = ["TrainWidget", "TrainingPlot", "parse_slices"]
