"""The Segment dock widget: prompts on a slice → the same mask as the plain API; embedding, cancel, errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam import layers as layers_module
from napari_scroll_sam._widgets.segment import BOXES_SUFFIX, MASKS_SUFFIX, PROMPTS_SUFFIX, SCRATCH_SUFFIX, SegmentWidget
from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam.embeddings import SliceEmbedder
from napari_scroll_sam.sam.segment import segment_slice
from napari_scroll_sam.sampling import EverySlice, Tuples
from tests.helpers import tiny_model

CL = (7000.0, 40000.0)
SHAPE = (6, 64, 64)


@pytest.fixture(scope="module")
def image():
    return scroll_phantom(SHAPE, seed=0)[0].compute()


@pytest.fixture(scope="module")
def model():
    return tiny_model(img_size=64)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_SYNC", "1")
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def open_segment(make_napari_viewer, qtbot, image, model, z):
    """A viewer with ``image`` as "scroll", the Segment widget on ``model``, at slice ``z``."""
    viewer = make_napari_viewer()
    viewer.add_image(image, name="scroll", contrast_limits=CL)
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_model(model)
    viewer.dims.set_current_step(0, z)
    return viewer, widget


@pytest.fixture
def setup(make_napari_viewer, qtbot, cache, image, model):
    return open_segment(make_napari_viewer, qtbot, image, model, 3)


def reference(model, image, z, mode=None, **prompts):
    emb = SliceEmbedder(model, Volume(levels=[image], contrast_limits=CL), mode=mode, cache=None)
    return segment_slice(emb, z, **prompts).masks


def rect(z, y0, x0, y1, x1):
    return np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)


def test_point_prompt_gives_the_api_mask(setup, model, image):
    viewer, w = setup
    assert w.image_combo.currentText() == "scroll" and w.current_z() == 3
    assert w.model_combo.currentText() == "tiny" and "loaded: tiny:seed0 on cpu" in w.model_label.text()
    w.prompt_button.click()
    points, boxes, masks = w.prompt_layers()
    assert points.name == "scroll" + PROMPTS_SUFFIX and boxes.name == "scroll" + BOXES_SUFFIX
    assert masks.name == "scroll" + MASKS_SUFFIX and masks.data.dtype == np.uint32 and masks.data.shape == SHAPE
    assert viewer.layers.selection.active is points and points.mode == "add"
    assert bool(points.feature_defaults["positive"].iloc[0])
    assert w.scratch_layer().name == "scroll" + SCRATCH_SUFFIX and w.scratch_layer().data.shape == SHAPE
    w.object_id.setValue(5)
    points.add([3, 30, 30])
    points.add([1, 10, 10])  # another slice: not a prompt for slice 3
    committed, masks = masks, w.scratch_layer()  # Segment slice writes the current object
    w.segment_button.click()
    assert not w.error_label.text(), w.error_label.text()
    want = reference(model, image, 3, points=[[[30, 30]]], labels=[[1]])[0]
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(masks.data[3] == 5, want)
    assert set(np.unique(masks.data[3])) == {0, 5}
    assert masks.data[[0, 1, 2, 4, 5]].sum() == 0
    assert "predicted IoU" in w.status_label.text() and "object 5" in w.status_label.text()
    assert masks.selected_label == 5 and committed.data.sum() == 0

    # a negative point joins the prompt; re-segmenting replaces the object's pixels on the slice
    w.negative_radio.setChecked(True)
    assert not bool(points.feature_defaults["positive"].iloc[0])
    points.add([3, 50, 12])
    assert list(points.features["positive"]) == [True, True, False]
    np.testing.assert_allclose(points.face_color[2], [1, 0x30 / 255, 0x30 / 255, 1], atol=1e-6)
    w.segment_button.click()
    want2 = reference(model, image, 3, points=[[[30, 30], [50, 12]]], labels=[[1, 0]])[0]
    np.testing.assert_array_equal(masks.data[3] == 5, want2)
    assert masks.data[[0, 1, 2, 4, 5]].sum() == 0


def test_other_mask_cycles_through_sams_four_masks(setup, model, image):
    """Other mask (O): the same prompts, the next of SAM's four masks, round to the first;
    new prompts start again from the first alternative; undo brings the mask before back."""
    viewer, w = setup
    w.prompt_button.click()
    points, _, _ = w.prompt_layers()
    scratch = w.scratch_layer()
    points.add([3, 30, 30])
    want = [reference(model, image, 3, points=[[[30, 30]]], labels=[[1]], output=i)[0] for i in range(4)]
    assert len({m.tobytes() for m in want}) > 1
    w.segment_button.click()
    np.testing.assert_array_equal(scratch.data[3] == 1, want[0])
    assert "mask 1 of 4 (single)" in w.status_label.text()
    press = viewer.window._qt_viewer.canvas._key_map_handler.press_key
    for i in (1, 2, 3, 0, 1):
        press("O") if i % 2 else w.objects_panel.other_button.click()
        assert not w.error_label.text(), w.error_label.text()
        np.testing.assert_array_equal(scratch.data[3] == 1, want[i])
        assert f"mask {i + 1} of 4" in w.status_label.text()
    points.add([3, 40, 20])  # the prompts changed: the first alternative of the new ones
    w.objects_panel.other_button.click()
    new = reference(model, image, 3, points=[[[30, 30], [40, 20]]], labels=[[1, 1]], output=1)[0]
    np.testing.assert_array_equal(scratch.data[3] == 1, new)
    assert "mask 2 of 4 (multi 1)" in w.status_label.text()
    w.objects_panel.undo()
    np.testing.assert_array_equal(scratch.data[3] == 1, want[1])
    assert "[O]" in w.objects_panel.other_button.toolTip()


def test_box_prompts_and_mode(setup, model, image):
    viewer, w = setup
    w.mode_selector.set_mode(Tuples(d=1))
    w.prompt_button.click()
    points, boxes, _ = w.prompt_layers()
    masks = w.scratch_layer()
    boxes.add_rectangles(rect(3, 10, 12, 40, 44))
    w.segment_button.click()
    assert not w.error_label.text(), w.error_label.text()
    want = reference(model, image, 3, mode=Tuples(d=1), box=[[10, 12, 40, 44]])[0]
    np.testing.assert_array_equal(masks.data[3] == 1, want)

    # two boxes on the slice (and a point): one prompt per box, their union is the object
    boxes.add_rectangles(rect(3, 30, 30, 60, 60))
    points.add([3, 20, 20])
    w.segment_button.click()
    two = reference(model, image, 3, mode=Tuples(d=1), points=[[[20, 20]]] * 2, labels=[[1]] * 2,
                    box=[[10, 12, 40, 44], [30, 30, 60, 60]])
    np.testing.assert_array_equal(masks.data[3] == 1, two.any(0))
    assert "union of 2 box prompts" in w.status_label.text()


def test_no_prompt_on_the_slice(setup, model, image):
    viewer, w = setup
    w.prompt_button.click()
    points, boxes, masks = w.prompt_layers()
    points.add(np.array([[3, 5, 5], [1, 10, 10], [3, 7, 7]]))
    boxes.add_rectangles([rect(3, 1, 1, 9, 9), rect(4, 1, 1, 9, 9)])
    w.clear_prompts_button.click()  # removes the prompts of slice 3 only
    np.testing.assert_array_equal(points.data, [[1, 10, 10]])
    assert len(boxes.data) == 1 and boxes.data[0][0, 0] == 4
    w.status_label.setText("loading small_hr on auto…")  # what an earlier job left
    w.segment_button.click()
    assert "no point or box on slice 3: points are on slice(s) 1; boxes are on slice(s) 4" in w.error_label.text()
    assert w.status_label.text() == ""  # no stale words beside the error
    assert not w.error_label.isHidden()
    assert masks.data.sum() == 0

    # a scaled, shifted image: Segment alone (no Prompt layers click) creates the layers (same
    # geometry) and says what is missing; the slice is the image's data z
    other = viewer.add_image(image[:4, :32, :32], name="other", contrast_limits=CL, scale=(2, 1, 1),
                             translate=(4, 0, 0))
    w.image_combo.setCurrentText("other")
    viewer.dims.set_point(0, 4 + 2 * 2)
    assert w.current_z() == 2
    w.segment_button.click()
    assert "no point or box on slice 2" in w.error_label.text()
    # the prompt layers are named; a point on another points layer is said not to be read
    assert "prompts are read from 'other prompts' and 'other boxes'" in w.error_label.text()
    viewer.add_points([[2, 16, 16]], name="Points", scale=(2, 1, 1), translate=(4, 0, 0))
    w.segment_button.click()
    assert "'Points' is not read" in w.error_label.text()
    viewer.layers.remove("Points")
    assert {"other" + s for s in (PROMPTS_SUFFIX, BOXES_SUFFIX, MASKS_SUFFIX)} <= {ly.name for ly in viewer.layers}
    points, _, masks = w.prompt_layers()
    assert tuple(points.scale) == tuple(masks.scale) == tuple(w.scratch_layer().scale) == tuple(other.scale)
    assert masks.data.shape == (4, 32, 32) and masks.data.sum() == 0
    masks = w.scratch_layer()
    points.add([2, 16, 16])
    w.segment_button.click()
    assert not w.error_label.text(), w.error_label.text()
    want = reference(model, image[:4, :32, :32], 2, points=[[[16, 16]]], labels=[[1]])[0]
    np.testing.assert_array_equal(masks.data[2] == 1, want)
    assert masks.data[[0, 1, 3]].sum() == 0


def test_commit_keeps_other_objects_unless_overwrite(setup, model, image):
    viewer, w = setup
    w.prompt_button.click()
    points, _, masks = w.prompt_layers()
    masks.data[3, :, :32] = 9
    points.add([3, 30, 40])
    w.segment_button.click()
    want = reference(model, image, 3, points=[[[30, 40]]], labels=[[1]])[0]
    np.testing.assert_array_equal(w.scratch_layer().data[3] == 1, want)
    w.objects_panel.commit_button.click()
    assert (masks.data[3, :, :32] == 9).all() and w.scratch_layer().data.sum() == 0
    np.testing.assert_array_equal(masks.data[3][:, 32:] == 1, want[:, 32:])
    assert "kept for other objects" in w.status_label.text() and w.object_id.value() == 2
    assert len(points.data) == 0  # object 1's prompts are kept with it, off the layer
    w.object_id.setValue(1)  # back to object 1: its prompts come back
    np.testing.assert_allclose(points.data, [[3, 30, 40]])
    w.overwrite_check.setChecked(True)
    w.segment_button.click()
    w.objects_panel.commit_button.click()
    np.testing.assert_array_equal(masks.data[3] == 1, want)
    assert w.object_id.value() == 2
    w.new_object()  # nothing to commit: a fresh id
    assert w.object_id.value() == 3


def test_keys_commit_clear_next_undo(setup, model, image):
    """S, C, N, Shift+C and Ctrl+Z through napari's keymap (the prompts layer selected)."""
    viewer, w = setup
    w.prompt_button.click()
    points, _, masks = w.prompt_layers()
    scratch = w.scratch_layer()
    press = viewer.window._qt_viewer.canvas._key_map_handler.press_key
    assert viewer.layers.selection.active is points
    points.add([3, 30, 30])
    press("S")
    want = reference(model, image, 3, points=[[[30, 30]]], labels=[[1]])[0]
    np.testing.assert_array_equal(scratch.data[3] == 1, want)
    press("C")
    np.testing.assert_array_equal(masks.data[3] == 1, want)
    assert scratch.data.sum() == 0 and w.object_id.value() == 2 and len(points.data) == 0
    points.add([3, 50, 50])
    press("S")
    assert (scratch.data[3] == 2).any()
    press("Shift-C")
    assert scratch.data.sum() == 0 and len(points.data) == 0
    press("Control-Z")  # undo the clear
    assert (scratch.data[3] == 2).any()
    press("N")  # commits object 2, then object 3
    assert (masks.data[3] == 2).any() and w.object_id.value() == 3 and scratch.data.sum() == 0
    press("Control-Z")  # undo the commit of object 2: masks without it, the scratch and its prompts back
    assert not (masks.data[3] == 2).any() and (scratch.data[3] == 2).any() and w.object_id.value() == 2
    np.testing.assert_allclose(points.data, [[3, 50, 50]])
    np.testing.assert_array_equal(masks.data[3] == 1, want)
    assert "[S]" in w.segment_button.toolTip() and "[Shift+S]" in w.objects_panel.volume_button.toolTip()


def test_embed_volume_caches_every_slice(setup, model, image, cache):
    viewer, w = setup
    reports = []
    w.embed_report.connect(reports.append)
    w.embed_button.click()
    assert not w.error_label.text(), w.error_label.text()
    assert [r.done for r in reports] == list(range(1, SHAPE[0] + 1))
    check = SliceEmbedder(model, Volume(levels=[image], contrast_limits=CL), EverySlice(), cache=cache)
    assert all(check.is_cached(z) for z in range(SHAPE[0]))
    assert w.progress_bar.value() == SHAPE[0] and w.progress_bar.maximum() == SHAPE[0]
    assert "embedded 6 slices" in w.status_label.text()
    assert w.embed_button.isEnabled() and not w.cancel_button.isEnabled()
    # again: everything comes from the cache
    w.embed_button.click()
    assert "0 encoded now, 6 from the cache" in w.status_label.text()

    # another mode is another store; cancel from the first report: the slices done stay cached
    w.mode_selector.set_mode(Tuples(d=2))
    seen = []

    def first_report(report):
        seen.append(report.z)
        if len(seen) == 1:
            assert w.cancel_button.isEnabled()
            w.cancel_button.click()

    w.embed_report.connect(first_report)
    w.embed_button.click()
    assert seen == [0]
    check = SliceEmbedder(model, Volume(levels=[image], contrast_limits=CL), Tuples(d=2), cache=cache)
    cached = [z for z in range(SHAPE[0]) if check.is_cached(z)]
    assert cached and len(cached) < SHAPE[0] and 0 in cached
    assert "cancelled" in w.status_label.text()
    assert w.embed_button.isEnabled() and not w.cancel_button.isEnabled()
    w.embed_report.disconnect(first_report)
    w.embed_button.click()  # resumes: the rest is encoded
    assert f"{SHAPE[0] - len(cached)} encoded now, {len(cached)} from the cache" in w.status_label.text()


def test_bad_checkpoint_shows_model_error(setup, tmp_path):
    viewer, w = setup
    w.prompt_button.click()
    points, _, masks = w.prompt_layers()
    points.add([3, 30, 30])
    bad = tmp_path / "finetuned.pt"
    bad.write_bytes(b"not a checkpoint")
    w.set_checkpoint(bad)
    assert "loads at the first" in w.model_label.text()
    w.segment_button.click()
    assert "not a readable checkpoint" in w.error_label.text() and "finetuned.pt" in w.error_label.text()
    assert masks.data.sum() == 0
    assert w.segment_button.isEnabled()
    w.set_checkpoint(tmp_path / "missing.pt")
    w.embed_button.click()
    assert "no such checkpoint file" in w.error_label.text()
    assert w.embed_button.isEnabled()


def test_checkpoint_file_loads(setup, model, image, tmp_path):
    from napari_scroll_sam.sam.models import save_checkpoint

    viewer, w = setup
    path = save_checkpoint(tmp_path / "tuned.pt", model)
    w.set_checkpoint(path)
    w.device_combo.setCurrentText("cpu")
    w.prompt_button.click()
    points, _, masks = w.prompt_layers()
    points.add([3, 30, 30])
    w.segment_button.click()
    assert not w.error_label.text(), w.error_label.text()
    assert "loaded: tiny:" in w.model_label.text()
    want = reference(model, image, 3, points=[[[30, 30]]], labels=[[1]])[0]
    np.testing.assert_array_equal(w.scratch_layer().data[3] == 1, want)


def test_large_volume_masks_are_zarr(setup, model, image, monkeypatch):
    monkeypatch.setattr(layers_module, "NUMPY_LABELS_MAX_VOXELS", 0)
    viewer, w = setup
    w.prompt_button.click()
    points, _, masks = w.prompt_layers()
    assert not isinstance(masks.data, np.ndarray) and not isinstance(w.scratch_layer().data, np.ndarray)
    points.add([3, 30, 30])
    w.segment_button.click()
    want = reference(model, image, 3, points=[[[30, 30]]], labels=[[1]])[0]
    np.testing.assert_array_equal(np.asarray(w.scratch_layer().data[3]) == 1, want)
    w.objects_panel.commit_button.click()
    np.testing.assert_array_equal(np.asarray(masks.data[3]) == 1, want)
    assert np.asarray(masks.data[2]).sum() == 0 and np.asarray(w.scratch_layer().data[3]).sum() == 0


def test_in_a_thread(setup, model, image, cache, monkeypatch, qtbot):
    """Without NAPARI_SCROLL_SAM_SYNC the jobs run in napari's thread workers."""
    monkeypatch.delenv("NAPARI_SCROLL_SAM_SYNC")
    viewer, w = setup
    with qtbot.waitSignal(w.embed_finished, timeout=30000) as blocker:
        w.embed_button.click()
    assert blocker.args == [False]
    check = SliceEmbedder(model, Volume(levels=[image], contrast_limits=CL), EverySlice(), cache=cache)
    assert all(check.is_cached(z) for z in range(SHAPE[0]))
    w.prompt_button.click()
    points, _, masks = w.prompt_layers()
    points.add([3, 30, 30])
    with qtbot.waitSignal(w.segment_finished, timeout=30000) as blocker:
        w.segment_button.click()
    assert blocker.args == [True], w.error_label.text()
    # the slice came from the disk cache (float16): compare with an embedder reading that cache
    emb = SliceEmbedder(model, Volume(levels=[image], contrast_limits=CL), cache=cache)
    want = segment_slice(emb, 3, points=[[[30, 30]]], labels=[[1]]).masks[0]
    np.testing.assert_array_equal(w.scratch_layer().data[3] == 1, want)
    # errors come back from the thread too
    w.set_checkpoint(cache / "nothing.pt")
    with qtbot.waitSignal(w.segment_finished, timeout=30000) as blocker:
        w.segment_button.click()
    assert blocker.args == [False] and "no such checkpoint file" in w.error_label.text()


def test_segment_volume_cancel_tells_what_is_in_the_layer(make_napari_viewer, qtbot, cache, model):
    """Shift+S walks the current object through the volume; Shift+S again cancels, and the
    count said is the count of slices in the current object; Ctrl+Z drops the walk."""
    from tests.helpers import squares_arrays

    image, truth = squares_arrays(8, 64)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="squares", contrast_limits=(0, 255))
    w = SegmentWidget(viewer)
    qtbot.addWidget(w)
    w.set_model(model)
    for name in ("min_pred_iou", "min_slice_iou", "max_area_change"):
        w.propagate_panel.stop_form.set(name, None)
    viewer.dims.set_current_step(0, 3)
    w.prompt_button.click()
    scratch = w.scratch_layer()
    w.objects_panel.session().set_slice(3, truth[3] == 2, 1)  # the object drawn on slice 3
    seen = []

    def cancel_after_two(report):
        seen.append(report.z)
        if len(seen) == 2:
            assert w.objects_panel.volume_button.text() == "Cancel"
            w.objects_panel.volume_button.click()

    w.volume_report.connect(cancel_after_two)
    w.objects_panel.volume_button.click()
    in_layer = [z for z in range(8) if scratch.data[z].any()]
    assert len(seen) == 2 and 3 in in_layer and 1 < len(in_layer) < 8
    assert f"{len(in_layer)} slice(s) ({in_layer[0]}–{in_layer[-1]})" in w.status_label.text()
    assert "cancelled" in w.status_label.text() and w.objects_panel.volume_button.text() == "Segment volume"
    w.objects_panel.undo_button.click()
    assert [z for z in range(8) if scratch.data[z].any()] == [3]


def test_review_3d(make_napari_viewer, qtbot, cache, model):
    """Review 3D: the sample's lazy image computed once (its Volume kept: same cache identity),
    ground truth hidden, the objects on top as surfaces, 3D with an oblique camera."""
    from napari_scroll_sam.io.phantom import sample_scroll

    viewer = make_napari_viewer()
    for data, meta, kind in sample_scroll(shape=(8, 64, 64)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    viewer.layers["sheets"].visible = viewer.layers["ink"].visible = True  # a user comparing with the truth
    w = SegmentWidget(viewer)
    qtbot.addWidget(w)
    before = w.volume().identity()
    w.prompt_button.click()
    hidden = w.objects_panel.review()
    image, masks = viewer.layers["scroll"], w.masks_layer()
    assert sorted(hidden) == ["ink", "sheets"] and not viewer.layers["sheets"].visible
    assert isinstance(image.data, np.ndarray) and w.volume().identity() == before
    assert list(viewer.layers)[-1] == masks and masks.rendering == "iso_categorical" and viewer.dims.ndisplay == 3
    assert not w.scratch_layer().visible  # an empty current object is not ray-cast


def test_review_3d_bright_objects_and_back_to_2d_restores(make_napari_viewer, qtbot, cache, tmp_path):
    """While reviewing, object 1 is bright (not napari's dark label-1 colour) and the image dimmed;
    going back to 2D (napari's dims button) gives every layer its opacity, visibility and
    colormap back; the masks layer's own colormap is never replaced for good."""
    from napari_scroll_sam._widgets.review import REVIEW_COLORS, end_review, reviewing
    from napari_scroll_sam.io.phantom import sample_scroll

    viewer = make_napari_viewer(show=True)
    for data, meta, kind in sample_scroll(shape=(8, 64, 64)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    viewer.layers["sheets"].visible = viewer.layers["ink"].visible = True  # a user comparing with the truth
    w = SegmentWidget(viewer)
    qtbot.addWidget(w)
    w.prompt_button.click()
    image, masks, scratch, sheets = viewer.layers["scroll"], w.masks_layer(), w.scratch_layer(), viewer.layers["sheets"]
    masks.data[:, 20:40, 20:40] = 1
    masks.data[:, 45:50, 45:50] = 2
    masks.refresh()
    image.opacity = 0.9
    masks.opacity = 0.4
    old_cmap, old_dark = masks.colormap, masks.colormap.map(1)
    keys = ("opacity", "visible")
    before = {ly.name: {k: getattr(ly, k) for k in keys} for ly in viewer.layers}
    order = [ly.name for ly in viewer.layers]
    w.objects_panel.review()
    assert [ly.name for ly in viewer.layers][-1] in (masks.name, scratch.name)  # on top while reviewing
    assert reviewing(viewer) and image.opacity == 0.6 and masks.opacity == 1.0 and not sheets.visible
    one, two = masks.colormap.map(1), masks.colormap.map(2)
    np.testing.assert_allclose(one[:3], np.array([int(REVIEW_COLORS[0][i:i + 2], 16) for i in (1, 3, 5)]) / 255,
                               atol=1e-2)
    assert one[:3].max() > 0.95 and one[:3].mean() > old_dark[:3].mean() + 0.2  # bright, unlike the default
    assert not np.allclose(one, two) and masks.colormap.map(0)[3] == 0
    qtbot.wait(50)
    shot = viewer.screenshot(str(tmp_path / "review.png"), canvas_only=True).astype(int)
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    assert ((b > 200) & (g > 150) & (r < 100)).sum() > 100  # object 1 drawn bright cyan
    viewer.dims.ndisplay = 2  # napari's own 2D button
    assert not reviewing(viewer)
    assert {ly.name: {k: getattr(ly, k) for k in keys} for ly in viewer.layers} == before
    assert [ly.name for ly in viewer.layers] == order  # the layer list's order back too
    assert masks.colormap is old_cmap and scratch.visible and sheets.visible and image.opacity == 0.9
    assert not end_review(viewer)  # nothing left to put back
    viewer.dims.ndisplay = 3  # plain 3D afterwards: no review, nothing changed
    assert image.opacity == 0.9 and masks.colormap is old_cmap


def test_a_weights_download_shows_in_napari_progress(setup):
    from napari.utils import progress

    from napari_scroll_sam.sam.weights import DownloadReport

    viewer, w = setup
    before = len(progress._all_instances)
    assert w.models.on_item(DownloadReport("vit_b", 0, 0))  # total not known yet
    assert w.model_label.text() == "downloading vit_b…" and len(progress._all_instances) == before + 1
    assert w.models.on_item(DownloadReport("vit_b", 50 << 20, 375 << 20))
    bar = w.models._bar
    assert (bar.n, bar.total) == (50 << 20, 375 << 20) and w.model_label.text() == "downloading vit_b: 50 / 375 MB"
    assert w.models.on_item(DownloadReport("vit_b", 375 << 20, 375 << 20, finished=True))
    assert w.models._bar is None and len(progress._all_instances) == before
    assert "downloading" not in w.model_label.text()
    assert not w.models.on_item("news") and not w.models.on_item(object())


def test_a_masks_layer_of_another_shape_is_named(setup, model, image):
    """A '<image> masks' layer that does not fit the image: Segment names it and the image."""
    viewer, w = setup
    viewer.add_labels(np.zeros((6, 32, 32), np.uint32), name="scroll" + MASKS_SUFFIX)
    w.prompt_button.click()
    w.points_layer().add([3, 30, 30])
    w.segment_button.click()
    text = w.error_label.text()
    assert "the layer 'scroll masks' is (6, 32, 32) but the image 'scroll' is (6, 64, 64)" in text, text
    assert w.scratch_layer().data.sum() == 0


@pytest.mark.parametrize("prompt", ["click", "box"])
def test_one_click_on_a_scroll_wrap_gives_its_turn(make_napari_viewer, qtbot, cache, model, monkeypatch, prompt):
    """S with one click (or one box) on a wrap of a scroll: the turn the click lies on (the box
    was drawn around), read from the image, though SAM's mask ran on along the next turn;
    Other mask (O) shows SAM's own masks."""
    import napari_scroll_sam.sam.segment as seg_module
    from napari_scroll_sam.prompts import farthest_from_boundary
    from napari_scroll_sam.sam.predictor import Prediction

    image, sheets, _ = scroll_phantom((4, 256, 256), seed=0)
    image, gt = image.compute(), np.asarray(sheets[2])
    click = farthest_from_boundary(gt == 5)
    yy, xx = np.indices(gt.shape)
    spilled = (gt == 5) | ((gt == 6) & (np.hypot(yy - click[0], xx - click[1]) < 60))
    real = seg_module.segment_slice

    def sam(emb, z, output=None, **prompts):  # SAM's single mask of the click runs onto wrap 6
        if output is not None:
            return real(emb, z, output=output, **prompts)
        return Prediction(spilled[None], np.ones(1, np.float32), None)

    monkeypatch.setattr(seg_module, "segment_slice", sam)
    viewer, w = open_segment(make_napari_viewer, qtbot, image, model, 2)
    w.prompt_button.click()
    if prompt == "click":
        w.points_layer().add([2, *click])
    else:
        ys, xs = np.nonzero(gt == 5)
        w.prompt_layers()[1].add_rectangles(rect(2, ys.min(), xs.min(), ys.max(), xs.max()))
    w.segment_button.click()
    assert not w.error_label.text(), w.error_label.text()
    got = w.scratch_layer().data[2] == 1
    iou = lambda a, b: (a & b).sum() / max((a | b).sum(), 1)  # noqa: E731
    assert iou(got, gt == 5) > 0.9 > iou(spilled, gt == 5) + 0.05
    assert "the turn of the scroll it lies on" in w.status_label.text()
    w.objects_panel.other_button.click()  # SAM's own masks: not re-cut
    assert "mask 2 of 4" in w.status_label.text() and "turn of the scroll" not in w.status_label.text()
