"""Layer contents → prompts on one slice; masks → a labels volume (numpy and zarr)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.sam.layer_prompts import on_slice, paste_mask, prompts_on_slice
from napari_scroll_sam.sam.predictor import PromptError


def rect(z, y0, x0, y1, x1):
    return np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float)


def test_points_on_the_slice_only():
    pts = np.array([[3, 10, 20], [2.9999, 11, 21], [4, 30, 40], [3.2, 12, 22], [3, 5, 6]])
    pos = np.array([True, True, True, False, True])
    p = prompts_on_slice(pts, pos, z=3)
    np.testing.assert_array_equal(p["points"], [[[10, 20], [11, 21], [12, 22], [5, 6]]])
    np.testing.assert_array_equal(p["labels"], [[1, 1, 0, 1]])
    assert p["points"].shape == (1, 4, 2) and p["labels"].shape == (1, 4) and p["box"] is None
    # default: all positive
    q = prompts_on_slice(pts, z=4)
    np.testing.assert_array_equal(q["points"], [[[30, 40]]])
    np.testing.assert_array_equal(q["labels"], [[1]])


def test_rounding_rule():
    assert list(on_slice([2.5, 2.49, 3.49, 3.5, -0.4], 3)) == [True, False, True, False, False]
    assert on_slice(-0.4, 0)


def test_box_alone_and_with_points():
    boxes = [rect(3, 8, 9, 30, 40), rect(5, 0, 0, 10, 10)]
    p = prompts_on_slice(None, None, boxes, z=3)
    np.testing.assert_array_equal(p["box"], [[8, 9, 30, 40]])
    assert p["points"].shape == (1, 0, 2) and p["labels"].shape == (1, 0)
    p = prompts_on_slice(np.array([[3, 12, 14]]), np.array([False]), boxes, z=3)
    np.testing.assert_array_equal(p["box"], [[8, 9, 30, 40]])
    np.testing.assert_array_equal(p["points"], [[[12, 14]]])
    np.testing.assert_array_equal(p["labels"], [[0]])  # a negative point is fine with a box


def test_several_boxes_one_prompt_each_with_all_points():
    boxes = [rect(3, 0, 0, 10, 10), rect(3, 20, 20, 30, 35), rect(2, 0, 0, 5, 5)]
    pts = np.array([[3, 5, 5], [3, 25, 25], [1, 1, 1]])
    p = prompts_on_slice(pts, np.array([True, False, True]), boxes, z=3)
    np.testing.assert_array_equal(p["box"], [[0, 0, 10, 10], [20, 20, 30, 35]])
    assert p["points"].shape == (2, 2, 2) and p["labels"].shape == (2, 2)
    np.testing.assert_array_equal(p["points"][0], p["points"][1])
    np.testing.assert_array_equal(p["labels"], [[1, 0], [1, 0]])


def test_2d_boxes_and_points_lie_on_every_slice():
    box2d = np.array([[4, 2], [4, 9], [11, 9], [11, 2]], float)
    p = prompts_on_slice(np.array([[6, 5]]), None, [box2d], z=17)
    np.testing.assert_array_equal(p["box"], [[4, 2, 11, 9]])
    np.testing.assert_array_equal(p["points"], [[[6, 5]]])


def test_rotated_rectangle_gives_its_bounding_box():
    v = np.array([[1, 0, 5], [1, 5, 10], [1, 10, 5], [1, 5, 0]], float)
    np.testing.assert_array_equal(prompts_on_slice(boxes=[v], z=1)["box"], [[0, 0, 10, 10]])


def test_no_prompt_on_slice_names_where_they_are():
    pts = np.array([[2, 1, 1], [7, 3, 3]])
    with pytest.raises(PromptError, match=r"no point or box on slice 12.*points are on slice\(s\) 2, 7"):
        prompts_on_slice(pts, None, [rect(5, 0, 0, 3, 3)], z=12)
    with pytest.raises(PromptError, match=r"boxes are on slice\(s\) 5"):
        prompts_on_slice(pts, None, [rect(5, 0, 0, 3, 3)], z=12)
    with pytest.raises(PromptError, match="no point or box on slice 0: add a point"):
        prompts_on_slice(np.zeros((0, 3)), np.zeros(0, bool), [], z=0)
    with pytest.raises(PromptError, match="no point or box on slice 0"):
        prompts_on_slice(z=0)


def test_only_negative_points_is_an_error():
    with pytest.raises(PromptError, match="only negative points on slice 3"):
        prompts_on_slice(np.array([[3, 1, 1]]), np.array([False]), z=3)


def test_image_shape_checks_points_and_clips_boxes():
    with pytest.raises(PromptError, match=r"outside the image \(64 x 48 pixels\)"):
        prompts_on_slice(np.array([[0, 10, 60]]), z=0, image_shape=(5, 64, 48))
    p = prompts_on_slice(boxes=[rect(0, -5, 10, 80, 20)], z=0, image_shape=(64, 48))
    np.testing.assert_array_equal(p["box"], [[0, 10, 63, 20]])
    with pytest.raises(PromptError, match="box on slice 0 .* is outside the image"):
        prompts_on_slice(boxes=[rect(0, 70, 10, 80, 20)], z=0, image_shape=(64, 48))


def test_bad_shapes():
    with pytest.raises(PromptError, match="points must be"):
        prompts_on_slice(np.zeros((3, 4)), z=0)
    with pytest.raises(PromptError, match="3 points but 2 positive"):
        prompts_on_slice(np.zeros((3, 3)), np.ones(2, bool), z=0)
    with pytest.raises(PromptError, match="vertices"):
        prompts_on_slice(boxes=[np.zeros((4, 5))], z=0)


def test_prompts_feed_segment_slice():
    """The dict goes straight into segment_slice (one box, several boxes)."""
    from napari_scroll_sam.io.phantom import scroll_phantom
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.sam.embeddings import SliceEmbedder
    from napari_scroll_sam.sam.segment import segment_slice
    from tests.helpers import tiny_model

    image, _, _ = scroll_phantom((2, 48, 48), seed=0)
    emb = SliceEmbedder(tiny_model(), Volume(levels=[image], contrast_limits=(7000, 40000)), cache=False)
    one = prompts_on_slice(np.array([[1, 20, 20]]), None, [rect(1, 5, 5, 30, 30)], z=1)
    assert segment_slice(emb, 1, **one).masks.shape == (1, 48, 48)
    two = prompts_on_slice(np.array([[1, 20, 20]]), None, [rect(1, 5, 5, 30, 30), rect(1, 0, 0, 9, 9)], z=1)
    assert segment_slice(emb, 1, **two).masks.shape == (2, 48, 48)
    box_only = prompts_on_slice(None, None, [rect(1, 5, 5, 30, 30)], z=1)
    assert segment_slice(emb, 1, **box_only).masks.shape == (1, 48, 48)


# --- paste_mask ------------------------------------------------------------------------------


def test_paste_writes_the_slice_only():
    labels = np.zeros((4, 5, 6), np.uint32)
    labels[1, 0, 0] = 7
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    assert paste_mask(labels, 2, mask, 3) == 6
    assert (labels[2] == 3).sum() == 6 and np.array_equal(labels[2] == 3, mask)
    assert labels[1, 0, 0] == 7 and labels[[0, 3]].sum() == 0 and labels[1].sum() == 7


def test_paste_replaces_the_objects_old_pixels():
    labels = np.zeros((2, 5, 5), np.uint16)
    a = np.zeros((5, 5), bool)
    a[0:2] = True
    b = np.zeros((5, 5), bool)
    b[3:5] = True
    paste_mask(labels, 0, a, 1)
    labels[1] = 1  # the same object on another slice stays
    assert paste_mask(labels, 0, b, 1) == 10
    assert np.array_equal(labels[0] == 1, b) and (labels[1] == 1).all()


def test_paste_keeps_other_objects_unless_overwrite():
    labels = np.zeros((1, 4, 4), np.uint32)
    labels[0, :, :2] = 5
    full = np.ones((4, 4), bool)
    assert paste_mask(labels, 0, full, 2) == 8
    assert (labels[0, :, :2] == 5).all() and (labels[0, :, 2:] == 2).all()
    assert paste_mask(labels, 0, full, 2, overwrite=True) == 16
    assert (labels[0] == 2).all()


def test_paste_into_zarr_writes_one_slice():
    zarr = pytest.importorskip("zarr")
    labels = zarr.create_array(store=zarr.storage.MemoryStore(), shape=(3, 8, 8), chunks=(1, 8, 8), dtype="uint32",
                               fill_value=0, config={"write_empty_chunks": False})
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    assert paste_mask(labels, 1, mask, 4) == 16
    out = labels[:]
    assert np.array_equal(out[1] == 4, mask) and out[0].sum() == 0 and out[2].sum() == 0
    assert sorted(k for k in labels.store_path.store._store_dict if k.startswith("c/")) == ["c/1/0/0"]


def test_paste_bad_input_writes_nothing():
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[0] = 1
    before = labels.copy()
    with pytest.raises(ValueError, match="positive"):
        paste_mask(labels, 0, np.ones((4, 4), bool), 0)
    with pytest.raises(ValueError, match="does not fit a labels slice"):
        paste_mask(labels, 0, np.ones((3, 4), bool), 2)
    with pytest.raises(ValueError, match="outside the labels"):
        paste_mask(labels, 2, np.ones((4, 4), bool), 2)
    with pytest.raises(ValueError, match="does not fit the labels' dtype uint8"):
        paste_mask(labels, 0, np.ones((4, 4), bool), 300)
    assert np.array_equal(labels, before)
