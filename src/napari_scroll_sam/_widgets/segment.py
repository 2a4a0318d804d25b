"""The "Segment" dock widget: prompt SAM on a slice, paste the mask, embed a volume.

A thin face over the plain API, which a script calls the same way::

    model = load_model("vit_b", "auto")
    embedder = SliceEmbedder(model, volume, mode)               # cache: the default folder
    prompts = prompts_on_slice(points_zyx, positive, boxes, z, volume.shape)
    pred = segment_slice(embedder, z, **prompts)
    paste_mask(labels, z, pred.masks.any(0), object_id)
    for report in embedder.embed(): ...                          # "Embed volume"

Prompts live in ordinary napari layers beside the image: a Points layer
``"<image> prompts"`` (feature ``positive``: green positive, red negative points),
a Shapes layer ``"<image> boxes"`` (rectangles) and the Labels layer
``"<image> masks"`` (uint32, the image's shape) that receives the masks.

The model loads, slices are encoded and masks predicted off the GUI thread
(napari's ``thread_worker``); ``NAPARI_SCROLL_SAM_SYNC=1`` runs the same jobs in the
GUI thread (tests). Embeddings are cached on disk (``NAPARI_SCROLL_SAM_CACHE`` or the
user cache folder), per volume, sampling mode, window and model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
    QPushButton, QRadioButton, QSizePolicy, QSpinBox, QVBoxLayout, QWidget,
)
from superqt import QCollapsible

from ..layers import model_choices, new_labels, prompts_in_image, volume_from_layer
from ..sam.layer_prompts import on_slice, paste_mask, prompts_on_slice
from ._workers import Job
from ._layers import refill_combo, volume_image_names
from ._errors import call_or_show, show_widget_error
from .propagate import PropagatePanel
from .sampling import ModeSelector

PROMPTS_SUFFIX, BOXES_SUFFIX, MASKS_SUFFIX = " prompts", " boxes", " masks"
#: ``layer.metadata[ROLE]`` marks the layers this widget made: ``{"role": …, "image": name}``
ROLE = "scroll_sam"
POSITIVE_COLOR, NEGATIVE_COLOR = "#20d020", "#ff3030"
MAX_OBJECT_ID = 2**31 - 1


@dataclasses.dataclass
class _Loaded:
    """A job's news: the model it loaded for ``key`` (stored by the widget in the GUI thread)."""

    model: object
    key: tuple


class SegmentWidget(QWidget):
    """Segment the current slice of an image layer with SAM, from point and box prompts.

    Public parts (for scripts and tests):

    ``image_combo``
        the 3D image layer to segment.
    ``model_combo``
        editable: ``vit_b``, ``vit_l``, ``vit_h``, ``small`` or a checkpoint path (typed, or
        chosen with ``checkpoint_button`` / ``set_checkpoint(path)``).
    ``device_combo``
        ``auto`` then ``available_devices()``.
    ``model_label``
        which model is loaded (a model stays loaded while model and device are unchanged).
    ``mode_selector``
        the sampling mode (a ``ModeSelector``, the same component as the Sampling widget):
        which slices "Embed volume" encodes and how a slice's three channels are made.
    ``prompt_button``
        adds (or finds) ``"<image> prompts"`` (Points, feature ``positive``),
        ``"<image> boxes"`` (Shapes: rectangles) and ``"<image> masks"`` (Labels); Segment
        adds them too when they are missing.
    ``positive_radio`` / ``negative_radio``
        whether new points are positive or negative: sets the points layer's
        ``feature_defaults["positive"]``, so plain clicks in napari's "add points" mode
        add points of that kind (no key needs to be held). ``set_positive(bool)``.
    ``object_id``
        spin box: the label the next mask is written with; ``new_object_button`` moves it
        past every id this widget wrote.
    ``overwrite_check``
        let a mask overwrite other objects' voxels (off: they are kept; see ``paste_mask``).
    ``segment_button``
        segments the current slice (``segment()``): the prompts on it → ``segment_slice``
        → ``paste_mask`` into the masks layer. Several boxes on the slice give one prompt
        each (with all the slice's points); their masks' union is pasted as the object.
    ``clear_button``
        removes the prompts (points, boxes) of the current slice.
    ``embed_button`` / ``cancel_button`` / ``progress_bar``
        encode the mode's slices into the embedding cache (``embed_volume()``), with
        progress here and in napari's activity panel; Cancel stops after the batch being
        encoded (slices done stay cached).
    ``status_label``
        what happened last (predicted IoU of the mask, embedding progress).
    ``error_label``
        the last error in red (also shown as a napari notification); cleared by the next
        action.
    ``propagate_panel``
        the "Propagate" group (a ``PropagatePanel``, in the collapsible ``propagate_section``):
        carries the masks layer's objects through the volume (``_widgets/propagate.py``).

    Methods: ``set_model(model)`` injects an already-loaded ``SamModel`` (used until the
    model or device choice changes), ``volume()``, ``current_z()``, ``embedder()``,
    ``prompt_layers()``, ``points_layer()``, ``boxes_layer()``, ``masks_layer()``.
    Signals: ``embed_report(EmbedReport)`` per slice; ``embed_finished(bool cancelled)`` and
    ``segment_finished(bool ok)`` when a job is over (its button enabled again), whether
    it succeeded, failed (error shown) or was cancelled.
    """

    embed_report = Signal(object)
    embed_finished = Signal(bool)
    segment_finished = Signal(bool)

    def __init__(self, napari_viewer):
        super().__init__()
        from ..sam.models import available_devices

        self.viewer = napari_viewer
        self._volumes: dict = {}
        self._model = None
        self._model_key: tuple | None = None
        self._embedder = None
        self._embedder_key: tuple | None = None
        self._segment_job: Job | None = None
        self._segment_ok = False
        self._embed_job: Job | None = None
        self._pbar = None
        self._max_id_written = 0
        self._embed_counts = {"cached": 0, "encoded": 0, "done": 0, "total": 0, "failed": False}

        self.image_combo = QComboBox(toolTip="the image layer to segment")
        self.model_combo = QComboBox(editable=True, toolTip="a SAM by name, or the path of a checkpoint file")
        self.model_combo.addItems(model_choices())  # the built-in small first unless vit_b is cached
        self.model_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.checkpoint_button = QPushButton("Checkpoint…", toolTip="load a (fine-tuned) checkpoint file")
        self.device_combo = QComboBox(toolTip="where SAM runs")
        self.device_combo.addItems(["auto", *available_devices()])
        self.model_label = QLabel(wordWrap=True, styleSheet="color: gray;")
        self.mode_selector = ModeSelector()

        self.prompt_button = QPushButton("Prompt layers",
                                         toolTip="add the points, boxes and masks layers for this image")
        self.positive_radio = QRadioButton("positive", checked=True, toolTip="new points mark the object")
        self.negative_radio = QRadioButton("negative", toolTip="new points mark what is not the object")
        self._polarity = QButtonGroup(self)
        self._polarity.addButton(self.positive_radio)
        self._polarity.addButton(self.negative_radio)
        self.object_id = QSpinBox(toolTip="the label the mask is written with")
        self.object_id.setRange(1, MAX_OBJECT_ID)
        self.new_object_button = QPushButton("New", toolTip="an id no mask of this widget has used yet")
        self.overwrite_check = QCheckBox("overwrite other objects",
                                         toolTip="off: voxels of other objects are kept")
        self.segment_button = QPushButton("Segment slice", toolTip="SAM on the current slice from its prompts")
        self.clear_button = QPushButton("Clear slice prompts", toolTip="remove the points and boxes of this slice")
        self.embed_button = QPushButton("Embed volume",
                                        toolTip="encode the sampling mode's slices into the embedding cache")
        self.cancel_button = QPushButton("Cancel", enabled=False, toolTip="stop embedding (slices done stay cached)")
        self.progress_bar = QProgressBar(visible=False, format="%v / %m slices")
        self.status_label = QLabel(wordWrap=True)
        self.error_label = QLabel(wordWrap=True, styleSheet="color: #e04040;", visible=False)
        for lbl in (self.status_label, self.error_label, self.model_label):
            lbl.setTextFormat(Qt.TextFormat.PlainText)
            lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.checkpoint_button)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Model", model_row)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.model_label)

        sampling_box = QGroupBox("Sampling")
        QVBoxLayout(sampling_box).addWidget(self.mode_selector)

        prompt_box = QGroupBox("Prompts")
        pform = QFormLayout(prompt_box)
        polarity = QHBoxLayout()
        polarity.addWidget(self.positive_radio)
        polarity.addWidget(self.negative_radio)
        polarity.addStretch(1)
        pform.addRow(self.prompt_button)
        pform.addRow("New points", polarity)
        id_row = QHBoxLayout()
        id_row.addWidget(self.object_id, 1)
        id_row.addWidget(self.new_object_button)
        pform.addRow("Object id", id_row)
        pform.addRow(self.overwrite_check)
        seg_row = QHBoxLayout()
        seg_row.addWidget(self.segment_button, 1)
        seg_row.addWidget(self.clear_button)
        pform.addRow(seg_row)

        embed_box = QGroupBox("Embedding cache")
        elay = QVBoxLayout(embed_box)
        erow = QHBoxLayout()
        erow.addWidget(self.embed_button, 1)
        erow.addWidget(self.cancel_button)
        elay.addLayout(erow)
        elay.addWidget(self.progress_bar)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(sampling_box)
        lay.addWidget(prompt_box)
        lay.addWidget(self.status_label)
        lay.addWidget(self.error_label)
        lay.addWidget(embed_box)
        self.propagate_panel = PropagatePanel(self)  # the "Propagate" group (see _widgets/propagate.py)
        self.propagate_section = QCollapsible("Propagate")  # collapsible: the widget is tall
        self.propagate_section.addWidget(self.propagate_panel)
        self.propagate_section.expand(animate=False)
        lay.addWidget(self.propagate_section)
        lay.addStretch(1)

        self.image_combo.currentIndexChanged.connect(self._on_image)
        self.model_combo.currentTextChanged.connect(lambda _: self._show_model())
        self.device_combo.currentTextChanged.connect(lambda _: self._show_model())
        self.checkpoint_button.clicked.connect(self._browse_checkpoint)
        self.prompt_button.clicked.connect(self._on_prompt_button)
        self.positive_radio.toggled.connect(lambda on: self.set_positive(on))
        self.new_object_button.clicked.connect(self.new_object)
        self.object_id.valueChanged.connect(self._sync_selected_label)
        self.segment_button.clicked.connect(lambda: self.segment())
        self.clear_button.clicked.connect(self.clear_slice_prompts)
        self.embed_button.clicked.connect(lambda: self.embed_volume())
        self.cancel_button.clicked.connect(self.cancel_embedding)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._on_layers)
        for ly in self.viewer.layers:
            ly.events.name.connect(self._on_layers)
        self._on_layers()
        self._show_model()

    # --- the image, its volume and the current slice -------------------------------------------
    @property
    def layer(self) -> Image | None:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def volume(self):
        """The image layer as a ``Volume`` (``layers.volume_from_layer``), or None."""
        layer = self.layer
        return None if layer is None else volume_from_layer(layer)

    def current_z(self) -> int | None:
        """The viewer's current slice (``dims``) in the image's data z, or None outside it."""
        layer, vol = self.layer, self.volume()
        if layer is None or vol is None:
            return None
        z = int(np.floor(float(layer.world_to_data(self.viewer.dims.point)[0]) + 0.5))
        return z if 0 <= z < vol.shape[0] else None

    # --- model ------------------------------------------------------------------------------------
    def _wanted_model_key(self) -> tuple:
        return (self.model_combo.currentText().strip(), self.device_combo.currentText().strip() or "auto")

    def set_model(self, model) -> None:
        """Use this loaded ``SamModel`` (until the model or device choice changes); the
        model box shows its source (a checkpoint path) or name."""
        source = getattr(model, "source", None)
        self.model_combo.setCurrentText(str(source) if isinstance(source, Path) else model.config.name)
        self._model = model
        self._model_key = self._wanted_model_key()
        self._show_model()

    def set_checkpoint(self, path) -> None:
        """Choose a checkpoint file as the model (loaded at the next Segment / Embed)."""
        self.model_combo.setCurrentText(str(Path(path).expanduser()))

    def _current_model(self):
        """The loaded model if it is the chosen one, else None."""
        return self._model if self._model is not None and self._model_key == self._wanted_model_key() else None

    def _show_model(self):
        model = self._current_model()
        if model is None:
            name, device = self._wanted_model_key()
            self.model_label.setText(f"{name or '(no model)'} on {device}: loads at the first Segment / Embed")
        else:
            note = " — random weights: masks mean nothing until fine-tuned" if str(
                model.model_id).endswith(":random") else ""
            self.model_label.setText(f"loaded: {model.model_id} on {model.device}{note}")

    def _browse_checkpoint(self):
        path, _ = QFileDialog.getOpenFileName(self, "SAM checkpoint", "",
                                              "Checkpoints (*.pt *.pth *.ckpt *.bin);;All files (*)")
        if path:
            self.set_checkpoint(path)

    def _model_job_part(self, key):
        """In a job: the chosen model (loaded now unless it is loaded already)."""
        model = self._model if self._model is not None and self._model_key == key else None
        if model is None:
            from ..sam.models import ModelError, load_model

            name, device = key
            if not name:
                raise ModelError("choose a model: vit_b, vit_l, vit_h, small or a checkpoint file")
            yield f"loading {name} on {device}…"
            model = load_model(name, device)
            yield _Loaded(model, key)
        return model

    def _store_model(self, loaded: _Loaded):
        self._model, self._model_key = loaded.model, loaded.key
        self._show_model()

    def embedder(self, model=None, volume=None, mode=None):
        """The ``SliceEmbedder`` Segment uses for this model, volume and mode (made when
        they change; it keeps recent slices in memory, the rest in the disk cache)."""
        from ..sam.embeddings import SliceEmbedder

        model = model or self._current_model()
        volume = volume or self.volume()
        mode = mode or self.mode_selector.mode()
        key = (model.model_id, str(model.device), volume.identity(), tuple(volume.contrast_limits), mode.key())
        if self._embedder is None or self._embedder_key != key:
            self._embedder, self._embedder_key = SliceEmbedder(model, volume, mode), key
        return self._embedder

    # --- prompt layers ----------------------------------------------------------------------------
    def _find(self, role: str):
        layer = self.layer
        if layer is None:
            return None
        kind = {"prompts": Points, "boxes": Shapes, "masks": Labels}[role]
        for ly in self.viewer.layers:
            tag = ly.metadata.get(ROLE)
            if isinstance(ly, kind) and isinstance(tag, dict) and tag.get("role") == role \
                    and tag.get("image") == layer.name:
                return ly
        name = layer.name + {"prompts": PROMPTS_SUFFIX, "boxes": BOXES_SUFFIX, "masks": MASKS_SUFFIX}[role]
        ly = self.viewer.layers[name] if name in self.viewer.layers else None
        return ly if isinstance(ly, kind) else None

    def points_layer(self) -> Points | None:
        return self._find("prompts")

    def boxes_layer(self) -> Shapes | None:
        return self._find("boxes")

    def masks_layer(self) -> Labels | None:
        return self._find("masks")

    def _geometry(self, layer):
        return {"scale": tuple(layer.scale), "translate": tuple(layer.translate)}

    def add_prompt_layers(self, select: bool = False):
        """Add the points, boxes and masks layers this image lacks; return (points, boxes, masks)."""
        layer, vol = self.layer, self.volume()
        if layer is None or vol is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        masks = self.masks_layer() or self._add_masks_layer(layer, vol)
        h, w = vol.shape[1:]
        size = float(np.clip(min(h, w) / 40, 4, 40))
        boxes = self.boxes_layer()
        if boxes is None:
            boxes = self.viewer.add_shapes(
                ndim=3, name=layer.name + BOXES_SUFFIX, shape_type="rectangle", edge_color="yellow",
                face_color="transparent", edge_width=max(1.0, size / 5),
                metadata={ROLE: {"role": "boxes", "image": layer.name}}, **self._geometry(layer))
        points = self.points_layer()
        if points is None:
            points = self.viewer.add_points(
                np.empty((0, 3)), ndim=3, name=layer.name + PROMPTS_SUFFIX,
                features={"positive": np.zeros(0, bool)},
                feature_defaults={"positive": self.positive_radio.isChecked()},
                face_color="positive", face_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR},
                border_color="white", border_width=0.1, size=size, out_of_slice_display=False,
                metadata={ROLE: {"role": "prompts", "image": layer.name}}, **self._geometry(layer))
            select = True
        if select:
            self.viewer.layers.selection.active = points
            points.mode = "add"
        return points, boxes, masks

    def _on_prompt_button(self):
        self._clear_error()
        self._try(self.add_prompt_layers, select=True)

    def prompt_layers(self):
        """(points, boxes, masks) layers of the current image (None where missing)."""
        return self.points_layer(), self.boxes_layer(), self.masks_layer()

    def _add_masks_layer(self, layer, vol) -> Labels:
        data = new_labels(vol.shape)
        masks = self.viewer.add_labels(data, name=layer.name + MASKS_SUFFIX, opacity=0.5,
                                       metadata={ROLE: {"role": "masks", "image": layer.name}},
                                       **self._geometry(layer))
        masks.selected_label = self.object_id.value()
        return masks

    def set_positive(self, positive: bool) -> None:
        """New points are positive (True) or negative: ``feature_defaults["positive"]``."""
        positive = bool(positive)
        if self.positive_radio.isChecked() != positive:
            (self.positive_radio if positive else self.negative_radio).setChecked(True)
            return  # the toggled signal comes back here
        points = self.points_layer()
        if points is not None and "positive" in points.features:
            points.feature_defaults = {"positive": positive}

    def new_object(self) -> None:
        """Move the object id past every id this widget has written (and the current one)."""
        self.object_id.setValue(min(max(self._max_id_written, self.object_id.value()) + 1, MAX_OBJECT_ID))

    def _sync_selected_label(self, value):
        masks = self.masks_layer()
        if masks is not None:
            masks.selected_label = int(value)

    def _prompts_in_image(self, z_world):
        """Points (M, 3), positive (M,), boxes [(4, 3)…] in the image's data coordinates."""
        return prompts_in_image(self.layer, self.points_layer(), self.boxes_layer(), z_world)

    def clear_slice_prompts(self) -> None:
        """Remove the points and boxes that lie on the current slice."""
        z = self.current_z()
        if z is None:
            return
        z_world = float(self.viewer.dims.point[-3]) if self.viewer.dims.ndim >= 3 else 0.0
        pts, _, rects = self._prompts_in_image(z_world)
        points, boxes = self.points_layer(), self.boxes_layer()
        if points is not None and len(pts):
            drop = np.flatnonzero(on_slice(pts[:, 0], z))
            if len(drop):
                points.selected_data = set(drop.tolist())
                points.remove_selected()
        if boxes is not None:
            rect_idx = [i for i, t in enumerate(boxes.shape_type) if t == "rectangle"]
            drop = [i for i, r in zip(rect_idx, rects) if np.all(on_slice(r[:, 0], z))]
            if drop:
                boxes.selected_data = set(drop)
                boxes.remove_selected()

    # --- segment ------------------------------------------------------------------------------------
    def segment(self) -> None:
        """Segment the current slice from its prompts into the masks layer (errors shown here)."""
        if self._segment_job is not None and self._segment_job.running:
            return
        self._clear_error()
        prepared = self._try(self._prepare_segment)
        if prepared is None:
            self.segment_finished.emit(False)
            return
        self.segment_button.setEnabled(False)
        self.status_label.setText(f"segmenting slice {prepared['z']}…")
        self._segment_ok = False
        self._segment_job = Job(self._segment_job_gen(prepared), on_yield=self._on_job_item,
                                on_return=self._paste, on_error=self._on_segment_error,
                                on_finish=self._on_segment_finished)
        self._segment_job.start()

    def _on_segment_finished(self, cancelled: bool):
        self.segment_button.setEnabled(self.layer is not None)
        self.segment_finished.emit(bool(self._segment_ok and not cancelled))

    def _prepare_segment(self) -> dict:
        layer, vol = self.layer, self.volume()
        if layer is None or vol is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        z = self.current_z()
        if z is None:
            raise ValueError("the current slice is outside the image: move the z slider onto it")
        mode = self.mode_selector.mode()
        if self.points_layer() is None or self.boxes_layer() is None:
            self.add_prompt_layers()
        z_world = float(self.viewer.dims.point[-3]) if self.viewer.dims.ndim >= 3 else 0.0
        pts, pos, rects = self._prompts_in_image(z_world)
        prompts = prompts_on_slice(pts, pos, rects, z, vol.shape)
        return {"z": z, "prompts": prompts, "volume": vol, "mode": mode, "key": self._wanted_model_key(),
                "object_id": self.object_id.value(), "overwrite": self.overwrite_check.isChecked(),
                "image": layer.name}

    def _segment_job_gen(self, p):
        from ..sam.segment import segment_slice

        model = yield from self._model_job_part(p["key"])
        emb = self.embedder(model, p["volume"], p["mode"])
        if not emb.is_cached(p["z"]):
            yield f"encoding slice {p['z']}…"
        pred = segment_slice(emb, p["z"], **p["prompts"])
        return p, pred

    def _on_job_item(self, item):
        if isinstance(item, _Loaded):
            self._store_model(item)
        elif isinstance(item, str):
            self.status_label.setText(item)

    def _paste(self, result):
        p, pred = result

        def paste():
            layer = self.layer
            if layer is None or layer.name != p["image"]:
                raise ValueError(f"the image {p['image']!r} is no longer the chosen one: nothing was pasted")
            masks = self.masks_layer() or self._add_masks_layer(layer, p["volume"])
            if tuple(masks.data.shape) != tuple(p["volume"].shape):
                raise ValueError(f"the masks layer {masks.name!r} has shape {tuple(masks.data.shape)}, not the "
                                 f"image's {tuple(p['volume'].shape)}: nothing was pasted")
            mask = np.asarray(pred.masks).any(axis=0)
            n = paste_mask(masks.data, p["z"], mask, p["object_id"], overwrite=p["overwrite"])
            masks.refresh()
            return n

        n = self._try(paste)
        if n is None:
            return
        self._max_id_written = max(self._max_id_written, p["object_id"])
        ious = ", ".join(f"{v:.2f}" for v in np.asarray(pred.iou, float))
        kept = int(np.asarray(pred.masks).any(axis=0).sum())
        extra = f" (union of {len(pred.masks)} box prompts)" if len(pred.masks) > 1 else ""
        others = f"; {kept - n} px kept for other objects" if kept > n else ""
        self.status_label.setText(f"slice {p['z']}, object {p['object_id']}: {n} px{extra}{others}; "
                                  f"predicted IoU {ious}")
        self._segment_ok = True

    def _on_segment_error(self, exc):
        self.status_label.setText("")
        self._show_error(exc)

    # --- embed ----------------------------------------------------------------------------------------
    def embed_volume(self) -> None:
        """Encode the sampling mode's slices into the embedding cache (cancel: ``cancel_button``)."""
        if self._embed_job is not None and self._embed_job.running:
            return
        self._clear_error()

        def prepare():
            vol = self.volume()
            if vol is None:
                raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
            return vol, self.mode_selector.mode(), self._wanted_model_key()

        prepared = self._try(prepare)
        if prepared is None:
            self.embed_finished.emit(False)
            return
        self.embed_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first report
        self.progress_bar.setVisible(True)
        self.status_label.setText("embedding: choosing slices…")
        self._embed_counts = {"cached": 0, "encoded": 0, "done": 0, "total": 0, "failed": False}
        self._embed_job = Job(self._embed_job_gen(*prepared), on_yield=self._on_embed_item,
                              on_error=self._on_embed_error, on_finish=self._on_embed_finished)
        self._embed_job.start()

    def _embed_job_gen(self, vol, mode, key):
        from ..sam.embeddings import SliceEmbedder

        model = yield from self._model_job_part(key)
        # its own embedder: Segment may use the other one meanwhile; they share the disk cache
        emb = SliceEmbedder(model, vol, mode)
        reports = emb.embed()
        try:
            yield from reports
        finally:
            reports.close()

    def _on_embed_item(self, item):
        from ..sam.embeddings import EmbedReport

        if not isinstance(item, EmbedReport):
            self._on_job_item(item)
            return
        c = self._embed_counts
        c["cached" if item.cached else "encoded"] += 1
        c["done"], c["total"] = item.done, item.total
        self.progress_bar.setRange(0, item.total)
        self.progress_bar.setValue(item.done)
        self.status_label.setText(f"embedding: {item.done} / {item.total} slices "
                                  f"({c['cached']} already cached)")
        self.embed_report.emit(item)
        if self._embed_job is not None and self._embed_job.cancelled:
            return
        from napari.utils import progress

        if self._pbar is None:  # napari's activity panel (its bar processes Qt events)
            self._pbar = progress(total=item.total, desc=f"Embedding {self.image_combo.currentText()}")
        self._pbar.update(item.done - self._pbar.n)

    def _on_embed_error(self, exc):
        self._embed_counts["failed"] = True
        self._show_error(exc)

    def cancel_embedding(self) -> None:
        """Stop embedding after the batch being encoded; the slices done stay cached."""
        if self._embed_job is not None and self._embed_job.running:
            self.status_label.setText("cancelling after the current batch…")
            self.cancel_button.setEnabled(False)
            self._embed_job.cancel()

    def _on_embed_finished(self, cancelled: bool):
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.embed_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        c = self._embed_counts
        if self.progress_bar.maximum() == 0:  # never reported
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setVisible(False)
        if cancelled:
            self.status_label.setText(f"embedding cancelled after {c['done']} of {c['total']} slices "
                                      f"(they stay in the cache; Embed again resumes)")
        elif not c["failed"]:
            self.status_label.setText(f"embedded {c['done']} slices ({c['encoded']} encoded now, "
                                      f"{c['cached']} from the cache)")
        else:
            self.status_label.setText(f"embedding stopped after {c['done']} of {c['total']} slices "
                                      f"(they stay in the cache)")
        self.embed_finished.emit(cancelled)

    # --- events ------------------------------------------------------------------------------------
    def _on_inserted(self, event):
        event.value.events.name.connect(self._on_layers)
        self._on_layers()

    def _on_layers(self, *_):
        if refill_combo(self.image_combo, volume_image_names(self.viewer)):
            self._on_image()
        else:
            self._offer_arrays()

    def _on_image(self, *_):
        vol = self._try(self.volume)
        if vol is not None:
            self.mode_selector.set_n_slices(vol.shape[0])
        self._offer_arrays()
        has = self.layer is not None
        for w in (self.prompt_button, self.segment_button, self.embed_button, self.clear_button):
            w.setEnabled(has and not (w is self.embed_button and self._embed_job is not None
                                      and self._embed_job.running))
        points = self.points_layer()
        if points is not None and "positive" in points.features:
            self.set_positive(bool(points.feature_defaults["positive"].iloc[0]))
        self.propagate_panel.on_image()

    def _offer_arrays(self):
        """Labels layers of the image's shape (the masks among them) for the filter's rules."""
        vol = self.volume() if self.layer is not None else None
        arrays = {}
        if vol is not None:
            for ly in self.viewer.layers:
                if isinstance(ly, Labels) and not ly.multiscale and tuple(ly.data.shape) == tuple(vol.shape):
                    arrays[ly.name] = ly.data
        self.mode_selector.set_arrays(arrays)

    # --- errors --------------------------------------------------------------------------------------
    def _clear_error(self):
        self.error_label.clear()
        self.error_label.hide()

    def _show_error(self, exc):
        show_widget_error(self.error_label, exc)

    def _try(self, fn, *args, **kwargs):
        """``fn()``, or None with the error shown in red and as a notification."""
        return call_or_show(self.error_label, fn, *args, **kwargs)

    def closeEvent(self, event):  # noqa: N802 - Qt
        for job in (self._embed_job, self._segment_job):
            if job is not None:
                job.cancel()
        self.propagate_panel.cancel()
        super().closeEvent(event)


__all__ = ["SegmentWidget"]
