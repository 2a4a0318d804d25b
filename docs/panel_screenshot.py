"""Screenshot of the Segment widget's Propagate section (docs/propagate_panel.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb python docs/panel_screenshot.py
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def main():
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_scroll_sam._widgets.segment import SegmentWidget

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-scroll-sam", "scroll")
    seg = SegmentWidget(viewer)
    seg.propagate_section.expand(animate=False)
    more = seg.propagate_panel.walk_form.more
    if more is not None:
        more.expand(animate=False)
    panel = seg.propagate_panel
    import time

    def settle():
        for _ in range(40):  # the Propagate section refits after "more walk" unfolds
            QApplication.processEvents()
            time.sleep(0.02)

    panel.setParent(None)  # its own window, sized to what it needs
    panel.show()
    settle()
    panel.resize(420, panel.sizeHint().height())
    settle()
    panel.grab().save(str(DOCS / "propagate_panel.png"))
    print("wrote", DOCS / "propagate_panel.png", panel.size())
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
