"""The "Volume" dock widget: open a volume, read its facts, show a pyramid level, crop.

A thin face over the plain API: every button calls ``open_volume``,
``Volume.level``, ``Volume.crop`` and ``volume_layers``, which a script can call
the same way. Layers stay lazy (dask); nothing here reads voxels.
"""

from __future__ import annotations

from pathlib import Path

from napari.layers import Layer
from qtpy.QtCore import Qt
from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import (
    QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QMenu, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from ..io.reader import volume_layers
from ._errors import call_or_show, clear_widget_error
from ..io.open import open_volume
from ..io.volume import Volume

AXES = "zyx"
Z_HALF = 16  # "From view": the current slice +- this many slices


class VolumeWidget(QWidget):
    """Open a volume and work with it; follows the selected image layer (its
    ``metadata["volume"]``, or the layer wrapped as a Volume).

    Public parts: ``path_edit``, ``browse_button`` (menu: folder / file), ``open_button``,
    ``volume_combo`` (volumes of a volpkg), ``info_label``, ``error_label``, ``level_combo``,
    ``show_level_button``, ``ranges`` (``{"z": (start, stop), ...}`` spin boxes),
    ``from_view_button``, ``crop_button``; ``volume`` is the current ``Volume``.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.volume: Volume | None = None
        self._follow = True  # follow the active layer's volume

        self.path_edit = QLineEdit(placeholderText="volume folder or file")
        self.browse_button = QPushButton("Browse…")
        menu = QMenu(self.browse_button)
        menu.addAction("Folder… (slices, zarr, volpkg)", self._browse_folder)
        menu.addAction("File… (TIFF, NRRD, image)", self._browse_file)
        self.browse_button.setMenu(menu)
        self.browse_button.setStyleSheet("QPushButton::menu-indicator { image: none; width: 0px; }")
        self.open_button = QPushButton("Open")
        self.volume_combo = QComboBox(toolTip="volumes of this volpkg")
        self.error_label = QLabel(wordWrap=True, styleSheet="color: #e04040;", visible=False)
        self.info_label = QLabel("no volume", wordWrap=True)
        self.info_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.level_combo = QComboBox()
        self.show_level_button = QPushButton("Show level")
        self.ranges = {a: (QSpinBox(), QSpinBox()) for a in AXES}
        self.from_view_button = QPushButton("From view")
        self.crop_button = QPushButton("Crop")

        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse_button)
        row.addWidget(self.open_button)
        level_row = QHBoxLayout()
        level_row.addWidget(self.level_combo, 1)
        level_row.addWidget(self.show_level_button)
        crop_box = QGroupBox("Crop (voxels of the level)")
        grid = QGridLayout(crop_box)
        for i, a in enumerate(AXES):
            start, stop = self.ranges[a]
            grid.addWidget(QLabel(a), i, 0)
            grid.addWidget(start, i, 1)
            grid.addWidget(QLabel(":"), i, 2)
            grid.addWidget(stop, i, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.from_view_button)
        buttons.addWidget(self.crop_button)
        grid.addLayout(buttons, 3, 0, 1, 4)
        form = self._form = QFormLayout()
        form.addRow("Volume", self.volume_combo)
        form.addRow("Level", level_row)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.error_label)
        lay.addLayout(form)
        lay.addWidget(self.info_label)
        lay.addWidget(crop_box)
        lay.addStretch(1)

        self.path_edit.returnPressed.connect(self.open_path)
        self.open_button.clicked.connect(lambda: self.open_path())
        self.volume_combo.activated.connect(lambda _: self.open_path(volume=self.volume_combo.currentText()))
        self.level_combo.currentIndexChanged.connect(self._reset_ranges)
        self.show_level_button.clicked.connect(self.show_level)
        self.from_view_button.clicked.connect(self.from_view)
        self.crop_button.clicked.connect(self.crop)
        self.viewer.layers.selection.events.active.connect(self._on_active)
        self.set_volume(None)
        self._on_active()

    # --- actions (each one a call of the plain API) -----------------------------
    def open_path(self, path: str | None = None, volume: str | None = None) -> Volume | None:
        """``open_volume(path, volume=volume)`` and add its layers; errors go to the widget."""
        if path is None and volume is not None and self.volume is not None and "volpkg" in self.volume.metadata:
            path = self.volume.metadata["volpkg"]  # another volume of the current volpkg
        path = str(path or self.path_edit.text()).strip()
        self.path_edit.setText(path)
        vol = self._try(lambda: open_volume(path, volume=volume) if path else _fail("give a path to open"))
        if vol is not None:
            self._add(volume_layers(vol))
            self.set_volume(vol)
        return vol

    def show_level(self) -> None:
        """Add the chosen pyramid level alone: ``volume_layers(vol.level(i))``."""
        i = self.level_combo.currentIndex()
        lv = self._try(lambda: self.volume.level(i))
        if lv is not None:
            lv.name = f"{self.volume.name} [level {i}]"
            self._add(volume_layers(lv, extras=False), follow=False)

    def crop(self) -> None:
        """Add a lazy layer of ``vol.crop(z=..., y=..., x=..., level=...)`` at its place."""
        level = max(self.level_combo.currentIndex(), 0)
        rng = {a: (s.value(), e.value()) for a, (s, e) in self.ranges.items()}
        c = self._try(lambda: self.volume.crop(**rng, level=level))
        if c is not None:
            c.name = f"{self.volume.name} [crop " + " ".join(f"{a} {b}:{e}" for a, (b, e) in rng.items()) + (
                f" level {level}]" if level else "]")
            self._add(volume_layers(c, extras=False), follow=False)

    def from_view(self) -> None:
        """Fill z with the current slice +-16 and, in a plain 2D (y, x) view, y/x with the
        visible part of the canvas (all in voxels of the chosen level, clamped)."""
        if self.volume is None:
            return
        lv = self.volume.level(max(self.level_combo.currentIndex(), 0))
        dims = self.viewer.dims
        if dims.ndim != 3:
            return
        to_index = lambda ax, w: (w - lv.translate[ax]) / lv.voxel_size[ax]  # noqa: E731
        z = round(to_index(0, dims.point[0]))
        self._set_range("z", z - Z_HALF, z + Z_HALF + 1, lv.shape[0])
        if dims.ndisplay == 2 and tuple(dims.displayed) == (1, 2):
            cam = self.viewer.camera
            for ax, half in ((1, self.viewer.canvas.size[0] / 2), (2, self.viewer.canvas.size[1] / 2)):
                lo, hi = (to_index(ax, cam.center[ax] + d * half / cam.zoom) for d in (-1, 1))
                if hi > 0 and lo < lv.shape[ax]:
                    self._set_range(AXES[ax], int(lo), int(hi + 0.999), lv.shape[ax])

    # --- state ------------------------------------------------------------------
    def set_volume(self, vol: Volume | None) -> None:
        """Make ``vol`` the current volume: info, volpkg choices, levels, crop ranges."""
        self.volume = vol
        self.volume_combo.clear()
        self.level_combo.blockSignals(True)
        self.level_combo.clear()
        if vol is None:
            self.info_label.setText("no volume: open one, or select an image layer")
        else:
            lines = [ln for ln in vol.describe().splitlines() if not ln.startswith(("path:", "levels:", "also"))]
            if vol.multiscale:
                lines.append(f"levels:      {len(vol.levels)} (see Level)")
            self.info_label.setText(f"{vol.name}\n" + "\n".join(lines))
            if vol.choices and vol.path is not None:
                self.volume_combo.addItems(sorted([vol.path.name, *vol.choices]))
                self.volume_combo.setCurrentText(vol.path.name)
            for i, arr in enumerate(vol.levels):
                self.level_combo.addItem(f"{i}: " + " × ".join(map(str, arr.shape)))
        self.level_combo.blockSignals(False)
        for w in (self.volume_combo, self.level_combo, self.show_level_button, self.from_view_button,
                  self.crop_button, *(s for pair in self.ranges.values() for s in pair)):
            w.setEnabled(vol is not None)
        for w in (self.volume_combo, self._form.labelForField(self.volume_combo)):
            w.setVisible(bool(vol is not None and vol.choices))
        self._reset_ranges()

    def _reset_ranges(self, *_):
        """Limit the spin boxes to the chosen level's shape; whole volume by default."""
        i = self.level_combo.currentIndex()
        shape = self.volume.levels[i].shape if self.volume is not None and i >= 0 else (0, 0, 0)
        for a, n in zip(AXES, shape):
            self._set_range(a, 0, n, n)

    def _set_range(self, axis: str, start: int, stop: int, n: int) -> None:
        s, e = self.ranges[axis]
        s.setRange(0, max(n - 1, 0))
        e.setRange(min(n, 1), n)
        s.setValue(min(max(start, 0), max(n - 1, 0)))
        e.setValue(min(max(stop, 1), n))

    def _on_active(self, *_):
        """Follow the selected image layer: the plugin's volume, or any napari image layer
        wrapped as a Volume (``layers.volume_from_layer``: its scale and window)."""
        from napari.layers import Image

        from ..layers import volume_from_layer

        layer = self.viewer.layers.selection.active
        if not self._follow or not isinstance(layer, Image) or "sampling_preview" in layer.metadata:
            return
        try:
            vol = volume_from_layer(layer)
        except Exception as e:  # noqa: BLE001 - an RGB or 2D image: say so, keep nothing
            self.set_volume(None)
            self.info_label.setText(f"{e}")
            return
        if vol is not self.volume:
            self.set_volume(vol)

    # --- helpers ----------------------------------------------------------------
    def _try(self, fn):
        """``fn()``, or None with the error in the red label and a napari notification."""
        clear_widget_error(self.error_label)
        return call_or_show(self.error_label, fn)

    def _add(self, layer_data: list, follow: bool = True) -> None:
        """Add layer-data tuples; ``follow=False`` keeps the current volume (so that
        several crops of one volume follow each other) although a new layer is active."""
        self._follow = follow
        try:
            for data, meta, kind in layer_data:
                self.viewer.add_layer(Layer.create(data, meta, kind))
        finally:
            self._follow = True

    def _browse_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Open a volume folder", self._start_dir())
        if path:
            self.path_edit.setText(path)
            self.open_path()

    def _browse_file(self):
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a volume file", self._start_dir(),
            "Volumes (*.tif *.tiff *.btf *.nrrd *.nhdr *.png *.jpg *.zarray *.zgroup zarr.json);;All files (*)")
        if path:
            name = Path(path).name
            self.path_edit.setText(str(Path(path).parent) if name in (".zarray", ".zgroup", "zarr.json") else path)
            self.open_path()

    def _start_dir(self) -> str:
        p = Path(self.path_edit.text().strip() or ".").expanduser()
        return str(p if p.is_dir() else p.parent)


def _fail(msg):
    from ..io.volume import VolumeError

    raise VolumeError(msg)
