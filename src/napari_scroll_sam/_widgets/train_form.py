"""The Train widget's Data and Model controls (made as attributes of the widget:
``image_combo``, ``labels_combo``, ``objects_combo``, pairs, validation, model box,
freeze, prompt kinds, epochs / batch / LR / patience) and the ``TrainConfig`` they describe."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
    QPushButton, QSpinBox,
)

from ..layers import OBJECT_KINDS
from ._model import ModelChoice

FREEZE_CHOICES = ("encoder", "none", "last:1", "last:2", "last:4", "lora:4")
FREEZE_HELP = {"encoder": "image and prompt encoders frozen: only the mask decoder learns (fast: cached "
                          "embeddings)",
               "none": "every weight learns (slow: the encoder runs at every step)",
               "last:1": "the decoder and the encoder's last block learn",
               "last:2": "the decoder and the encoder's last 2 blocks learn",
               "last:4": "the decoder and the encoder's last 4 blocks learn",
               "lora:4": "the decoder and rank-4 adapters on the encoder's attention learn (folded into "
                         "the weights at the end)"}
PROMPT_HELP = {"point": "one positive point in the object", "box": "the object's box, jittered",
               "points": "2-4 positive points", "background": "adds 1-2 negative points (half of the prompts)"}


def build_form(o, defaults):
    """Make the controls on ``o``; returns the (data, model) form layouts."""
    # data
    o.image_combo = QComboBox(toolTip="a 3D image layer")
    o.labels_combo = QComboBox(toolTip="its labels (same shape); slices with any label are the annotated ones")
    o.objects_combo = QComboBox(toolTip="instances: every label id is an object; components: the "
                                           "connected components of the labelled voxels (e.g. ink)")
    o.objects_combo.addItems(OBJECT_KINDS)
    o.add_pair_button = QPushButton("Add pair", toolTip="add the image and labels above to the training data")
    o.pairs_list = QListWidget(toolTip="training data; with none added, the pair chosen above is used")
    o.pairs_list.setMaximumHeight(60)
    o.remove_pair_button = QPushButton("Remove", toolTip="remove the selected pair", enabled=False)
    o.val_fraction = QDoubleSpinBox(decimals=2, singleStep=0.05, toolTip="share of the annotated slices "
                                       "held out to score each epoch (at least one when there are two)")
    o.val_fraction.setRange(0.0, 0.9)
    o.val_fraction.setValue(defaults.val_fraction)
    o.val_slices_edit = QLineEdit(placeholderText="or slices of the first pair, e.g. 3, 10-12",
                                     toolTip="explicit validation slices (annotated ones) of the first pair")

    # model: the built-in small first unless vit_b is cached
    o.models = ModelChoice(o, device_tip="where training runs", show_label=False)
    o.freeze_combo = QComboBox(editable=True, toolTip="which weights stay fixed (last:N: the encoder's "
                                                         "last N blocks learn too)")
    o.freeze_combo.addItems(FREEZE_CHOICES)
    for i, name in enumerate(FREEZE_CHOICES):
        o.freeze_combo.setItemData(i, FREEZE_HELP[name], Qt.ItemDataRole.ToolTipRole)
    o.freeze_combo.setCurrentText(defaults.freeze)
    o.prompt_checks = {k: QCheckBox(k, toolTip=PROMPT_HELP[k], checked=k in defaults.prompt_kinds)
                          for k in PROMPT_HELP}
    o.epochs_spin = QSpinBox(toolTip="passes over the training slices")
    o.epochs_spin.setRange(1, 100_000)
    o.epochs_spin.setValue(defaults.epochs)
    o.lr_spin = QDoubleSpinBox(decimals=6, singleStep=1e-5, toolTip="peak learning rate (AdamW; "
                                  "warm-up, then cosine decay)")
    o.lr_spin.setRange(1e-6, 1.0)
    o.lr_spin.setValue(defaults.lr)
    o.batch_spin = QSpinBox(toolTip="slices (or tiles) per step")
    o.batch_spin.setRange(1, 1024)
    o.batch_spin.setValue(defaults.batch_size)
    o.patience_spin = QSpinBox(toolTip="stop after this many epochs without a better validation score",
                                  specialValueText="never")
    o.patience_spin.setRange(0, 100_000)
    o.patience_spin.setValue(defaults.patience)
    # layout: a scroll area with folding sections (fits a 1,000 px screen)
    dform = QFormLayout()
    dform.addRow("Image", o.image_combo)
    dform.addRow("Labels", o.labels_combo)
    dform.addRow("Objects", row(o.objects_combo, o.add_pair_button))
    list_row = QHBoxLayout()
    list_row.addWidget(o.pairs_list, 1)
    list_row.addWidget(o.remove_pair_button, 0, Qt.AlignmentFlag.AlignTop)
    dform.addRow("Pairs", list_row)
    dform.addRow("Validation", row(o.val_fraction, o.val_slices_edit))
    mform = QFormLayout()
    mform.addRow("Start from", o.models.row)
    mform.addRow("Device", o.device_combo)
    mform.addRow("Frozen", o.freeze_combo)
    mform.addRow("Prompts", row(*o.prompt_checks.values(), stretch=True))
    grid = QGridLayout()
    for i, (label, w) in enumerate((("Epochs", o.epochs_spin), ("Batch", o.batch_spin),
                                    ("LR", o.lr_spin), ("Patience", o.patience_spin))):
        grid.addWidget(QLabel(label), i // 2, 2 * (i % 2))
        grid.addWidget(w, i // 2, 2 * (i % 2) + 1)
    grid.setColumnStretch(1, 1)
    grid.setColumnStretch(3, 1)
    mform.addRow(grid)
    return dform, mform


def config_of(o):
    """The ``TrainConfig`` the controls describe (raises ``TrainingError`` when they do not fit)."""
    from ..training.trainer import TrainConfig, TrainingError

    kinds = tuple(k for k, cb in o.prompt_checks.items() if cb.isChecked())
    if not [k for k in kinds if k != "background"]:
        raise TrainingError("choose at least one prompt kind besides background (point, box or points)")
    return TrainConfig(epochs=o.epochs_spin.value(), lr=float(o.lr_spin.value()),
                       batch_size=o.batch_spin.value(), freeze=o.freeze_combo.currentText().strip(),
                       prompt_kinds=kinds, val_fraction=float(o.val_fraction.value()),
                       patience=o.patience_spin.value())


def row(*widgets, stretch: bool = False) -> QHBoxLayout:
    row = QHBoxLayout()
    for i, w in enumerate(widgets):
        row.addWidget(w, 1 if (i == 0 and len(widgets) == 2 and not stretch) or isinstance(w, QLineEdit) else 0)
    if stretch:
        row.addStretch(1)
    return row
