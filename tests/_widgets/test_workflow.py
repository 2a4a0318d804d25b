"""The whole napari workflow a micro-sam user expects, scripted end to end with the defaults
(the built-in ``small`` model, Train's default folder), asserting the layers at each step:

sample → point → S (segment slice) → Shift+S (segment volume) → C (commit) → point on another
wrap → S → N (next object: commits it) → Ctrl+Z (undo that commit) → C → Train 1 epoch →
Use this model → S with it → save the masks → re-open them.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.layers import BUILTIN_MODEL
from napari_scroll_sam._widgets.segment import SegmentWidget
from napari_scroll_sam._widgets.train import TrainWidget
from napari_scroll_sam.prompts import farthest_from_boundary
from napari_scroll_sam.sam.embeddings import SliceEmbedder
from napari_scroll_sam.sam.segment import segment_slice

Z = 32


def precision(mask, truth):
    """Share of the mask on the prompted wrap (one click gives part of a long spiral sheet)."""
    return np.logical_and(mask, truth).sum() / max(mask.sum(), 1)


@pytest.fixture
def viewer_and_widgets(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_SYNC", "1")
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-scroll-sam", "scroll")
    seg, train = SegmentWidget(viewer), TrainWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment")
    viewer.window.add_dock_widget(train, name="Train")
    return viewer, seg, train


def test_micro_sam_workflow_with_defaults(viewer_and_widgets, tmp_path):
    viewer, seg, train = viewer_and_widgets
    assert [ly.name for ly in viewer.layers] == ["scroll", "sheets", "ink"]
    assert seg.image_combo.currentText() == "scroll" and seg.model_combo.currentText() == BUILTIN_MODEL
    assert train.model_combo.currentText() == BUILTIN_MODEL and train.out_edit.text() == ""
    truth = np.asarray(viewer.layers["sheets"].data[Z])
    wraps = [int(v) for v in np.unique(truth) if v]
    a, b = wraps[len(wraps) // 2], wraps[len(wraps) // 2 + 1]
    press = viewer.window._qt_viewer.canvas._key_map_handler.press_key

    # a point on slice 32 → S: the current object holds the wrap on slice 32 only
    viewer.dims.set_point(0, Z)
    seg.prompt_button.click()
    points, boxes, masks = seg.prompt_layers()
    scratch = seg.scratch_layer()
    assert viewer.layers.selection.active is points
    pa = farthest_from_boundary(truth == a)
    points.add([Z, *pa])
    press("S")
    assert not seg.error_label.text(), seg.error_label.text()
    assert f"loaded: {BUILTIN_MODEL}:" in seg.model_label.text()
    assert [z for z in range(64) if scratch.data[z].any()] == [Z] and masks.data.sum() == 0
    emb = SliceEmbedder(seg.models.current(), seg.volume(), cache=False)
    want = segment_slice(emb, Z, points=[[pa]], labels=[[1]]).masks[0]  # the plain API's mask
    got = scratch.data[Z] == 1
    # one click on a wrap: the turn it lies on, read from the image (SAM's mask ran on along the next)
    iou = lambda m, t: np.logical_and(m, t).sum() / np.logical_or(m, t).sum()  # noqa: E731
    assert "the turn of the scroll it lies on" in seg.status_label.text()
    assert iou(got, truth == a) > 0.9 and iou(got, truth == a) > iou(want, truth == a)
    assert scratch.data[Z][tuple(pa.astype(int))] == 1 and precision(want, truth == a) > 0.2

    # Shift+S: the object through the volume (core propagate with the Propagate section's
    # settings; box+farthest, the default, loses a spiral sheet at once), still scratch
    seg.propagate_panel.strategy_combo.setCurrentText("skeleton+background")
    press("Shift-S")
    assert not seg.error_label.text(), seg.error_label.text()
    walked = [z for z in range(64) if scratch.data[z].any()]
    assert len(walked) > 5 and Z in walked and masks.data.sum() == 0
    assert "Commit (C) to keep it" in seg.status_label.text()

    # C: committed as object 1, the scratch emptied, the prompts kept with object 1, id 2
    press("C")
    assert [z for z in range(64) if (masks.data[z] == 1).any()] == walked
    assert scratch.data.sum() == 0 and seg.object_id.value() == 2 and len(points.data) == 0

    # object 2 on another wrap: S, then N commits it and starts object 3
    points.add([Z, *farthest_from_boundary(truth == b)])
    press("S")
    obj2 = scratch.data[Z] == 2
    assert obj2.any()
    press("N")
    assert seg.object_id.value() == 3 and (masks.data[Z] == 2).sum() > 0 and scratch.data.sum() == 0

    # Ctrl+Z: that commit undone — masks without object 2, the scratch and its prompt back
    press("Control-Z")
    assert not (masks.data == 2).any() and seg.object_id.value() == 2
    np.testing.assert_array_equal(scratch.data[Z] == 2, obj2)
    assert len(points.data) == 1
    seg.objects_panel.commit_button.click()
    np.testing.assert_array_equal(masks.data[Z] == 2, obj2 & (masks.data[Z] != 1))
    assert set(np.unique(masks.data)) == {0, 1, 2}

    # Train 1 epoch on (scroll, scroll masks) into the default folder, from the built-in model
    train.labels_combo.setCurrentText("scroll masks")
    train.epochs_spin.setValue(1)
    train.batch_spin.setValue(8)
    done, committed = [], masks.data.copy()
    train.training_finished.connect(done.append)
    train.start_button.click()
    assert done == ["done"], train.error_label.text()
    np.testing.assert_array_equal(masks.data, committed)  # training reads the layers, never writes them
    assert len(train.history) == 1 and train.history[0].epoch == 1
    runs = list((tmp_path / "cache" / "checkpoints").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("scroll-") and train.best_checkpoint() == runs[0] / "best.pt"

    # Use this model: the Segment widget takes best.pt and segments with it
    assert train.use_model() is seg and seg.model_combo.currentText() == str(runs[0] / "best.pt")
    points.add([Z, *pa])
    press("S")
    assert not seg.error_label.text(), seg.error_label.text()
    assert "best.pt" in str(seg.models.current().source) and scratch.data[Z].any()
    seg.objects_panel.clear_button.click()
    assert scratch.data.sum() == 0

    # save the committed objects with the plugin's writer, re-open them
    out = tmp_path / "objects.zarr"
    masks.save(str(out), plugin="napari-scroll-sam")
    (reopened,) = viewer.open(str(out), plugin="napari-scroll-sam", layer_type="labels")
    np.testing.assert_array_equal(np.asarray(reopened.data), masks.data)
    np.testing.assert_allclose(reopened.scale, masks.scale)
    np.testing.assert_allclose(reopened.translate, masks.translate)
