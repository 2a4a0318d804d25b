"""The "Train" dock widget: fine-tune SAM on (image, labels) layer pairs, watch it learn, use it.

A thin face over ``training.trainer.Trainer``; a script does the same with::

    pairs = [TrainingPair(volume, labels, name, objects="instances")]
    trainer = Trainer(model, pairs, out_dir, TrainConfig(epochs=…, lr=…, freeze=…), mode=mode)
    for report in trainer.run(): ...   # StageReport, StepReport per step, EpochReport per epoch

The model loads, the data are checked, embeddings are computed and the model is
trained off the GUI thread (``_workers.Job``; ``NAPARI_SCROLL_SAM_SYNC=1`` runs it in
the GUI thread, for tests). Stop asks the trainer to end at its next sample (the step
under way is dropped: ``Trainer.request_stop``) and closes its generator: the checkpoints of
the last finished epoch stay (the trainer writes ``last.pt`` / ``best.pt`` only at
epoch ends). "Use this model" hands ``best.pt`` to the Segment widget, with the
sampling mode the model was trained with.
"""

from __future__ import annotations

from pathlib import Path

from napari.layers import Labels
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFileDialog, QLabel, QLineEdit, QProgressBar, QPushButton, QWidget

from ..layers import check_pair, default_train_dir, parse_slices, training_pairs_by_name
from ._errors import call_or_show, show_widget_error
from ._layers import refill_combo, volume_image_names
from ._layout import scrolled, section, status_label
from ._workers import Job, preload_for_training
from .plot import TrainingPlot
from . import train_run
from .train_form import build_form, config_of, row as _row
from .sampling import ModeSelector

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

        preload_for_training()
        defaults = TrainConfig()
        self.viewer = napari_viewer
        self._pairs: list[tuple[str, str, str]] = []
        self._job: Job | None = None
        self._failed = False
        self._run: dict = {}
        self.trainer = None
        self.history: list = []

        dform, mform = build_form(self, defaults)  # train_form.py: the Data and Model controls
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

        # a scroll area with folding sections (fits a 1,000 px screen)
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
        pair = check_pair(self._pairs, image if image is not None else self.image_combo.currentText(),
                          labels if labels is not None else self.labels_combo.currentText(),
                          objects or self.objects_combo.currentText())
        self._pairs.append(pair)
        image, labels, objects = pair
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
        return config_of(self)

    # --- run -------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    def _prepare(self) -> dict:
        pairs = self._pairs or [(self.image_combo.currentText(), self.labels_combo.currentText(),
                                 self.objects_combo.currentText())]  # none added: the combos' pair
        specs = training_pairs_by_name(self.viewer.layers, pairs)  # layers.py
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
        return (yield from train_run.job_gen(self, p))

    def _on_item(self, item):
        return train_run.on_item(self, item)

    def _val_text(self) -> str:
        return train_run.val_text(self)

    def _status_text(self) -> str:
        return train_run.status_text(self)

    def _on_error(self, exc):
        self._failed = True
        self._show_error(exc)

    def stop(self) -> None:
        """Stop at the next sample (the step under way is dropped); the last finished epoch's
        checkpoints stay."""
        if self.running:
            self.stop_button.setEnabled(False)
            self.status_label.setText("stopping…")
            if self.trainer is not None:
                self.trainer.request_stop()
            self._job.cancel()

    def _on_finished(self, cancelled: bool):
        return train_run.on_finished(self, cancelled)

    # --- results -----------------------------------------------------------------------------------------
    def best_checkpoint(self) -> Path | None:
        """The last run's best.pt, once it exists."""
        out = self._run.get("out")
        if out is None:
            return None
        path = Path(out) / "best.pt"
        return path if path.is_file() else None

    def _find_segment_widget(self, *_):
        return train_run.find_segment_widget(self)

    def use_model(self, *_):
        """Load best.pt into the Segment widget (docked now if there is none), with the
        sampling mode it was trained with; returns that widget."""
        return train_run.use_model(self)

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
        return train_run.on_image(self)

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


__all__ = ["TrainWidget", "TrainingPlot", "parse_slices"]
