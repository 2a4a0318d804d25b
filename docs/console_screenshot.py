"""Screenshot of the console route (docs/console_run.png): napari's own console running
``%run examples/propagate_console.py``, the viewer showing the result in 3D.

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb python docs/console_screenshot.py

Run from the repository root (the ``%run`` path is relative); a throw-away embedding cache
unless ``NAPARI_SCROLL_SAM_CACHE`` is set.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def main():
    os.environ.setdefault("NAPARI_SCROLL_SAM_CACHE", tempfile.mkdtemp(prefix="nss-console-"))
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    win.move(0, 0)
    qt_viewer = viewer.window._qt_viewer
    qt_viewer.dockConsole.setVisible(True)  # Window → Console
    from qtpy.QtCore import Qt

    win.resizeDocks([qt_viewer.dockConsole], [470], Qt.Orientation.Vertical)
    console = qt_viewer.console

    def settle(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.02)

    settle(3)  # the kernel starts
    console.execute("%run examples/propagate_console.py", interactive=True)
    end = time.monotonic() + 300
    while "propagated" not in viewer.layers and time.monotonic() < end:
        settle(0.5)
    settle(2)
    viewer.layers["propagated"].rendering = "iso_categorical"
    settle(1)
    img = viewer.screenshot(canvas_only=False, flash=False)
    from PIL import Image

    Image.fromarray(img).save(DOCS / "console_run.png")
    print("wrote", DOCS / "console_run.png", img.shape, [ly.name for ly in viewer.layers])
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
