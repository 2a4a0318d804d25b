"""The "Segment" dock widget: prompt SAM on a slice, work on one object at a time, commit it.

A face over the plain API, which a script calls the same way::

    vol = volume_from_layer(image_layer)                      # layers.py
    embedder = SliceEmbedder(load_model("small_hr"), vol, mode)  # cache: the default folder
    pred = segment_slice(embedder, z, **prompts_on_slice(points_zyx, positive, boxes, z, vol.shape))
    session = ObjectSession(masks, scratch)                   # annotate.py
    session.set_slice(z, pred.masks.any(0), object_id)        # S
    for r in session.propagate(embedder, object_id): ...      # Shift+S
    session.commit(object_id)                                 # C   (session.clear(): Shift+C, undo(): Ctrl+Z)

Layers beside the image (``_prompt_layers.py``): ``"<image> prompts"`` (Points, feature
``positive``), ``"<image> boxes"`` (Shapes), ``"<image> current object"`` (the scratch
object) and ``"<image> masks"`` (the committed objects; the Propagate section and Train
read it). The model loads, slices are encoded and masks predicted off the GUI thread
(``_workers.Job``; ``NAPARI_SCROLL_SAM_SYNC=1`` runs the jobs in the GUI thread, tests).

Public parts: ``image_combo``, ``model_combo`` / ``checkpoint_button`` / ``device_combo`` /
``model_label`` (the built-in ``small_hr`` is the default unless ``vit_b`` is cached),
``mode_selector``, ``prompt_button``, ``positive_radio`` / ``negative_radio``, ``object_id``,
``new_object_button`` (= Next object), ``overwrite_check``, ``clear_prompts_button``,
``objects_panel`` (``segment_button``, ``other_button``, ``volume_button``, ``commit_button``, ``clear_button``,
``next_button``, ``undo_button``), ``embed_section`` (``embed_button``, ``cancel_button``,
``progress_bar``), ``propagate_panel``, ``status_label``, ``error_label``. Signals:
``embed_report``, ``embed_finished(bool cancelled)``, ``segment_finished(bool ok)``,
``volume_finished(bool ok)``, ``volume_report(SliceReport)``.
"""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QPushButton, QRadioButton, QSpinBox, QWidget,
)

from ..layers import data_z, labels_of_shape, prompts_in_image, volume_from_layer
from . import _prompt_layers as PL
from ._errors import call_or_show, show_widget_error
from ._layers import MAX_OBJECT_ID, refill_combo, volume_image_names
from ._layout import scrolled, section, status_label
from ._model import ModelChoice
from ._workers import warm_activity_panel
from .embed import EmbedSection
from .objects import ObjectsPanel
from .propagate import PropagatePanel
from .slice_job import SliceJob
from .sampling import ModeSelector

BOXES_SUFFIX, MASKS_SUFFIX, PROMPTS_SUFFIX, SCRATCH_SUFFIX = (PL.BOXES_SUFFIX, PL.MASKS_SUFFIX, PL.PROMPTS_SUFFIX,
                                                              PL.SCRATCH_SUFFIX)
ROLE = PL.ROLE


class SegmentWidget(QWidget):
    embed_report = Signal(object)
    embed_finished = Signal(bool)
    segment_finished = Signal(bool)
    volume_finished = Signal(bool)
    volume_report = Signal(object)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer

        self.image_combo = QComboBox(toolTip="the image layer to segment (follows the selected image layer)")
        self.models = ModelChoice(self)
        self.mode_selector = ModeSelector()
        self.prompt_button = QPushButton("Prompt layers", toolTip="add the prompt, object and masks layers")
        self.positive_radio = QRadioButton("positive", checked=True, toolTip="new points mark the object")
        self.negative_radio = QRadioButton("negative", toolTip="new points mark what is not the object")
        self._polarity = QButtonGroup(self)
        self._polarity.addButton(self.positive_radio)
        self._polarity.addButton(self.negative_radio)
        self.object_id = QSpinBox(toolTip="the current object's id (each object keeps its prompts)")
        self.object_id.setRange(1, MAX_OBJECT_ID)
        self.overwrite_check = QCheckBox("overwrite other objects", toolTip="off: voxels of other objects are kept")
        self.clear_prompts_button = QPushButton("Clear slice prompts", toolTip="remove the points and boxes of "
                                                                               "this slice")
        self.status_label, self.error_label = status_label(), status_label("#e04040", visible=False)
        self.slice_job = SliceJob(self)
        self.objects_panel = ObjectsPanel(self)
        self.new_object_button = self.objects_panel.next_button
        self.segment_button = self.objects_panel.segment_button
        self.embed_section = EmbedSection(self)
        self.embed_button, self.cancel_button = self.embed_section.embed_button, self.embed_section.cancel_button
        self.progress_bar = self.embed_section.progress_bar

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Model", self.models.row)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.model_label)
        pform = QFormLayout()
        polarity = QHBoxLayout()
        polarity.addWidget(self.positive_radio)
        polarity.addWidget(self.negative_radio)
        polarity.addStretch(1)
        pform.addRow(self.prompt_button)
        pform.addRow("New points", polarity)
        pform.addRow("Object id", self.object_id)
        pform.addRow(self.overwrite_check)
        pform.addRow(self.objects_panel)
        pform.addRow(self.clear_prompts_button)
        lay = scrolled(self)
        lay.addLayout(form)
        lay.addWidget(section("Objects  (S, O, Shift+S, C, Shift+C, N, Ctrl+Z)", pform))
        lay.addWidget(self.status_label)
        lay.addWidget(self.error_label)
        lay.addWidget(section("Sampling", self.mode_selector, expanded=False))
        lay.addWidget(section("Embedding cache", self.embed_section, expanded=False))
        self.propagate_panel = PropagatePanel(self)  # _widgets/propagate.py
        self.propagate_section = section("Propagate (all objects, settings)", self.propagate_panel, expanded=False)
        lay.addWidget(self.propagate_section)
        lay.addStretch(1)

        self.image_combo.currentIndexChanged.connect(self._on_image)
        self.prompt_button.clicked.connect(lambda: (self._clear_error(), self._try(self.add_prompt_layers, True)))
        self.positive_radio.toggled.connect(lambda on: self.set_positive(on))
        self.object_id.valueChanged.connect(self.objects_panel.on_object_id)
        self.clear_prompts_button.clicked.connect(self.clear_slice_prompts)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._on_layers)
        self.viewer.layers.selection.events.active.connect(self._on_selected)
        for ly in self.viewer.layers:
            ly.events.name.connect(self._on_layers)
        self._on_layers()
        warm_activity_panel()

    # --- the image, its volume and the current slice -------------------------------------------
    @property
    def layer(self):
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def volume(self):
        """The image layer as a ``Volume`` (``layers.volume_from_layer``), or None."""
        return None if self.layer is None else volume_from_layer(self.layer)

    def current_z(self) -> int | None:
        """The viewer's current slice in the image's data z, or None outside it."""
        layer, vol = self.layer, self.volume()
        return None if layer is None or vol is None else data_z(layer, self.viewer.dims.point, vol.shape[0])

    def _z_world(self) -> float:
        return float(self.viewer.dims.point[-3]) if self.viewer.dims.ndim >= 3 else 0.0

    # --- model (ModelChoice; the Propagate panel calls these) -----------------------------------
    def set_model(self, model) -> None:
        """Use this loaded ``SamModel`` until the model or device choice changes."""
        self.models.set_model(model)

    def set_checkpoint(self, path) -> None:
        self.models.set_checkpoint(path)

    def _wanted_model_key(self) -> tuple:
        return self.models.wanted()

    def _model_job_part(self, key):
        return (yield from self.models.job_part(key))

    # --- layers ------------------------------------------------------------------------------------
    def points_layer(self):
        return PL.find(self.viewer, self.layer, "prompts")

    def boxes_layer(self):
        return PL.find(self.viewer, self.layer, "boxes")

    def masks_layer(self):
        return PL.find(self.viewer, self.layer, "masks")

    def scratch_layer(self):
        return PL.find(self.viewer, self.layer, "scratch")

    def prompt_layers(self):
        """(points, boxes, masks) layers of the current image (None where missing)."""
        return self.points_layer(), self.boxes_layer(), self.masks_layer()

    def _add_masks_layer(self, layer, vol):
        masks = PL.add_labels(self.viewer, layer, vol, "masks")
        masks.selected_label = self.object_id.value()
        return masks

    def add_prompt_layers(self, select: bool = False):
        """Add the prompt, box, current-object and masks layers this image lacks; (points, boxes, masks)."""
        layer, vol = self.layer, self.volume()
        if layer is None or vol is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        masks = self.masks_layer() or self._add_masks_layer(layer, vol)
        if self.scratch_layer() is None:
            PL.add_labels(self.viewer, layer, vol, "scratch")
        points, boxes, made = PL.add_prompts(self.viewer, layer, vol, self.positive_radio.isChecked())
        for provider in (layer, points, boxes):
            self.objects_panel.bind_keys(provider)
        if select or made:
            self.viewer.layers.selection.active = points
            points.mode = "add"
        return points, boxes, masks

    def _prompts_in_image(self, z_world, state=None):
        """Points (M, 3), positive (M,), boxes [(4, 3)…] in the image's data coordinates (of
        the layers, or of an object's kept ``state``)."""
        return prompts_in_image(self.layer, self.points_layer(), self.boxes_layer(), z_world, state)

    def set_positive(self, positive: bool) -> None:
        """New points are positive (True) or negative: ``feature_defaults["positive"]``."""
        positive = bool(positive)
        if self.positive_radio.isChecked() != positive:
            (self.positive_radio if positive else self.negative_radio).setChecked(True)
            return  # the toggled signal comes back here
        points = self.points_layer()
        if points is not None and "positive" in points.features:
            points.feature_defaults = {"positive": positive}

    # --- objects ------------------------------------------------------------------------------------
    def new_object(self) -> None:
        """Next object (N): the current one is committed if it has voxels; a fresh id."""
        self._try(self.objects_panel.next_object)

    def clear_slice_prompts(self) -> None:
        """Remove the points and boxes that lie on the current slice."""
        z = self.current_z()
        if z is not None:
            PL.clear_on_slice(self.points_layer(), self.boxes_layer(), *self._prompts_in_image(self._z_world()), z)

    # --- segment slice (S): slice_job.SliceJob -----------------------------------------------
    def segment(self) -> None:
        """Segment the current slice from its prompts into the current object (errors shown here)."""
        self.slice_job.start()

    def _on_job_item(self, item):
        if not self.models.on_item(item) and isinstance(item, str):  # the model loaded, a download, news
            self.status_label.setText(item)

    def embed_volume(self) -> None:
        self.embed_section.embed()

    def cancel_embedding(self) -> None:
        self.embed_section.cancel()

    # --- events ------------------------------------------------------------------------------------
    def _on_inserted(self, event):
        event.value.events.name.connect(self._on_layers)
        self._on_layers()

    def _on_selected(self, event=None):
        """Follow the selected image layer."""
        ly = self.viewer.layers.selection.active
        if ly is not None and ly.name in volume_image_names(self.viewer) and ly.name != self.image_combo.currentText():
            self.image_combo.setCurrentText(ly.name)

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
        for w in (self.prompt_button, self.segment_button, self.objects_panel.other_button, self.clear_prompts_button):
            w.setEnabled(has)
        self.embed_button.setEnabled(has and not self.embed_section.running)
        points = self.points_layer()
        if points is not None and "positive" in points.features:
            self.set_positive(bool(points.feature_defaults["positive"].iloc[0]))
        self.propagate_panel.on_image()

    def _offer_arrays(self):
        """Labels layers of the image's shape (the masks among them) for the filter's rules."""
        vol = self.volume() if self.layer is not None else None
        self.mode_selector.set_arrays({} if vol is None else labels_of_shape(self.viewer.layers, vol.shape))

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
        for job in (self.embed_section.job, self.slice_job.job, self.objects_panel.job):
            if job is not None:
                job.cancel()
        self.objects_panel.unbind_keys()
        self.propagate_panel.cancel()
        super().closeEvent(event)


__all__ = ["SegmentWidget"]
