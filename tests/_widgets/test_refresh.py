"""SliceRefresher: a job's writes refresh a labels layer only when the shown slice changed."""

from __future__ import annotations

import numpy as np

from napari_scroll_sam._widgets._refresh import SliceRefresher


def test_refresh_only_the_shown_slice(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((8, 16, 16), np.uint32))
    viewer.dims.set_current_step(0, 3)
    calls = []
    layer.refresh = lambda *a, **k: calls.append(k)
    r = SliceRefresher(viewer, lambda: [layer], every_s=0)
    assert not r.wrote(5) and not calls  # slice 5 is not shown
    assert r.wrote(3) and len(calls) == 1  # slice 3 is
    assert not r.wrote(6)  # dirty slices are cleared by a refresh
    viewer.dims.ndisplay = 3
    assert not r.wrote(3) and len(calls) == 1  # never a whole-volume upload during a job
    r.flush()
    assert len(calls) == 2 and calls[-1] == {}  # the end: one full refresh (thumbnail too)
    r.flush()
    assert len(calls) == 2  # nothing written since
    r2 = SliceRefresher(viewer, lambda: [layer], every_s=3600)
    viewer.dims.ndisplay = 2
    assert r2.wrote(3) and not r2.wrote(3)  # at most every every_s
