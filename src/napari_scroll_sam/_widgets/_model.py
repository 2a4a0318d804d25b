"""The model choice both Segment and Train show: a model box (the built-in model first,
see ``layers.model_choices``), a Checkpoint… button, a device box and what is loaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy

from ..layers import model_choices


@dataclasses.dataclass
class Loaded:
    """A job's news: the model it loaded for ``key`` (stored by the widget in the GUI thread)."""

    model: object
    key: tuple


class ModelChoice:
    """Builds the model controls on ``owner`` (``model_combo``, ``checkpoint_button``,
    ``device_combo``, ``model_label``) and keeps the loaded model while the choice stays."""

    def __init__(self, owner, device_tip: str = "where SAM runs", show_label: bool = True):
        from ..sam.models import available_devices

        self.owner = owner
        self._bar = None  # napari's progress of a weights download
        self.model = None
        self.key: tuple | None = None
        o = owner
        o.model_combo = QComboBox(editable=True, toolTip="a SAM by name (small: the built-in model, works "
                                                         "offline; vit_b/l/h: Meta's, downloaded once), or the "
                                                         "path of a checkpoint file")
        o.model_combo.addItems(model_choices())
        o.model_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        o.checkpoint_button = QPushButton("Checkpoint…", toolTip="load a (fine-tuned) checkpoint file")
        o.device_combo = QComboBox(toolTip=device_tip)
        o.device_combo.addItems(["auto", *available_devices()])
        o.model_label = QLabel(wordWrap=True, styleSheet="color: gray;", visible=show_label)
        o.model_label.setTextFormat(Qt.TextFormat.PlainText)
        o.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.row = QHBoxLayout()
        self.row.addWidget(o.model_combo, 1)
        self.row.addWidget(o.checkpoint_button)
        o.model_combo.currentTextChanged.connect(lambda _: self.show())
        o.device_combo.currentTextChanged.connect(lambda _: self.show())
        o.checkpoint_button.clicked.connect(self._browse)
        self.show()

    def wanted(self) -> tuple:
        o = self.owner
        return (o.model_combo.currentText().strip(), o.device_combo.currentText().strip() or "auto")

    def set_model(self, model) -> None:
        source = getattr(model, "source", None)
        self.owner.model_combo.setCurrentText(str(source) if isinstance(source, Path) else model.config.name)
        self.model, self.key = model, self.wanted()
        self.show()

    def set_checkpoint(self, path) -> None:
        self.owner.model_combo.setCurrentText(str(Path(path).expanduser()))

    def current(self):
        """The loaded model if it is the chosen one, else None."""
        return self.model if self.model is not None and self.key == self.wanted() else None

    def show(self) -> None:
        model = self.current()
        if model is None:
            name, device = self.wanted()
            self.owner.model_label.setText(f"{name or '(no model)'} on {device}: loads at the first use")
        else:
            note = " — random weights: masks mean nothing until fine-tuned" if str(
                model.model_id).endswith(":random") else ""
            self.owner.model_label.setText(f"loaded: {model.model_id} on {model.device}{note}")

    def job_part(self, key):
        """In a job: the chosen model (loaded now unless it is loaded already)."""
        model = self.model if self.model is not None and self.key == key else None
        if model is None:
            from ..sam.models import ModelError, load_model
            from ..sam.weights import download_reports

            name, device = key
            if not name:
                raise ModelError("choose a model: small (built-in), vit_b, vit_l, vit_h or a checkpoint file")
            yield f"loading {name} on {device}…"
            yield from download_reports(name)  # Meta's weights, once: DownloadReports
            model = load_model(name, device)
            yield Loaded(model, key)
        return model

    def store(self, loaded: Loaded) -> None:
        self.close_download()
        self.model, self.key = loaded.model, loaded.key
        self.show()

    def on_item(self, item) -> bool:
        """A job's news this handles (``Loaded``: kept; ``DownloadReport``: shown); False for others."""
        from ..sam.weights import DownloadReport

        if isinstance(item, Loaded):
            self.store(item)
        elif isinstance(item, DownloadReport):
            self.show_download(item)
        else:
            return False
        return True

    def show_download(self, r) -> None:
        """A weights download in the model label and in napari's progress (closed on the last report)."""
        from napari.utils import progress

        if r.finished:
            self.close_download()
            return
        mb = 1 << 20
        self.owner.model_label.setText(f"downloading {r.name}: {r.done / mb:.0f} / {r.total / mb:.0f} MB"
                                       if r.total else f"downloading {r.name}…")
        if self._bar is None:
            self._bar = progress(total=r.total, desc=f"Downloading {r.name}")
        if r.total and self._bar.total != r.total:
            self._bar.total = r.total
        self._bar.update(r.done - self._bar.n)

    def close_download(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self.show()

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self.owner, "SAM checkpoint", "",
                                              "Checkpoints (*.pt *.pth *.ckpt *.bin);;All files (*)")
        if path:
            self.set_checkpoint(path)
