"""Screenshot of ``napari-scroll-sam demo`` (docs/demo_3d.png): every wrap of the File-menu
scroll clicked once on its middle slice, propagated together, shown in napari's 3D view.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb python docs/demo_screenshot.py

A throw-away embedding cache unless ``NAPARI_SCROLL_SAM_CACHE`` is set.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def main():
    os.environ.setdefault("NAPARI_SCROLL_SAM_CACHE", tempfile.mkdtemp(prefix="nss-demo-"))
    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from napari_scroll_sam._widgets.demo_viewer import build_demo_viewer
    from napari_scroll_sam.demo import run_demo
    from napari_scroll_sam.layers import BUILTIN_MODEL
    from napari_scroll_sam.sam.models import load_model

    res = run_demo(load_model(BUILTIN_MODEL, device="cpu"))
    viewer = napari.Viewer(show=True, title="napari-scroll-sam demo")
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    win.move(0, 0)
    build_demo_viewer(res, viewer)
    viewer.layers["scroll"].visible = False  # the wraps alone: colours are objects
    end = time.monotonic() + 4
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    img = viewer.screenshot(canvas_only=True, flash=False)
    Image.fromarray(img).save(DOCS / "demo_3d.png")
    print(f"wrote {DOCS / 'demo_3d.png'} {img.shape}; mean IoU {res.mean_iou:.3f}, switches {res.switches:.3f}, "
          f"sheet IoU {res.sheet_iou:.3f}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
