"""Screenshots of the Segment / Train workflow (docs/workflow_*.png) in a shown viewer.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb NAPARI_SCROLL_SAM_SYNC=1 \\
        python docs/screenshots.py

The same steps as tests/_widgets/test_workflow.py, on a 1,600 × 1,000 screen, with the
built-in model and a throw-away cache (``NAPARI_SCROLL_SAM_CACHE`` unless set).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
Z = 32


def sample_viewer(prefix: str = "nss-shots-"):
    """A shown 1,600 × 1,000 viewer with the File-menu sample (ground truth hidden) and the
    Segment dock; a throw-away cache unless ``NAPARI_SCROLL_SAM_CACHE`` is set."""
    os.environ.setdefault("NAPARI_SCROLL_SAM_CACHE", tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("NAPARI_SCROLL_SAM_SYNC", "1")
    import napari

    from napari_scroll_sam._widgets.segment import SegmentWidget

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.window._qt_window.move(0, 0)
    viewer.open_sample("napari-scroll-sam", "scroll")
    viewer.layers["sheets"].visible = False
    viewer.layers["ink"].visible = False
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment", area="right")
    return viewer, seg


def main():
    from qtpy.QtWidgets import QApplication

    from napari_scroll_sam._widgets.train import TrainWidget
    from napari_scroll_sam.prompts import farthest_from_boundary

    viewer, seg = sample_viewer()
    train = TrainWidget(viewer)
    press = viewer.window._qt_viewer.canvas._key_map_handler.press_key

    def shot(name):
        for _ in range(5):
            QApplication.processEvents()
        img = viewer.screenshot(canvas_only=False, flash=False)
        from PIL import Image

        Image.fromarray(img).save(DOCS / f"workflow_{name}.png")
        print("wrote", DOCS / f"workflow_{name}.png", img.shape)

    truth = np.asarray(viewer.layers["sheets"].data[Z])
    wraps = [int(v) for v in np.unique(truth) if v]
    a, b = wraps[len(wraps) // 2], wraps[len(wraps) // 2 + 1]
    viewer.dims.set_point(0, Z)
    shot("1_sample")
    seg.prompt_button.click()
    points = seg.points_layer()
    points.add([Z, *farthest_from_boundary(truth == a)])
    press("S")
    shot("2_segment_slice")
    seg.propagate_panel.strategy_combo.setCurrentText("skeleton+background")
    press("Shift-S")
    viewer.dims.set_point(0, 12)  # the walk, 20 slices from the click
    shot("3_segment_volume")
    viewer.dims.set_point(0, Z)
    press("C")
    points.add([Z, *farthest_from_boundary(truth == b)])
    press("S")
    press("N")
    shot("4_commit_next")
    press("Control-Z")
    shot("5_undo")
    press("C")
    viewer.window.add_dock_widget(train, name="Train", area="right", tabify=True)
    train.labels_combo.setCurrentText("scroll masks")
    train.epochs_spin.setValue(1)
    train.batch_spin.setValue(8)
    train.start_button.click()
    shot("6_train")
    train.use_model()
    points.add([Z, *farthest_from_boundary(truth == a)])
    press("S")
    shot("7_use_model")
    seg.objects_panel.clear()
    seg.objects_panel.review()
    shot("8_review_3d")
    masks = seg.masks_layer()  # saved with the plugin's writer (File → Save Selected Layers), opened again
    out = Path(os.environ["NAPARI_SCROLL_SAM_CACHE"]) / "objects.zarr"
    masks.save(str(out), plugin="napari-scroll-sam")
    viewer.dims.ndisplay = 2
    for ly in viewer.layers:
        ly.visible = ly.name == "scroll"
    (reopened,) = viewer.open(str(out), plugin="napari-scroll-sam", layer_type="labels")
    viewer.layers.selection.active = reopened
    shot("9_reopened")
    print("objects saved and re-opened:", out, np.unique(np.asarray(reopened.data)).tolist())
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
