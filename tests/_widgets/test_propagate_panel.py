"""The Propagate group of the Segment widget: anchors from the masks layer → propagate(), limits, cancel, errors, 3D.

Exact results come from the oracle embedder / predictor of tests/test_propagation.py
(the ground-truth object under the prompt); one test runs the tiny random-weight SAM
end to end, and one runs in napari's thread worker.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.propagation import run as propagation_run
from napari_scroll_sam.propagate_labels import PROPAGATED
from napari_scroll_sam._widgets.segment import SegmentWidget
from napari_scroll_sam.sam import embeddings
from tests.helpers import tiny_model
from tests.test_propagation import OracleEmbedder, OraclePredictor

SHAPE = (8, 64, 64)
CUBE = (slice(1, 7), slice(20, 44), slice(20, 44))  # object 1 lives on slices 1..6


@pytest.fixture(scope="module")
def image():
    img = np.full(SHAPE, 20, np.uint8)
    img[CUBE] = 200
    return img


@pytest.fixture(scope="module")
def gt():
    g = np.zeros(SHAPE, np.uint32)
    g[CUBE] = 1
    return g


@pytest.fixture(scope="module")
def model():
    # seed 2: its (random) predicted IoUs on the cube are positive; seed 0's are below 0, and
    # propagation's min_pred_iou=0 still stops on a negative IoU
    return tiny_model(seed=2, img_size=64)


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_SYNC", "1")
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def oracle(monkeypatch, gt):
    """SAM replaced by the ground truth: masks are exact, predicted IoU 0.95."""
    monkeypatch.setattr(embeddings, "SliceEmbedder", lambda model, volume, mode=None, **kw: OracleEmbedder(gt))
    monkeypatch.setattr(propagation_run, "Predictor", lambda model: OraclePredictor(gt))


def open_segment(viewer, qtbot, image, model, name="cube"):
    """``image`` in ``viewer`` with a Segment widget on slice 4, its prompt layers, the oracle's
    settings (a walk stops at the first empty slice, the model asked on every slice)."""
    viewer.add_image(image, name=name, contrast_limits=(0, 255))
    w = SegmentWidget(viewer)
    qtbot.addWidget(w)
    w.set_model(model)
    viewer.dims.set_current_step(0, 4)
    w.prompt_button.click()
    panel = w.propagate_panel
    panel.stop_form.set("max_empty", 1)
    panel.walk_form.set("model_every", 1)  # the oracle asked on every slice: exact masks
    panel.walk_form.set("refine", False)  # the clicked seeds as the oracle drew them (tests/test_refine.py)
    return viewer, w, panel


@pytest.fixture
def setup(make_napari_viewer, qtbot, env, image, model):
    return open_segment(make_napari_viewer(), qtbot, image, model)


def paint_anchor(w, gt, z=4):
    masks = w.masks_layer()
    masks.data[z][gt[z] == 1] = 1
    masks.refresh()
    return masks


def slices_with(labels, oid=1):
    return [z for z in range(labels.shape[0]) if (labels[z] == oid).any()]


def permissive(panel):
    for name in ("min_pred_iou", "min_slice_iou", "max_area_change"):
        panel.stop_form.set(name, None)
    panel.stop_form.set("max_empty", 8)


def test_the_forms_are_the_dataclasses(setup):
    """Every field of WalkConfig / StopRule that a form can hold is there, at its default;
    a switched-off option is None."""
    from napari_scroll_sam.propagation import StopRule, WalkConfig

    viewer, w, panel = setup
    assert panel.walk_config() == WalkConfig(model_every=1, refine=False)  # as the fixture set it
    panel.walk_form.set("model_every", WalkConfig().model_every)
    panel.walk_form.set("refine", True)
    assert panel.walk_config() == WalkConfig()
    assert set(panel.walk_form.rows) == {f for f in WalkConfig.__dataclass_fields__}
    assert set(panel.stop_form.rows) == {f for f in StopRule.__dataclass_fields__} - {"stop_slices"}
    panel.walk_form.set("snap", None)
    panel.walk_form.set("prior", "copy")
    panel.walk_form.set("adapt_steps", 20)
    assert panel.walk_config() == WalkConfig(snap=None, prior="copy", adapt_steps=20)
    panel.stop_form.set("max_empty", None)
    panel.stop_slices_edit.setText("2, 6")
    assert panel.stop_rule() == StopRule(max_empty=None, stop_slices={2, 6})


def test_tiny_model_end_to_end(setup, gt):
    viewer, w, panel = setup
    assert panel.strategy_combo.currentText() == "box+farthest"
    assert (panel.z_from_spin.value(), panel.z_to_spin.value()) == (0, SHAPE[0] - 1)
    masks = paint_anchor(w, gt)
    permissive(panel)
    seen = []
    panel.report.connect(seen.append)
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    assert seen and seen[0].z == 4 and seen[0].direction == 0 and seen[0].area == (gt[4] == 1).sum()
    np.testing.assert_array_equal(masks.data[4] == 1, gt[4] == 1)  # the anchor is kept as drawn
    assert set(np.unique(masks.data)) <= {0, 1}
    assert {r.z for r in seen} == set(range(SHAPE[0])) or any(r.stopped for r in seen)
    assert len(slices_with(masks.data)) > 1  # the random-weight SAM gave something elsewhere
    assert "object 1:" in panel.status_label.text() and "anchor kept" in panel.status_label.text()
    assert panel.progress_bar.value() == panel.progress_bar.maximum() > 0
    assert panel.propagate_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert "loaded: tiny" in w.model_label.text()


def test_anchor_propagates_both_ways_and_stops(setup, gt, oracle):
    viewer, w, panel = setup
    masks = paint_anchor(w, gt)
    w.status_label.setText("slice 3, object 1: 99 px … — Commit (C) to keep it")  # a Segment slice before
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    assert w.status_label.text() == ""  # the Segment's last words no longer hold
    np.testing.assert_array_equal(masks.data, gt)  # slices 1..6, nothing on the empty slices 0 and 7
    stops = sorted((r.z, r.direction) for r in panel.reports if r.stopped)
    assert stops == [(0, -1), (7, 1)]
    text = panel.status_label.text()
    assert "object 1: 5 slices propagated, 1 anchor kept" in text
    assert "up: empty mask (slice 7)" in text and "down: empty mask (slice 0)" in text
    assert panel.progress_bar.value() == panel.progress_bar.maximum() == 1 + 4 + 3
    book = masks.metadata[PROPAGATED][1]
    assert sorted(book) == [1, 2, 3, 5, 6]  # the slices it wrote (not the anchor)


def test_z_limits_direction_and_stop_slices(setup, gt, oracle):
    viewer, w, panel = setup
    masks = paint_anchor(w, gt)
    panel.z_from_spin.setValue(3)
    panel.z_to_spin.setValue(5)
    panel.propagate_button.click()
    assert slices_with(masks.data) == [3, 4, 5]

    masks.data[:] = 0
    paint_anchor(w, gt)
    panel.z_from_spin.setValue(0)
    panel.z_to_spin.setValue(7)
    panel.direction_combo.setCurrentText("up")
    panel.propagate_button.click()
    assert slices_with(masks.data) == [4, 5, 6]  # nothing below the anchor

    masks.data[:] = 0
    paint_anchor(w, gt)
    panel.direction_combo.setCurrentText("both")
    panel.stop_slices_edit.setText("2, 6")
    panel.propagate_button.click()
    assert slices_with(masks.data) == [3, 4, 5]
    assert "stop slice (slice 6)" in panel.status_label.text()


def test_undo_reverts_a_run(setup, gt, oracle):
    """Ctrl+Z (the Objects section's undo) takes a whole Propagate run back; the anchor stays."""
    viewer, w, panel = setup
    masks = paint_anchor(w, gt)
    panel.propagate_button.click()
    np.testing.assert_array_equal(masks.data, gt)
    step = w.objects_panel.undo()
    assert set(step.slices) >= {1, 2, 3, 5, 6}  # the anchor (4) is rewritten as drawn
    assert slices_with(masks.data) == [4]
    np.testing.assert_array_equal(masks.data[4], gt[4])


def test_cancel_keeps_the_slices_done(setup, gt, oracle):
    viewer, w, panel = setup
    masks = paint_anchor(w, gt)
    seen = []

    def cancel_at_second(report):
        seen.append(report.z)
        if len(seen) == 2:
            assert panel.cancel_button.isEnabled()
            panel.cancel_button.click()

    panel.report.connect(cancel_at_second)
    finished = []
    panel.finished.connect(finished.append)
    panel.propagate_button.click()
    assert seen == [4, 5] and finished == [True]
    assert slices_with(masks.data) == [4, 5]  # the anchor and the one slice done
    assert "cancelled" in panel.status_label.text()
    assert panel.propagate_button.isEnabled() and not panel.cancel_button.isEnabled()
    panel.report.disconnect(cancel_at_second)
    panel.propagate_button.click()  # again: continues from both anchors (4 and 5)
    np.testing.assert_array_equal(masks.data, gt)


def test_bad_input_shows_an_error_and_writes_nothing(setup, gt, oracle):
    viewer, w, panel = setup
    masks = w.masks_layer()
    panel.propagate_button.click()  # an empty masks layer and no prompt
    assert "nothing to propagate" in panel.error_label.text() and not panel.error_label.isHidden()
    assert not masks.data.any()
    paint_anchor(w, gt)
    before = masks.data.copy()
    cases = [
        (lambda: panel.stop_form.set("max_area_change", 0.5), "max_area_change=0.5 must be None or a factor >= 1"),
        (lambda: panel.stop_slices_edit.setText("3, x"), "stop slices: 'x' is not a slice number"),
        (lambda: panel.stop_slices_edit.setText("3, 100"), "stop slices: '100' is past the last slice (7)"),
        (lambda: panel.objects_edit.setText("2"), r"object(s) 2 have no voxels in the masks layer"),
        (lambda: (panel.z_from_spin.setValue(6), panel.z_to_spin.setValue(2)), "the first slice is after the last"),
        (lambda: panel.objects_edit.setText("0"), "ids start at 1"),
    ]
    for make_bad, msg in cases:
        panel.stop_form.set("max_area_change", 4.0)
        panel.stop_slices_edit.setText("")
        panel.objects_edit.setText("")
        panel.z_from_spin.setValue(0)
        panel.z_to_spin.setValue(7)
        make_bad()
        panel.propagate_button.click()
        assert msg in panel.error_label.text(), (msg, panel.error_label.text())
        np.testing.assert_array_equal(masks.data, before)
        assert panel.propagate_button.isEnabled()
    # the anchor outside the z limits: nothing to start from
    panel.objects_edit.setText("")
    panel.z_from_spin.setValue(5)
    panel.propagate_button.click()
    assert "nothing to propagate" in panel.error_label.text()
    np.testing.assert_array_equal(masks.data, before)
    # a good run clears the error
    panel.z_from_spin.setValue(0)
    panel.propagate_button.click()
    assert panel.error_label.isHidden() and not panel.error_label.text()
    np.testing.assert_array_equal(masks.data, gt)


def test_prompts_on_the_current_slice_seed_an_object_without_voxels(setup, gt, oracle):
    viewer, w, panel = setup
    points, boxes, masks = w.prompt_layers()
    masks.data[2, 0:5, 0:5] = 3  # another object: kept, not propagated (objects "1")
    w.object_id.setValue(1)
    points.add([4, 30, 30])
    panel.objects_edit.setText("1")
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    np.testing.assert_array_equal(masks.data == 1, gt == 1)
    assert (masks.data == 3).sum() == 25
    # a prompt for an id that is not chosen, for an object without voxels
    masks.data[:] = 0
    w.object_id.setValue(2)
    panel.objects_edit.setText("")
    panel.propagate_button.click()  # the current id 2 has prompts: it is propagated
    np.testing.assert_array_equal(masks.data == 2, gt == 1)
    # several boxes on the slice: one box per object
    masks.data[:] = 0
    boxes.add_rectangles(np.array([[4, 20, 20], [4, 20, 30], [4, 30, 30], [4, 30, 20]], float))
    boxes.add_rectangles(np.array([[4, 35, 35], [4, 35, 40], [4, 40, 40], [4, 40, 35]], float))
    panel.propagate_button.click()
    assert "2 boxes on slice 4" in panel.error_label.text()
    assert not masks.data.any()


def test_redo_propagated_slices(setup, gt, oracle):
    viewer, w, panel = setup
    masks = paint_anchor(w, gt)
    panel.z_from_spin.setValue(2)
    panel.z_to_spin.setValue(6)
    panel.propagate_button.click()
    assert slices_with(masks.data) == [2, 3, 4, 5, 6]
    masks.data[6, 20:30] = 0  # the user corrects slice 6: it becomes an anchor
    edited = masks.data[6].copy()
    panel.z_from_spin.setValue(0)
    panel.z_to_spin.setValue(7)
    panel.stop_slices_edit.setText("3")
    panel.replace_check.setChecked(True)
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    # 2, 3 and 5 were propagated and not edited: redone (the walk down stops before 3)
    assert slices_with(masks.data) == [4, 5, 6]
    np.testing.assert_array_equal(masks.data[6], edited)
    np.testing.assert_array_equal(masks.data[5], gt[5])
    assert sorted(masks.metadata[PROPAGATED][1]) == [5]
    # without redo every slice holding the object is an anchor: only new slices are filled
    panel.replace_check.setChecked(False)
    panel.stop_slices_edit.setText("")
    panel.propagate_button.click()
    assert slices_with(masks.data) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(masks.data[6], edited)


def test_show_3d(setup, gt):
    viewer, w, panel = setup
    image, masks = viewer.layers["cube"], w.masks_layer()
    truth = viewer.add_labels(gt, name="truth")
    masks.visible = False
    viewer.layers.move(viewer.layers.index(masks), 0)
    panel.show_3d_button.click()  # review_3d: the masks on top, other labels hidden, an oblique camera
    assert viewer.dims.ndisplay == 3
    assert masks.visible and viewer.layers.index(masks) > viewer.layers.index(image)
    assert masks.rendering == "iso_categorical" and not truth.visible
    assert "hidden: truth" in panel.status_label.text()
    assert panel.show_3d_button.isChecked() and panel.show_3d_button.text() == "Show 2D"
    assert image.opacity == 0.6
    panel.show_3d_button.click()
    assert viewer.dims.ndisplay == 2 and panel.show_3d_button.text() == "Show 3D"
    # "Show 2D" ends the review: the layers as they were (hidden masks hidden again, truth shown)
    assert image.opacity == 1.0 and truth.visible and not masks.visible
    viewer.dims.ndisplay = 3  # from napari's own button: the panel follows
    assert panel.show_3d_button.isChecked()


def test_in_a_thread(setup, gt, oracle, monkeypatch, qtbot):
    """Without NAPARI_SCROLL_SAM_SYNC the walk runs in napari's thread worker."""
    monkeypatch.delenv("NAPARI_SCROLL_SAM_SYNC")
    viewer, w, panel = setup
    masks = paint_anchor(w, gt)
    with qtbot.waitSignal(panel.finished, timeout=30000) as blocker:
        panel.propagate_button.click()
    assert blocker.args == [False], panel.error_label.text()
    np.testing.assert_array_equal(masks.data, gt)
    assert len(panel.reports) == 1 + 5 + 2
    # errors come back from the thread too
    panel.objects_edit.setText("9")
    with qtbot.waitSignal(panel.finished, timeout=30000):
        panel.propagate_button.click()
    assert "object(s) 9 have no voxels" in panel.error_label.text()


def test_objects_clicked_on_one_slice_walk_together(make_napari_viewer, qtbot, env, model, monkeypatch):
    """One click on each of two touching objects, Next between (no Segment, no commit), then
    Propagate: both are seeded from their clicks together and share the slice out, although
    the model answers both objects as one for either click; each is then carried alone."""
    gt2 = np.zeros(SHAPE, np.uint32)
    gt2[1:7, 20:44, 20:32], gt2[1:7, 20:44, 32:44] = 1, 2
    img = np.full(SHAPE, 20, np.uint8)
    img[gt2 == 1], img[gt2 == 2] = 200, 110

    class Merged(OraclePredictor):  # any click on either object: both objects, as one mask
        def predict(self, *a, **kw):
            res = super().predict(*a, **kw)
            z = int(a[0].flatten()[0])
            return type(res)(np.stack([m | (m.any() & (gt2[z] > 0)) for m in res.masks]), res.iou, res.logits)

    monkeypatch.setattr(embeddings, "SliceEmbedder", lambda model, volume, mode=None, **kw: OracleEmbedder(gt2))
    monkeypatch.setattr(propagation_run, "Predictor", lambda model: Merged(gt2))
    viewer, w, panel = open_segment(make_napari_viewer(), qtbot, img, model, name="two")
    points, _, masks = w.prompt_layers()
    w.object_id.setValue(1)
    points.add([4, 32, 24])
    w.objects_panel.next_object()  # object 1 keeps its click; now object 2
    assert w.object_id.value() == 2 and len(points.data) == 0
    points.add([4, 32, 40])
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    for oid in (1, 2):
        for z in range(1, 7):
            got, want = masks.data[z] == oid, gt2[z] == oid
            assert (got & want).sum() / (got | want).sum() > 0.9, (oid, z)
    assert not masks.data[0].any() and not masks.data[7].any()


@pytest.mark.parametrize("how", ["clear", "delete"])
def test_an_object_whose_click_was_dropped_is_not_propagated(setup, gt, oracle, how):
    """Object 1 clicked, Next, back to object 1, its click dropped (Clear, or deleted from
    the layer by hand), object 2 clicked, Propagate: only object 2 walks."""
    viewer, w, panel = setup
    points, _, masks = w.prompt_layers()
    w.object_id.setValue(1)
    points.add([4, 30, 24])
    w.objects_panel.next_object()
    w.object_id.setValue(1)  # its click comes back
    assert len(points.data) == 1
    if how == "clear":
        w.objects_panel.clear()
    else:
        points.selected_data = {0}
        points.remove_selected()
    w.object_id.setValue(2)
    points.add([4, 30, 36])
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    assert not (masks.data == 1).any()
    np.testing.assert_array_equal(masks.data == 2, gt == 1)


def test_a_click_carried_to_a_new_id_is_not_kept_for_the_old_one(setup, gt, oracle):
    """Object 1 clicked, Next, back to object 1, then a new id typed in: the click stays in
    the layer for the new id (as before), and object 1 no longer keeps a copy of it, so
    Propagate does not seed both objects from one click."""
    viewer, w, panel = setup
    points, _, masks = w.prompt_layers()
    w.object_id.setValue(1)
    points.add([4, 30, 30])
    w.objects_panel.next_object()
    w.object_id.setValue(1)
    w.object_id.setValue(3)
    assert len(points.data) == 1
    panel.propagate_button.click()
    assert not panel.error_label.text(), panel.error_label.text()
    assert not (masks.data == 1).any()
    np.testing.assert_array_equal(masks.data == 3, gt == 1)
