"""The File-menu sample in the widget, every wrap clicked: docs/workflow_wraps.png.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb NAPARI_SCROLL_SAM_SYNC=1 \\
        python docs/wraps_screenshot.py

What a user does, with the defaults: open the sample (File → Open Sample), one click on each
wrap of slice 32 with N (next object) between, then Propagate (all objects). Prints the mean
IoU per wrap against the sample's ground truth, the sheet switches, and writes the picture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
Z = 32


def main():
    from qtpy.QtWidgets import QApplication

    from napari_scroll_sam.prompts import farthest_from_boundary

    sys.path.insert(0, str(DOCS))
    from screenshots import sample_viewer

    viewer, seg = sample_viewer("nss-wraps-")
    press = viewer.window._qt_viewer.canvas._key_map_handler.press_key
    truth = np.asarray(viewer.layers["sheets"].data)
    wraps = [int(v) for v in np.unique(truth[Z]) if v]
    viewer.dims.set_point(0, Z)
    seg.prompt_button.click()
    points = seg.points_layer()
    seg.object_id.setValue(wraps[0])
    assert wraps == list(range(1, len(wraps) + 1))
    for k, w in enumerate(wraps):
        points.add([Z, *farthest_from_boundary(truth[Z] == w)])
        if k + 1 < len(wraps):
            press("N")  # the next object (ids 1, 2, … as the sample's wraps)
    seg.propagate_panel.propagate_button.click()
    err = seg.propagate_panel.error_label.text()
    if err:
        print("error:", err)
        return 1
    labels = np.asarray(seg.masks_layer().data)
    per_slice = []
    for z in range(labels.shape[0]):
        s = [((labels[z] == w) & (truth[z] == w)).sum() / max(((labels[z] == w) | (truth[z] == w)).sum(), 1)
             for w in wraps if (truth[z] == w).any() or (labels[z] == w).any()]
        per_slice.append(np.mean(s) if s else 1.0)
    done = labels > 0
    switches = ((truth != labels) & (truth > 0) & done).sum() / max(done.sum(), 1)
    print(f"widget, every wrap clicked, defaults: mean IoU {np.mean(per_slice):.3f}, sheet switches "
          f"{100 * switches:.1f} %, {int(done.any(axis=(1, 2)).sum())} slices")
    for _ in range(5):
        QApplication.processEvents()
    from PIL import Image

    img = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(img).save(DOCS / "workflow_wraps.png")
    print("wrote", DOCS / "workflow_wraps.png", img.shape)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
