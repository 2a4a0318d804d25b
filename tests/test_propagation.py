"""Propagation: anchors, gaps filled from both sides, stop rules, overlaps, cancel, bad input.

The walk logic is tested with an oracle "SAM" that returns the ground-truth
component under the prompt (so results are exact); a real small model checks
the wiring end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.propagation import PropagationError, Seed, StopRule, WalkConfig, propagate

BLIND = WalkConfig.blind()  # the model's answers as they are: tests of the stop rules themselves
EVERY = WalkConfig(model_every=1, refine=False)  # the model asked on every slice: tests of what it answers there
EXACT = WalkConfig(refine=False)  # a clicked seed's mask as the oracle drew it (refining it is tested on its own)
from napari_scroll_sam.sam.embeddings import SliceEmbedder, SliceEmbedding
from napari_scroll_sam.sam.predictor import Prediction
from napari_scroll_sam.sam.tiling import grid_for
from tests.helpers import tiny_model


class OracleEmbedder:
    """Stands in for SliceEmbedder: the 'embedding' of slice z just carries z."""

    def __init__(self, gt):
        self.volume = Volume(levels=[gt.astype(np.uint16)], contrast_limits=(0, 10), name="gt")
        self.tiles = grid_for(gt.shape[1:], None)
        self.batch_size = 4
        self.model = None
        self.embedded = []

    def is_cached(self, z):
        return z in self.embedded

    def embed(self, zs):
        self.embedded.extend(zs)
        yield from ()

    def get(self, z):
        self.got = getattr(self, "got", []) + [z]
        return SliceEmbedding(z, torch.full((1, 1, 1, 1), float(z)), self.tiles, self.volume.shape[1:])


class OraclePredictor:
    """The ground-truth object under the positive points (within the box), IoU ``iou(z, id)``."""

    def __init__(self, gt, iou=lambda z, oid: 0.95):
        self.gt, self.iou = gt, iou

    def predict(self, embedding, original_size, points=None, point_labels=None, boxes=None, mask_input=None,
                multimask=False):
        self.calls = getattr(self, "calls", 0) + 1
        z = int(embedding.flatten()[0])
        n = len(points) if points is not None else len(np.asarray(boxes).reshape(-1, 4))
        masks, ious = [], []
        for i in range(n):
            pts = None if points is None else np.asarray(points)[i]
            lab = None if points is None else np.asarray(point_labels)[i]
            box = None if boxes is None else np.asarray(boxes).reshape(-1, 4)[i]
            oid = self._object(z, pts, lab, box)
            masks.append((self.gt[z] == oid) if oid else np.zeros(self.gt.shape[1:], bool))
            ious.append(self.iou(z, oid))
        return Prediction(np.stack(masks), np.array(ious, np.float32), torch.zeros((n, 1, 4, 4)))

    def _object(self, z, pts, lab, box):
        sl = self.gt[z]
        if pts is not None:
            for (y, x), l in zip(pts, lab):
                if l > 0 and sl[int(round(y)), int(round(x))]:
                    return sl[int(round(y)), int(round(x))]
        if box is not None:
            y0, x0, y1, x1 = box.round().astype(int)
            vals = sl[y0:y1 + 1, x0:x1 + 1]
            vals = vals[vals > 0]
            return np.bincount(vals).argmax() if len(vals) else 0
        return 0


def tube_volume(n=20, shape=(60, 60)):
    """Object 1: a disc drifting 1 px per slice, present on slices 3..16; object 2: a bar, all slices."""
    gt = np.zeros((n, *shape), np.uint32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for z in range(n):
        if 3 <= z <= 16:
            gt[z][(yy - 20) ** 2 + (xx - 15 - z) ** 2 <= 36] = 1
        gt[z, 45:52, 5:55] = 2
    return gt


def run(gt, seeds, labels=None, **kw):
    emb = OracleEmbedder(gt)
    labels = np.zeros(gt.shape, np.uint32) if labels is None else labels
    kw.setdefault("walk", EVERY)
    reports = list(propagate(emb, seeds, labels, predictor=kw.pop("predictor", OraclePredictor(gt)), **kw))
    return labels, reports


def test_one_point_follows_the_object_both_ways_and_stops_where_it_ends():
    gt = tube_volume()
    labels, reports = run(gt, [Seed(1, 10, points=[[20, 25]])], stop=StopRule(max_empty=2))
    np.testing.assert_array_equal(labels == 1, gt == 1)  # slices 3..16 exactly, nothing else
    stops = [r for r in reports if r.stopped]
    assert {(r.direction, r.z) for r in stops} == {(+1, 18), (-1, 1)}  # 2 empty slices in a row
    assert all("empty mask" in r.stopped for r in stops)
    assert reports[0].direction == 0 and reports[0].z == 10 and reports[0].area == gt[10].astype(bool).sum() - (
        gt[10] == 2).sum()


def test_gap_between_anchors_is_filled_from_both_sides():
    gt = tube_volume()
    _, reports = run(gt, [Seed(2, 4, points=[[48, 30]]), Seed(2, 13, points=[[48, 30]])], direction="up",
                     z_limits=(4, 14))
    dirs = {r.z: r.direction for r in reports if r.stopped is None}
    assert dirs[4] == dirs[13] == 0
    assert [dirs[z] for z in range(5, 9)] == [+1] * 4  # lower half from the lower anchor (mid = 8)
    assert [dirs[z] for z in range(9, 13)] == [-1] * 4  # upper half from the upper anchor


def test_drawn_mask_is_an_anchor_kept_as_drawn():
    gt = tube_volume()
    drawn = np.zeros(gt.shape[1:], bool)
    drawn[46:50, 10:20] = True  # a part of the bar only
    labels, reports = run(gt, [Seed(2, 6, mask=drawn)], direction="up", z_limits=(6, 9),
                          stop=StopRule(min_slice_iou=0, max_area_change=None), walk=BLIND)
    np.testing.assert_array_equal(labels[6] == 2, drawn)
    np.testing.assert_array_equal(labels[7] == 2, gt[7] == 2)  # the next slices follow the object


def test_z_limits_direction_and_stop_slices():
    gt = tube_volume()
    labels, _ = run(gt, [Seed(2, 10, points=[[48, 30]])], direction="down", z_limits=(5, 20))
    assert (labels[5:11] == 2).any(axis=(1, 2)).all() and not (labels[:5] == 2).any() and not (labels[11:] == 2).any()
    labels, reports = run(gt, [Seed(2, 10, points=[[48, 30]])], stop=StopRule(stop_slices={7, 14}))
    assert (labels[8:14] == 2).any(axis=(1, 2)).all()
    assert not (labels[:8] == 2).any() and not (labels[14:] == 2).any()
    assert sorted(r.z for r in reports if r.stopped == "stop slice") == [7, 14]


def test_predicted_iou_stop_rule():
    gt = tube_volume()
    pred = OraclePredictor(gt, iou=lambda z, oid: 0.2 if z >= 13 else 0.9)
    labels, reports = run(gt, [Seed(2, 10, points=[[48, 30]])], predictor=pred, direction="up",
                          stop=StopRule(min_pred_iou=0.5))
    assert (labels[10:13] == 2).any(axis=(1, 2)).all() and not (labels[13:] == 2).any()
    stop, = [r for r in reports if r.stopped]
    assert stop.z == 13 and "predicted IoU 0.20 < 0.5" in stop.stopped


def test_slice_iou_and_area_rules():
    gt = tube_volume()
    gt[12, 45:52, 5:55] = 0
    gt[12, 30:60, 0:60] = 2  # the bar suddenly becomes a big block
    _, reports = run(gt, [Seed(2, 10, points=[[48, 30]])], direction="up",
                     stop=StopRule(min_slice_iou=0.0, max_area_change=2.0), walk=BLIND)
    stop, = [r for r in reports if r.stopped]
    assert stop.z == 12 and "area changed" in stop.stopped
    _, reports = run(gt, [Seed(2, 10, points=[[48, 30]])], direction="up", stop=StopRule(min_slice_iou=0.5),
                     walk=BLIND)
    stop, = [r for r in reports if r.stopped]
    assert stop.z == 12 and "IoU with the previous slice" in stop.stopped


def test_several_objects_share_slices_and_never_overwrite_each_other():
    gt = tube_volume()
    overlap = gt.copy()
    # an oracle whose object 1 bleeds into the bar on every slice (a bad mask)
    class Bleeding(OraclePredictor):
        def predict(self, embedding, original_size, **kw):
            res = super().predict(embedding, original_size, **kw)
            for m, i in zip(res.masks, range(len(res.iou))):
                if m[20, 15 + int(embedding.flatten()[0])]:  # it is object 1
                    m[44:50, 20:40] = True
                    res.iou[i] = 0.6  # less sure than the bar (0.95)
            return res

    labels, reports = run(overlap, [Seed(1, 10, points=[[20, 25]]), Seed(2, 10, points=[[48, 30]])],
                          predictor=Bleeding(overlap), stop=StopRule(min_slice_iou=0.3, max_area_change=None),
                          walk=BLIND)
    np.testing.assert_array_equal(labels == 2, gt == 2)  # the bar keeps every voxel
    lost = [r.overlap for r in reports if r.object_id == 1 and r.stopped is None]
    assert lost and all(v == 5 * 20 for v in lost)  # the bleed's rows 45..49 x 20 columns
    assert ((labels == 1) >= (gt == 1)).all() and not ((labels == 1) & (gt == 2)).any()
    ups = [r.z for r in reports if r.direction == +1 and r.stopped is None]
    assert ups.count(11) == 2  # both objects on slice 11 in the same step ...


def test_objects_on_a_slice_share_one_decoder_call():
    gt = tube_volume()
    pred = OraclePredictor(gt)
    run(gt, [Seed(1, 10, points=[[20, 25]]), Seed(2, 10, points=[[48, 30]])], predictor=pred,
        direction="up", z_limits=(0, 14))
    assert pred.calls == 2 + 3  # two seeds, then slices 11, 12, 13 with both objects in one call each


def test_an_object_jumping_onto_another_ranks_last():
    gt = tube_volume()
    jumper = np.zeros(gt.shape[1:], bool)
    jumper[45:52, 5:55] = True  # object 7's previous mask is nothing like the bar it now lands on
    from napari_scroll_sam.propagation import _write

    labels = np.zeros(gt.shape, np.uint32)
    lost = _write(labels, 3, [(7, jumper, 0.95 * 0.2), (2, gt[3] == 2, 0.95 * 1.0)], replace=False)
    assert lost == {2: 0, 7: 350} and (labels[3] == 2).sum() == 350


def test_cancel_keeps_done_slices_and_nothing_else():
    gt = tube_volume()
    emb = OracleEmbedder(gt)
    labels = np.zeros(gt.shape, np.uint32)
    gen = propagate(emb, [Seed(2, 10, points=[[48, 30]])], labels, predictor=OraclePredictor(gt), direction="up",
                    walk=EVERY)
    seen = []
    for r in gen:
        seen.append(r.z)
        if len(seen) == 4:
            break
    gen.close()
    assert seen == [10, 11, 12, 13]
    done = [z for z in range(20) if (labels[z] == 2).any()]
    assert done == [10, 11, 12, 13]


def test_labels_in_a_zarr_array(tmp_path):
    import zarr

    gt = tube_volume()
    labels = zarr.create_array(str(tmp_path / "l.zarr"), shape=gt.shape, chunks=(1, 60, 60), dtype="uint32")
    run(gt, [Seed(2, 10, points=[[48, 30]])], labels=labels)
    np.testing.assert_array_equal(labels[:] == 2, gt == 2)


def test_bad_input_raises_before_writing():
    gt = tube_volume()
    labels = np.zeros(gt.shape, np.uint32)
    emb = OracleEmbedder(gt)
    cases = [
        ([Seed(1, 25, points=[[20, 25]])], labels, {}, "slice 25 is outside the volume"),
        ([Seed(1, 5, points=[[20, 99]])], labels, {}, "outside the 60 x 60 slice"),
        ([Seed(1, 5)], labels, {}, "no point, box or mask"),
        ([], labels, {}, "no prompts"),
        ([Seed(1, 5, points=[[20, 25]])], np.zeros((3, 3, 3), np.uint32), {}, "do not fit the volume"),
        ([Seed(0, 5, points=[[20, 25]])], labels, {}, "object ids start at 1"),
        ([Seed(1, 5, points=[[20, 25]])], labels, {"z_limits": (10, 5)}, "z limits"),
        ([Seed(1, 5, points=[[20, 25]])], labels, {"direction": "sideways"}, "direction"),
    ]
    for seeds, lab, kw, msg in cases:
        with pytest.raises(PropagationError, match=msg):
            list(propagate(emb, seeds, lab, predictor=OraclePredictor(gt), **kw))
    with pytest.raises(PropagationError, match=r"min_pred_iou=1.5 must be None or within \[0, 1\]"):
        StopRule(min_pred_iou=1.5)
    used = np.zeros(gt.shape, np.uint32)
    used[0, 0, 0] = 3
    with pytest.raises(PropagationError, match=r"object id\(s\) \[3\] are already used"):
        list(propagate(emb, [Seed(3, 5, points=[[20, 25]])], used, predictor=OraclePredictor(gt)))
    assert not labels.any() and used.sum() == 3
    list(propagate(emb, [Seed(3, 5, points=[[48, 30]])], used, predictor=OraclePredictor(gt), replace=True,
                   walk=EXACT, z_limits=(4, 7)))
    assert used[0, 0, 0] == 3 and (used[5] == 3).sum() == (gt[5] == 2).sum()


def test_real_small_model_end_to_end(tmp_path):
    image = np.zeros((8, 64, 64), np.uint8)
    image[:, 20:44, 20:44] = 200
    vol = Volume(levels=[image], contrast_limits=(0, 255), name="cube")
    emb = SliceEmbedder(tiny_model(seed=0), vol, cache=tmp_path, batch_size=4)
    labels = np.zeros(vol.shape, np.uint32)
    reports = list(propagate(emb, [Seed(5, 4, points=[[32, 32]])], labels,
                             stop=StopRule(min_pred_iou=0, min_slice_iou=0, max_area_change=None, max_empty=8)))
    assert reports[0].z == 4 and reports[0].direction == 0
    assert {r.z for r in reports} == set(range(8)) or any(r.stopped for r in reports)
    assert set(np.unique(labels)) <= {0, 5}
    assert emb.encoder_calls <= 4  # 8 slices encoded in batches, not one by one


def test_model_every_nth_slice_carries_the_rest_without_their_embeddings():
    gt = tube_volume()
    emb, predictor = OracleEmbedder(gt), OraclePredictor(gt)
    labels = np.zeros(gt.shape, np.uint32)
    reports = list(propagate(emb, [Seed(1, 10, points=[[20, 25]])], labels, stop=StopRule(max_empty=1),
                             predictor=predictor, walk=WalkConfig(model_every=3)))
    src = {r.z: r.source for r in reports if r.stopped is None and r.direction}
    # slice 3 was carried, then walked again with the model (the rewind from slice 1, below)
    assert {z for z, s in src.items() if s == "carried"} == {z for z in src if abs(z - 10) % 3} - {3}
    # no slice is encoded for nothing: only the anchor, the model's slices and the rewound ends
    carried = {5, 6, 8, 9, 11, 12, 14, 15}
    assert carried & (set(emb.embedded) | set(emb.got)) == set() and {1, 4, 7, 13, 16, 19} <= set(emb.embedded)
    # the model answered nothing at 19 (and 1) after carried slices: those were walked again
    # with the model on each, so the walks stop where the object ends, as with every slice
    assert [z for z in range(20) if (labels[z] == 1).any()] == list(range(3, 17))
    assert sum(np.logical_and(labels[z] == 1, gt[z] == 1).sum() for z in range(20)) >= 0.95 * (gt == 1).sum()
    stops = {(r.direction, r.z) for r in reports if r.stopped}
    assert stops == {(+1, 17), (-1, 2)}
    assert len({(r.z, r.direction) for r in reports}) == len(reports)  # one report per slice and walk


def test_without_a_prior_the_model_is_asked_on_every_slice():
    gt = tube_volume()
    _, reports = run(gt, [Seed(1, 10, points=[[20, 25]])], stop=StopRule(max_empty=2), walk=WalkConfig.blind())
    assert WalkConfig.blind().asks_every == 1 and WalkConfig().asks_every == WalkConfig().model_every > 1
    assert {r.source for r in reports if r.direction} <= {"model", "empty"}
    with pytest.raises(PropagationError, match="model_every"):
        WalkConfig(model_every=0)
