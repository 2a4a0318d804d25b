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
import math
import re
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
    QLineEdit, QListWidget, QProgressBar, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout, QWidget,
)

from ..layers import default_train_dir, model_choices, training_pairs
from ._workers import Job
from ._layers import refill_combo, volume_image_names
from ._errors import call_or_show, show_widget_error
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
#: how often (ms) the plot repaints at most while reports arrive
PLOT_INTERVAL_MS = 150
#: curve colours (loss, IoU, Dice) on dark themes and on light ones
CURVE_COLORS = {"dark": ("#ff9f43", "#4fc3f7", "#9ccc65"), "light": ("#d35400", "#1565c0", "#2e7d32")}


@dataclasses.dataclass
class _Started:
    """A job's news: the trainer is built (data checked, samples made); training starts."""

    trainer: object


# --- the plot -------------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 4):
    """(start, stop, ticks): a range covering [lo, hi] on round numbers, about ``n`` steps."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if (hi - lo) / step <= n:
            break
    start, stop = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [start + i * step for i in range(int(round((stop - start) / step)) + 1)]
    return start, stop, ticks


def _tick_label(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step > 0 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1  # 2.5, 0.25
    return f"{v:.{decimals}f}"


class TrainingPlot(QWidget):
    """Training loss per step (top) and validation IoU / Dice per epoch (bottom), on one
    axis counted in epochs. Drawn with QPainter (no plotting library).

    Data (public, for scripts and tests): ``steps``, ``losses`` (one per step); ``epochs``,
    ``epoch_steps``, ``train_loss``, ``val_iou``, ``val_dice`` (one per epoch; ``None`` when
    there was no validation slice). Repaints at most every ``PLOT_INTERVAL_MS``.
    """

    def __init__(self, parent=None, theme: str = "dark"):
        super().__init__(parent)
        self.theme = theme
        self.total_steps, self.steps_per_epoch = 0, 1
        self.clear()
        self.setMinimumHeight(170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._timer = QTimer(self, singleShot=True, interval=PLOT_INTERVAL_MS)
        self._timer.timeout.connect(self.update)

    def clear(self) -> None:
        self.steps, self.losses = [], []
        self.epochs, self.epoch_steps, self.train_loss, self.val_iou, self.val_dice = [], [], [], [], []
        self.total_steps, self.steps_per_epoch = 0, 1
        if hasattr(self, "_timer"):
            self.update()

    def set_total_steps(self, n: int, steps_per_epoch: int = 1) -> None:
        """The run's length: the x axis spans it from the start (in epochs)."""
        self.total_steps, self.steps_per_epoch = int(n), max(1, int(steps_per_epoch))
        self._schedule()

    def add_step(self, step: int, loss: float) -> None:
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self._schedule()

    def add_epoch(self, epoch: int, step: int, train_loss: float, val_iou, val_dice) -> None:
        self.epochs.append(int(epoch))
        self.epoch_steps.append(int(step))
        self.train_loss.append(float(train_loss))
        self.val_iou.append(None if val_iou is None else float(val_iou))
        self.val_dice.append(None if val_dice is None else float(val_dice))
        self._schedule()

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        self.update()

    def flush(self) -> None:
        """Repaint now (the end of a run)."""
        self._timer.stop()
        self.update()

    def _schedule(self):
        if not self._timer.isActive():
            self._timer.start()

    def sizeHint(self):  # noqa: N802 - Qt
        s = super().sizeHint()
        s.setHeight(260)
        return s

    # --- drawing -----------------------------------------------------------------------------------
    def _colors(self):
        try:
            from napari.utils.theme import get_theme

            t = get_theme(self.theme)
            return {k: QColor(getattr(t, k).as_hex()) for k in ("background", "foreground", "primary",
                                                                "secondary", "text", "icon")}
        except Exception:  # noqa: BLE001 - an unknown theme: plain colours
            return {"background": QColor("#23242b"), "foreground": QColor("#2e333e"),
                    "primary": QColor("#424a54"), "secondary": QColor("#565f6c"), "text": QColor("#f0f1f2"),
                    "icon": QColor("#d1d2d4")}

    def paintEvent(self, event):  # noqa: N802 - Qt
        c = self._colors()
        loss_color, iou_color, dice_color = CURVE_COLORS["light" if c["background"].lightness() > 128 else "dark"]
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), c["background"])
        font = QFont(p.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        p.setFont(font)
        fm = p.fontMetrics()
        lh = fm.height()
        left = max(fm.horizontalAdvance("0.000"), fm.horizontalAdvance("epoch") + 8) + 10
        right, top, bottom = 10, lh + 4, lh + 6
        w, h = self.width() - left - right, self.height() - top - bottom
        if w < 40 or h < 60:
            p.end()
            return
        gap = lh + 8  # room for the lower panel's title
        h1 = int((h - gap) * 0.55)
        loss_rect = QRectF(left, top, w, h1)
        val_rect = QRectF(left, top + h1 + gap, w, h - h1 - gap)
        # the x axis counts epochs: a step's loss sits at step / steps_per_epoch, an epoch's
        # validation at its end (an integer)
        per = max(self.steps_per_epoch, 1)
        xmax = max(self.total_steps / per, (self.steps[-1] / per) if self.steps else 0, 1)
        _, _, xticks = _nice_ticks(0, xmax, 6)
        xticks = [t for t in xticks if t <= xmax + 1e-9 and float(t).is_integer()]

        def xpos(rect, step):  # a few pixels kept free on the right: the last markers show whole
            return rect.left() + (step / per) / xmax * (rect.width() - 5)

        for rect in (loss_rect, val_rect):
            p.fillRect(rect, c["foreground"])
        text_pen = QPen(c["text"])
        hint = QColor(c["icon"])
        hint.setAlpha(170)
        grid_pen = QPen(c["primary"], 1)
        # ticks under the lower panel, grid lines in both
        axis_label = "epoch"  # left of the tick labels, under the y axis' labels
        axis_right = 2 + fm.horizontalAdvance(axis_label)
        for t in xticks:
            x = xpos(val_rect, t * per)
            p.setPen(grid_pen)
            for rect in (loss_rect, val_rect):
                p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            label = f"{int(t)}"
            lx = x - fm.horizontalAdvance(label) / 2
            if lx > axis_right + 4:  # never over the axis label
                p.setPen(text_pen)
                p.drawText(QPointF(min(lx, self.width() - fm.horizontalAdvance(label) - 1),
                                   val_rect.bottom() + fm.ascent() + 3), label)
        p.setPen(QPen(c["icon"]))
        p.drawText(QPointF(2, val_rect.bottom() + fm.ascent() + 3), axis_label)

        # --- loss ---
        p.setPen(text_pen)
        p.drawText(QPointF(left, top - 4), "training loss (per step)")
        if self.losses:
            lo, hi = min(self.losses), max(self.losses)
            y0, y1, yticks = _nice_ticks(lo, hi, 3)
        else:
            y0, y1, yticks = 0.0, 1.0, [0.0, 0.5, 1.0]
        ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0

        def ypos(rect, v, lo, hi):
            return rect.bottom() - (v - lo) / (hi - lo) * rect.height()

        for t in yticks:
            y = ypos(loss_rect, t, y0, y1)
            p.setPen(grid_pen)
            p.drawLine(QPointF(loss_rect.left(), y), QPointF(loss_rect.right(), y))
            p.setPen(text_pen)
            label = _tick_label(t, ystep)
            p.drawText(QPointF(left - 4 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1), label)
        if self.losses:
            p.save()
            p.setClipRect(loss_rect.adjusted(-3, -3, 3, 3))
            pts = [QPointF(xpos(loss_rect, s), ypos(loss_rect, v, y0, y1)) for s, v in zip(self.steps, self.losses)]
            raw = QColor(loss_color)
            many = len(pts) > 20
            if many:  # the raw curve faint, a moving average on top
                raw.setAlpha(90)
            self._polyline(p, pts, QPen(raw, 1.2 if many else 2))
            if many:
                k = max(2, len(self.losses) // 20)
                smooth = np.convolve(self.losses, np.ones(k) / k, mode="valid")
                sp = [QPointF(xpos(loss_rect, s), ypos(loss_rect, v, y0, y1))
                      for s, v in zip(self.steps[k - 1:], smooth)]
                self._polyline(p, sp, QPen(QColor(loss_color), 2.2))
            else:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(loss_color))
                for q in pts:
                    p.drawEllipse(q, 2.5, 2.5)
            p.restore()
            last = f"{self.losses[-1]:.3f}"
            p.setPen(QPen(QColor(loss_color)))
            p.drawText(QPointF(loss_rect.right() - fm.horizontalAdvance(last) - 4, loss_rect.top() - 4), last)
        else:
            p.setPen(QPen(hint))
            p.drawText(loss_rect, Qt.AlignmentFlag.AlignCenter, "the loss appears here once training starts")

        # --- validation ---
        p.setPen(text_pen)
        title = "validation (per epoch)"
        p.drawText(QPointF(left, val_rect.top() - 4), title)
        lx = left + fm.horizontalAdvance(title) + 14
        for name, color in (("IoU", iou_color), ("Dice", dice_color)):
            p.setPen(QPen(QColor(color), 2.2))
            yy = val_rect.top() - 4 - fm.ascent() / 2 + 1
            p.drawLine(QPointF(lx, yy), QPointF(lx + 14, yy))
            p.setPen(text_pen)
            p.drawText(QPointF(lx + 18, val_rect.top() - 4), name)
            lx += 18 + fm.horizontalAdvance(name) + 12
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = ypos(val_rect, t, 0, 1)
            p.setPen(grid_pen)
            p.drawLine(QPointF(val_rect.left(), y), QPointF(val_rect.right(), y))
            if t in (0.0, 0.5, 1.0):
                p.setPen(text_pen)
                label = f"{t:.1f}"
                p.drawText(QPointF(left - 4 - fm.horizontalAdvance(label), y + fm.ascent() / 2 - 1), label)
        have_val = any(v is not None for v in self.val_iou)
        if have_val:
            for values, color, square in ((self.val_dice, dice_color, True), (self.val_iou, iou_color, False)):
                pts = [QPointF(xpos(val_rect, s), ypos(val_rect, min(max(v, 0.0), 1.0), 0, 1))
                       for s, v in zip(self.epoch_steps, values) if v is not None]
                self._polyline(p, pts, QPen(QColor(color), 2))
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(color))
                for q in pts:
                    if square:
                        p.drawRect(QRectF(q.x() - 3, q.y() - 3, 6, 6))
                    else:
                        p.drawEllipse(q, 3.5, 3.5)
            last = next(v for v in reversed(self.val_iou) if v is not None)
            text = f"IoU {last:.3f}"
            p.setPen(QPen(QColor(iou_color)))
            p.drawText(QPointF(val_rect.right() - fm.horizontalAdvance(text) - 4, val_rect.top() - 4), text)
        else:
            p.setPen(QPen(hint))
            msg = ("no validation slice: the best epoch is the one of lowest loss" if self.epochs
                   else "validation scores appear at each epoch's end")
            p.drawText(val_rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, msg)
        p.end()

    @staticmethod
    def _polyline(p: QPainter, pts, pen):
        if len(pts) < 2:
            return
        path = QPainterPath(pts[0])
        for q in pts[1:]:
            path.lineTo(q)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(path)


# --- the widget ------------------------------------------------------------------------------------------


def parse_slices(text: str) -> list[int] | None:
    """``"3, 7 10-12"`` → ``[3, 7, 10, 11, 12]``; empty text → None."""
    text = text.strip()
    if not text:
        return None
    out = []
    for part in re.split(r"[,;\s]+", text):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:\s*[-:]\s*(\d+))?", part)
        if m is None:
            raise ValueError(f"validation slices: {part!r} is not a slice number or a range like 10-12")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ValueError(f"validation slices: the range {part!r} runs backwards")
        out.extend(range(a, b + 1))
    return sorted(set(out))


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
        from ..sam.models import available_devices
        from ..training.trainer import TrainConfig

        defaults = TrainConfig()
        self.viewer = napari_viewer
        self._pairs: list[tuple[str, str, str]] = []
        self._model = None
        self._model_key: tuple | None = None
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

        # model
        self.model_combo = QComboBox(editable=True, toolTip="the model to start from: a SAM by name or a "
                                                            "checkpoint file (e.g. an earlier best.pt)")
        self.model_combo.addItems(model_choices())  # the built-in small first unless vit_b is cached
        self.model_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.checkpoint_button = QPushButton("Checkpoint…", toolTip="start from a checkpoint file")
        self.device_combo = QComboBox(toolTip="where training runs")
        self.device_combo.addItems(["auto", *available_devices()])
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
        self.status_label = QLabel(wordWrap=True)
        self.error_label = QLabel(wordWrap=True, styleSheet="color: #e04040;", visible=False)
        for lbl in (self.status_label, self.error_label):
            lbl.setTextFormat(Qt.TextFormat.PlainText)
            lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.plot = TrainingPlot(theme=getattr(napari_viewer, "theme", "dark"))
        self.use_button = QPushButton("Use this model", enabled=False,
                                      toolTip="load best.pt into the Segment widget (docking one if needed)")

        # layout
        data_box = QGroupBox("Data")
        dform = QFormLayout(data_box)
        dform.addRow("Image", self.image_combo)
        dform.addRow("Labels", self.labels_combo)
        kind_row = QHBoxLayout()
        kind_row.addWidget(self.objects_combo, 1)
        kind_row.addWidget(self.add_pair_button)
        dform.addRow("Objects", kind_row)
        list_row = QHBoxLayout()
        list_row.addWidget(self.pairs_list, 1)
        list_row.addWidget(self.remove_pair_button, 0, Qt.AlignmentFlag.AlignTop)
        dform.addRow("Pairs", list_row)
        val_row = QHBoxLayout()
        val_row.addWidget(self.val_fraction)
        val_row.addWidget(self.val_slices_edit, 1)
        dform.addRow("Validation", val_row)

        model_box = QGroupBox("Model")
        mform = QFormLayout(model_box)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.checkpoint_button)
        mform.addRow("Start from", model_row)
        mform.addRow("Device", self.device_combo)
        mform.addRow("Frozen", self.freeze_combo)
        prompt_row = QHBoxLayout()
        for cb in self.prompt_checks.values():
            prompt_row.addWidget(cb)
        prompt_row.addStretch(1)
        mform.addRow("Prompts", prompt_row)
        grid = QGridLayout()
        for i, (label, w) in enumerate((("Epochs", self.epochs_spin), ("Batch", self.batch_spin),
                                        ("LR", self.lr_spin), ("Patience", self.patience_spin))):
            grid.addWidget(QLabel(label), i // 2, 2 * (i % 2))
            grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        mform.addRow(grid)

        sampling_box = QGroupBox("Sampling")
        QVBoxLayout(sampling_box).addWidget(self.mode_selector)

        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("Output"))
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_button)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button, 1)
        run_row.addWidget(self.stop_button)

        lay = QVBoxLayout(self)
        lay.addWidget(data_box)
        lay.addWidget(model_box)
        lay.addWidget(sampling_box)
        lay.addLayout(out_row)
        lay.addLayout(run_row)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status_label)
        lay.addWidget(self.error_label)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.use_button)

        # events
        self.add_pair_button.clicked.connect(lambda: self._try(self.add_pair))
        self.remove_pair_button.clicked.connect(self._remove_selected)
        self.pairs_list.itemSelectionChanged.connect(
            lambda: self.remove_pair_button.setEnabled(bool(self.pairs_list.selectedItems())))
        self.checkpoint_button.clicked.connect(self._browse_checkpoint)
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
        return (self.model_combo.currentText().strip(), self.device_combo.currentText().strip() or "auto")

    def set_model(self, model) -> None:
        """Start from this loaded ``SamModel`` (a copy is trained, the model itself is left as
        it is) until the model or device choice changes."""
        source = getattr(model, "source", None)
        self.model_combo.setCurrentText(str(source) if isinstance(source, Path) else model.config.name)
        self._model = model
        self._model_key = self._wanted_model_key()

    def set_checkpoint(self, path) -> None:
        """Start from this checkpoint file (e.g. a previous run's best.pt)."""
        self.model_combo.setCurrentText(str(Path(path).expanduser()))

    def _browse_checkpoint(self):
        path, _ = QFileDialog.getOpenFileName(self, "Start from a SAM checkpoint", "",
                                              "Checkpoints (*.pt *.pth *.ckpt *.bin);;All files (*)")
        if path:
            self.set_checkpoint(path)

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
        model = self._model if self._model is not None and self._model_key == key else None
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
        dock = seg.parent()
        while dock is not None and not hasattr(dock, "raise_"):
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


__all__ = ["TrainWidget", "TrainingPlot", "parse_slices"]
