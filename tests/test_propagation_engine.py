"""The walk does not trust the model blindly: motion prior, corridor, judge, sources, options.

An oracle model (exact answers) must give exact results through the engine; an adversarial
model (it always answers the neighbouring object) must not pull a walk off its object.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.propagation import PropagationError, Seed, StopRule, WalkConfig, propagate
from napari_scroll_sam.propagation.engine import iou
from napari_scroll_sam.propagation.flow import FLOWS, flow
from napari_scroll_sam.propagation.prior import MotionField, Track, corridor, signed_distance, snap, touching
from napari_scroll_sam.sam.predictor import Prediction
from tests.test_propagation import OracleEmbedder, OraclePredictor


def two_discs(n=24, shape=(64, 64)):
    """Objects 1 and 2: discs of radius 6 side by side (8 px apart), both drifting +1 px in x per slice."""
    gt = np.zeros((n, *shape), np.uint32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for z in range(n):
        gt[z][(yy - 20) ** 2 + (xx - 12 - z) ** 2 <= 36] = 1
        gt[z][(yy - 40) ** 2 + (xx - 12 - z) ** 2 <= 36] = 2
    return gt


class Adversary(OraclePredictor):
    """Answers the *other* object's true mask, with a confident predicted IoU."""

    def predict(self, embedding, original_size, points=None, point_labels=None, boxes=None, mask_input=None,
                multimask=False):
        res = super().predict(embedding, original_size, points, point_labels, boxes, mask_input, multimask)
        z = int(embedding.flatten()[0])
        swapped = []
        for m in res.masks:
            ids = np.unique(self.gt[z][m])
            own = int(ids[ids > 0][0]) if (ids > 0).any() else 0
            swapped.append(self.gt[z] == (3 - own) if own else m)
        return Prediction(np.stack(swapped), np.full(len(swapped), 0.99, np.float32), res.logits)


def run(gt, seeds, predictor, **kw):
    """The model asked on every slice unless ``walk`` says otherwise (these test what it answers)."""
    labels = np.zeros(gt.shape, np.uint32)
    kw.setdefault("walk", WalkConfig(model_every=1))
    reports = list(propagate(OracleEmbedder(gt), seeds, labels, predictor=predictor, **kw))
    return labels, reports


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_oracle_model_gives_exact_masks_through_the_prior_and_says_so():
    gt = two_discs()
    seeds = [Seed(1, 12, mask=gt[12] == 1), Seed(2, 12, mask=gt[12] == 2)]
    labels, reports = run(gt, seeds, OraclePredictor(gt), stop=StopRule.off())
    np.testing.assert_array_equal(labels, gt)
    walked = [r for r in reports if r.direction]
    assert walked and all(r.source == "model" and r.agreement > 0.7 for r in walked)


def test_adversarial_model_does_not_pull_the_walk_onto_the_neighbour():
    gt = two_discs()
    seeds = [Seed(1, 12, mask=gt[12] == 1), Seed(2, 12, mask=gt[12] == 2)]
    labels, reports = run(gt, seeds, Adversary(gt), stop=StopRule.off())
    for oid in (1, 2):
        per = [iou(labels[z] == oid, gt[z] == oid) for z in range(gt.shape[0])]
        assert min(per) > 0.7, (oid, per)  # followed by the motion prior, never swapped
    walked = [r for r in reports if r.direction]
    assert walked and all(r.source == "prior" for r in walked)
    # the blind walk of old takes the adversary's word: the objects swap at once
    blind, _ = run(gt, seeds, Adversary(gt), stop=StopRule.off(), walk=WalkConfig.blind())
    assert iou(blind[13] == 1, gt[13] == 2) > 0.9


def test_empty_answers_are_bridged_by_the_prior_when_the_object_comes_back():
    gt = two_discs()[:, :, :]
    pred = OraclePredictor(gt)
    real = pred.predict

    def flaky(embedding, original_size, **kw):  # the model sees nothing on slices 15 and 16
        res = real(embedding, original_size, **kw)
        if int(embedding.flatten()[0]) in (15, 16):
            res.masks[:] = False
        return res

    pred.predict = flaky
    labels, reports = run(gt, [Seed(1, 12, mask=gt[12] == 1)], pred, stop=StopRule(max_empty=3), direction="up")
    assert all(iou(labels[z] == 1, gt[z] == 1) > 0.7 for z in range(12, 24))
    assert {r.z for r in reports if r.source == "empty"} == {15, 16}
    # with max_empty=2 the rule fires on slice 16: the empty run is not written, the walk stops
    labels, reports = run(gt, [Seed(1, 12, mask=gt[12] == 1)], pred, stop=StopRule(max_empty=2), direction="up")
    assert not (labels[15:] == 1).any() and [r.z for r in reports if r.stopped] == [16]


def test_per_object_z_limits_and_stop_rules_disabled_by_none():
    gt = two_discs()
    seeds = [Seed(1, 12, mask=gt[12] == 1), Seed(2, 12, mask=gt[12] == 2)]
    stop = StopRule(min_pred_iou=None, min_slice_iou=None, max_area_change=None, max_empty=None)
    labels, _ = run(gt, seeds, OraclePredictor(gt), stop=stop, z_limits={1: (10, 15), 2: (5, 20)})
    assert [bool((labels[z] == 1).any()) for z in range(24)] == [10 <= z < 15 for z in range(24)]
    assert [bool((labels[z] == 2).any()) for z in range(24)] == [5 <= z < 20 for z in range(24)]


def test_motion_field_follows_a_shift_and_the_soft_track_carries_a_thin_sheet():
    yy, xx = np.mgrid[:64, :64]
    img = np.sin(xx / 3.0) * np.cos(yy / 4.0) * 0.5 + 0.5
    nxt = np.roll(img, 2, axis=1)  # content moves +2 px in x
    f = MotionField.between(img.astype(np.float32), nxt.astype(np.float32), (0, 0, 64, 64), (64, 64))
    assert np.median(f.flow[1][10:-10, 10:-10]) == pytest.approx(-2, abs=0.3)
    sheet = np.zeros((64, 64), bool)
    sheet[:, 30:32] = True  # 2 px thick
    step = MotionField((0, 0, 64, 64), np.stack([np.zeros((64, 64)), np.full((64, 64), -0.3)]).astype(np.float32),
                       (64, 64))
    track, warped = Track(sheet), sheet.copy()
    for _ in range(10):  # 10 steps of 0.3 px: 3 px
        track.advance(step)
        warped = step.warp(np.where(warped, 1.0, -1.0)) > 0
    moved = track.sdf() > 0
    assert moved[:, 33:35].all() and moved.sum() == sheet.sum()  # moved 3 px, still 2 px thick
    assert warped[:, 30:32].all()  # re-thresholding each slice: stuck where it started


@pytest.mark.parametrize("method", FLOWS)
@pytest.mark.parametrize("size, max_side", [(64, 256), (300, 128)])  # whole, and block-averaged to 1/3
def test_each_flow_method_recovers_a_smooth_shift(method, size, max_side):
    yy, xx = np.mgrid[:size, :size]
    k = size / 64  # structures that stay resolved at every pyramid level
    img = (np.sin(xx / (5.0 * k)) * np.cos(yy / (6.0 * k)) * 0.4 + 0.5).astype(np.float32)
    nxt = np.roll(np.roll(img, 2, axis=1), -1, axis=0)  # content moves +2 px in x, -1 px in y
    f = flow(img, nxt, method, max_side=max_side)
    assert f.shape == (2, size, size) and f.dtype == np.float32
    inner = (slice(12, -12), slice(12, -12))
    assert np.median(f[1][inner]) == pytest.approx(-2, abs=0.3)  # a pixel of nxt was 2 px left in img
    assert np.median(f[0][inner]) == pytest.approx(1, abs=0.3)


@pytest.mark.parametrize("opencv", [True, False])
def test_closed_form_ilk_matches_scikit_image(opencv, monkeypatch):
    """The same field with OpenCV's warp and window sums as with scipy's."""
    from skimage.registration import optical_flow_ilk

    from napari_scroll_sam.propagation import flow as flow_module

    if opencv:
        pytest.importorskip("cv2")
    monkeypatch.setattr(flow_module, "USE_CV2", opencv)

    rng = np.random.default_rng(0)
    from scipy import ndimage

    img = ndimage.gaussian_filter(rng.random((96, 96)), 3).astype(np.float32)
    img = (img - img.min()) / np.ptp(img)
    yy, xx = np.mgrid[:96, :96].astype(np.float32)
    nxt = ndimage.map_coordinates(img, [yy - 0.5 * np.sin(xx / 20), xx + 1.2], order=1, mode="nearest")
    ours = flow(img, nxt, "ilk", radius=7, num_warp=3)
    ref = optical_flow_ilk(nxt, img, radius=7, num_warp=3)
    inner = (slice(16, -16),) * 2
    assert np.abs(ours[0][inner] - ref[0][inner]).mean() < 0.1 and np.abs(ours[1][inner] - ref[1][inner]).mean() < 0.1
    with pytest.raises(ValueError, match="flow method 'tv' must be one of"):
        flow(img, nxt, "tv")


def test_snap_moves_only_the_band_near_the_boundary_onto_the_edge():
    img = np.zeros((80, 80), np.float32)
    img[20:60, 20:60] = 1.0  # the object's true edge
    prior = np.zeros((80, 80), bool)
    prior[21:61, 21:61] = True  # carried 1 px off
    far = np.zeros((80, 80), bool)
    sdf = signed_distance(prior)
    snapped = snap(sdf, img, (0, 0, 80, 80), reach=2.0, sigma=0.5)
    assert iou(snapped, img > 0) > iou(prior, img > 0) and iou(snapped, img > 0) > 0.97
    assert not (snapped & ~corridor(prior, 3)).any() and not snapped[far].any()
    sub = snap(sdf, img[10:70, 10:70], (10, 10, 70, 70), reach=2.0, sigma=0.5)  # a crop of the box only
    assert (sub == snapped).all()


def test_snap_never_grows_a_thin_sheet_onto_its_touching_neighbour():
    img = np.zeros((40, 40), np.float32)
    img[:, 10:13] = 1.0  # sheet A, 3 px
    img[:, 13] = 0.5  # a faint gap
    img[:, 14:17] = 1.0  # sheet B
    b = np.zeros((40, 40), bool)
    b[:, 14:17] = True
    carried = np.zeros((40, 40), bool)
    carried[:, 11:14] = True  # A carried 1 px onto the gap
    sdf = signed_distance(carried)
    alone = snap(sdf, img, (0, 0, 40, 40), reach=2.0, sigma=1.0)
    held = snap(sdf, img, (0, 0, 40, 40), reach=2.0, sigma=1.0, others=b)
    assert (alone & b).any()  # the edges alone let it spill onto B
    assert not (held & b).any() and held[:, 11:13].all()  # B's pixels count as outside


def test_corridor_and_touching():
    prior = np.zeros((40, 40), bool)
    prior[10:20, 10:20] = True
    far = np.zeros((40, 40), bool)
    far[30:35, 30:35] = True
    c = corridor(prior, 3)
    assert c[10:20, 7].all() and not c[10:20, 6].any()
    assert not touching(far | prior, prior)[30:35, 30:35].any() and touching(far | prior, prior)[12, 12]


@pytest.mark.parametrize("kw, msg", [
    ({"memory": -1}, "memory=-1 must be an integer >= 1"),
    ({"memory": 2.5}, "memory=2.5 must be an integer"),
    ({"corridor": float("nan")}, "corridor=nan must be a finite number"),
    ({"adapt_steps": -3}, "adapt_steps=-3"),
    ({"accept": 1.5}, "accept=1.5"),
    ({"prior": "magic"}, "prior='magic'"),
    ({"flow": "farneback"}, "flow='farneback'"),
])
def test_bad_walk_options_are_refused_before_anything_is_written(kw, msg):
    with pytest.raises(PropagationError, match=msg):
        WalkConfig(**kw)


def test_bad_stop_rules_and_walk_type_are_refused():
    for kw in ({"max_empty": 0}, {"max_empty": 1.5}, {"max_area_change": 0.5}, {"min_slice_iou": -0.1}):
        with pytest.raises(PropagationError):
            StopRule(**kw)
    gt = two_discs()
    labels = np.zeros(gt.shape, np.uint32)
    with pytest.raises(PropagationError, match="walk must be a WalkConfig"):
        propagate(OracleEmbedder(gt), [Seed(1, 3, mask=gt[3] == 1)], labels, walk={"prior": "flow"})
    with pytest.raises(PropagationError, match="box"):
        propagate(OracleEmbedder(gt), [Seed(1, 3, box=[30, 30, 10, 10])], labels)
    with pytest.raises(PropagationError, match="finite"):
        propagate(OracleEmbedder(gt), [Seed(1, 3, points=[[np.nan, 3]])], labels)
    assert not labels.any()



@pytest.mark.parametrize("every", [1, 4])
def test_max_overruled_stops_a_walk_the_model_no_longer_backs(every):
    """Asking the model every 4th slice stops where asking it on each does: the walk rewinds
    over the carried slices when the rule fires, and none past the stop is written."""
    gt = two_discs()
    seeds = [Seed(1, 12, mask=gt[12] == 1), Seed(2, 12, mask=gt[12] == 2)]
    labels, reports = run(gt, seeds, Adversary(gt), stop=StopRule(max_overruled=3), direction="up",
                          walk=WalkConfig(model_every=every))
    stops = [r for r in reports if r.stopped]
    assert {(r.object_id, r.z) for r in stops} == {(1, 15), (2, 15)}
    assert all("disagreed" in r.stopped for r in stops)
    assert (labels[13:15] > 0).any() and not (labels[15:] > 0).any()


def test_summary_says_per_object_how_far_and_why():
    from napari_scroll_sam.propagation import summarize, walk_summary

    gt = two_discs()
    _, reports = run(gt, [Seed(1, 12, mask=gt[12] == 1)], OraclePredictor(gt), stop=StopRule(max_empty=2),
                     z_limits=(4, 24))
    s = summarize(reports)[1]
    assert s["slices"] == 20 and s["range"] == (4, 23)
    assert s["stops"] == {"up": "reached the limit", "down": "reached the limit"}
    assert s["sources"] == {"seed": 1, "model": 19}
    assert walk_summary(reports) == ["object 1: 20 slices (slices 4..23); up: reached the limit; down: reached "
                                     "the limit; masks from seed 1, model 19"]


class Spreader(OraclePredictor):
    """A click answers both discs at once (the mask spreads onto the neighbour), confidently."""

    def predict(self, embedding, original_size, points=None, point_labels=None, boxes=None, mask_input=None,
                multimask=False):
        res = super().predict(embedding, original_size, points, point_labels, boxes, mask_input, multimask)
        z = int(embedding.flatten()[0])
        both = np.stack([self.gt[z] > 0] * len(res.masks))
        return Prediction(both, np.full(len(both), 0.9, np.float32), res.logits)


@pytest.mark.parametrize("compete", [True, False])
def test_objects_clicked_together_share_their_slice_out(compete):
    """One click on each of two discs, both answered with both discs: competing, each seed
    keeps the disc its click is on; without competition the first takes both."""
    gt = two_discs()
    seeds = [Seed(1, 12, points=[[20, 24]]), Seed(2, 12, points=[[40, 24]])]
    labels, reports = run(gt, seeds, Spreader(gt), stop=StopRule.off(), z_limits=(12, 13),
                          walk=WalkConfig(compete=compete, model_every=1, refine=False))
    if compete:
        np.testing.assert_array_equal(labels[12], gt[12])
    else:
        assert set(np.unique(labels[12])) == {0, 1} and (labels[12] == 1).sum() == (gt[12] > 0).sum()


def test_split_seeds_cuts_a_sheet_between_its_clicks():
    """A 60-px sheet both masks claim whole, clicked at x=10 and x=50: cut in the middle."""
    from napari_scroll_sam.propagation.engine import split_seeds

    sheet = np.zeros((20, 64), bool)
    sheet[8:12, 2:62] = True
    a, b = split_seeds([sheet, sheet], [np.array([[10, 10]]), np.array([[10, 50]])])
    assert not (a & b).any() and ((a | b) == sheet).all()
    cols_a, cols_b = np.flatnonzero(a.any(axis=0)), np.flatnonzero(b.any(axis=0))
    assert cols_a.max() < cols_b.min() and abs((cols_a.max() + cols_b.min()) / 2 - 30) <= 1.5
    # overlaps_only: a pixel only one mask claims stays with it
    lone = sheet.copy()
    lone[0, 60] = True
    a2, b2 = split_seeds([lone, sheet], [np.array([[10, 10]]), np.array([[10, 50]])], overlaps_only=True)
    assert a2[0, 60] and not b2[0, 60]
    a3, b3 = split_seeds([lone, sheet], [np.array([[10, 10]]), np.array([[10, 50]])])
    assert not a3[0, 60] and not b3[0, 60]  # the whole union shared out: no click reaches it -> dropped
    # one object: unchanged
    (same,) = split_seeds([sheet], [np.array([[10, 10]])])
    assert (same == sheet).all()


def test_a_small_object_moving_its_own_width_is_not_a_jump():
    """A disc of radius 3 moving 6 px a slice: IoU with the previous slice is 0, but the
    motion prior carries it, so the slice-IoU rule (default 0.1) does not stop the walk;
    the blind walk has no prior to carry it and stops at once."""
    n = 10
    gt = np.zeros((n, 64, 96), np.uint32)
    yy, xx = np.mgrid[:64, :96]
    for z in range(n):
        gt[z][(yy - 32) ** 2 + (xx - 20 - 6 * z) ** 2 <= 9] = 1
    seeds = [Seed(1, 0, mask=gt[0] == 1)]
    labels, reports = run(gt, seeds, OraclePredictor(gt), stop=StopRule(), direction="up")
    assert not any(r.stopped for r in reports)
    assert all(iou(labels[z] == 1, gt[z] == 1) > 0.6 for z in range(n))  # followed (IoU with the last place: 0)
    _, blind = run(gt, seeds, OraclePredictor(gt), stop=StopRule(), direction="up", walk=WalkConfig.blind())
    assert [r.stopped for r in blind if r.stopped] and "IoU with the previous slice" in next(
        r.stopped for r in blind if r.stopped)


def test_summary_of_a_cancelled_walk_says_where_it_was():
    from napari_scroll_sam.propagation import walk_summary

    gt = two_discs()
    _, reports = run(gt, [Seed(1, 12, mask=gt[12] == 1)], OraclePredictor(gt), stop=StopRule(max_empty=2),
                     z_limits=(4, 24))
    cut = [r for r in reports if r.direction >= 0 and r.z <= 17]  # cancelled going up, before going down
    line, = walk_summary(cut, cancelled=True)
    assert "up: cancelled after slice 17" in line and "down: cancelled before it began" in line
    assert "reached the limit" not in line


def test_area_share_rule_stops_where_the_object_fades():
    """``min_area_share``: the walk stops where the mask falls below that share of its anchor's
    area (the slice is not written); off by default."""
    gt = np.zeros((12, 32, 32), np.uint8)
    for z in range(12):  # a disc shrinking away from its anchor on slice 2
        r = max(0, 8 - z)
        yy, xx = np.mgrid[:32, :32]
        gt[z] = ((yy - 16) ** 2 + (xx - 16) ** 2) < r * r
    assert StopRule().min_area_share is None
    _, reports = run(gt, [Seed(1, 2, mask=gt[2] == 1)], OraclePredictor(gt), stop=StopRule(min_area_share=0.3),
                     direction="up")
    stop, = [r for r in reports if r.stopped]
    a0 = int((gt[2] == 1).sum())
    assert "of the anchor's" in stop.stopped and stop.area < 0.3 * a0
    written = [r.z for r in reports if r.direction and not r.stopped]
    assert written and all((gt[z] == 1).sum() >= 0.3 * a0 for z in written) and stop.z == max(written) + 1
    with pytest.raises(PropagationError, match="min_area_share=2"):
        StopRule(min_area_share=2)
