"""Issue 11 item 6: Segment and Train docked together fit a 1,000 px screen (each dock scrolls,
every section open), and a long status text grows the dock's content, never the window."""

from __future__ import annotations

from superqt import QCollapsible

from napari_scroll_sam._widgets._layout import MIN_HEIGHT
from napari_scroll_sam._widgets.segment import SegmentWidget
from napari_scroll_sam._widgets.train import TrainWidget


def test_segment_and_train_fit_a_1000_px_screen(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-scroll-sam", "scroll")
    seg, train = SegmentWidget(viewer), TrainWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment", area="right")
    viewer.window.add_dock_widget(train, name="Train", area="right")  # stacked, not tabbed: the worst case
    for w in (seg, train):
        for sec in w.findChildren(QCollapsible):
            sec.expand(animate=False)
    seg.status_label.setText("a long status " * 60)
    train.status_label.setText("epoch 1/1 · step 7/7 · loss 1.186\n" * 6)
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    qtbot.wait(50)
    assert window.minimumSizeHint().height() <= 1000 and window.height() <= 1000
    for w in (seg, train):
        assert w.minimumSizeHint().height() <= MIN_HEIGHT + 10  # the rest scrolls
        inner = w.scroll_area.widget()
        assert inner.sizeHint().height() > w.scroll_area.viewport().height()  # it does scroll
    train.scroll_area.ensureWidgetVisible(train.use_button)  # "Use this model" can be reached
    qtbot.wait(20)
    pos = train.use_button.mapTo(train.scroll_area.viewport(), train.use_button.rect().topLeft())
    assert 0 <= pos.y() < train.scroll_area.viewport().height()
