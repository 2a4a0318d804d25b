"""Which viewer layers a widget offers as the image to work on."""

from __future__ import annotations

from napari.layers import Image

#: the largest object id the widgets offer
MAX_OBJECT_ID = 2**31 - 1


def volume_image_names(viewer) -> list[str]:
    """Names of the 3D grey image layers (not RGB, not a sampling preview)."""
    return [ly.name for ly in viewer.layers
            if isinstance(ly, Image) and not ly.rgb and ly.ndim == 3 and "sampling_preview" not in ly.metadata]


def refill_combo(combo, names) -> bool:
    """Put ``names`` in ``combo`` keeping its choice when still there, without signals.
    Returns whether the current choice changed."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)
    return combo.currentText() != current
