"""Propagating the objects of a labels array (the Propagate panel's core): seeds, walks, redo, summary."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.propagate_labels import SlicePrompts, mask_crc, plan_labels, run_plan, run_summary
from napari_scroll_sam.propagation import PropagationError, StopRule, WalkConfig
from tests.test_propagation import OracleEmbedder, OraclePredictor

SHAPE = (8, 32, 32)


@pytest.fixture
def gt():
    g = np.zeros(SHAPE, np.uint32)
    g[1:7, 8:20, 8:20] = 1
    return g


def run(gt, labels, plan, **kw):
    kw.setdefault("walk", WalkConfig(model_every=1, refine=False))  # the oracle asked on every slice: exact masks
    return list(run_plan(OracleEmbedder(gt), labels, plan, stop=StopRule(max_empty=1), z_limits=(0, SHAPE[0]),
                         predictor=OraclePredictor(gt), **kw))


def test_anchors_walks_and_the_expected_count(gt):
    labels = np.zeros(SHAPE, np.uint32)
    labels[4] = gt[4]
    plan = plan_labels(labels, z_limits=(0, SHAPE[0]))
    assert [(s.object_id, s.z) for s in plan.seeds] == [(1, 4)]
    assert sorted((step, end) for _, step, _, _, end in plan.walks) == [(-1, 0), (1, 7)]
    assert plan.total == 1 + 4 + 3
    reports = run(gt, labels, plan)
    np.testing.assert_array_equal(labels, gt)
    done = len(reports) + sum(plan.skipped(r) for r in reports)
    assert done == plan.total  # the stops at 0 and 7 end their walks on their last planned slice
    assert "object 1: 5 slices propagated, 1 anchor kept" in run_summary(reports)


def test_an_object_without_voxels_is_seeded_from_the_prompts(gt):
    labels = np.zeros(SHAPE, np.uint32)
    prompts = SlicePrompts(2, 3, np.array([[3.0, 12, 12]]), np.array([True]), [])
    plan = plan_labels(labels, prompts=prompts)
    assert [(s.object_id, s.z, s.mask) for s in plan.seeds] == [(2, 3, None)]
    run(gt, labels, plan)
    np.testing.assert_array_equal(labels == 2, gt == 1)
    off_slice = SlicePrompts(2, 5, np.array([[3.0, 12, 12]]), np.array([True]), [])
    with pytest.raises(PropagationError, match="nothing to propagate"):
        plan_labels(labels * 0, prompts=off_slice)
    with pytest.raises(PropagationError, match=r"object\(s\) 9 have no voxels"):
        plan_labels(labels, ids=[9])


def test_several_objects_prompted_on_one_slice_are_seeded_together():
    """A list of prompts (one per object): each object without voxels is seeded from its own,
    an object with voxels keeps them as its anchors, prompts on another slice or for an id
    not chosen are left out; the error names the prompted objects."""
    g = np.zeros(SHAPE, np.uint32)
    g[1:7, 4:14, 4:14], g[1:7, 18:28, 18:28] = 1, 2
    labels = np.zeros(SHAPE, np.uint32)
    labels[2][g[2] == 3] = 3  # nothing: object 3 is absent
    prompts = [SlicePrompts(1, 3, np.array([[3.0, 8, 8]]), np.array([True]), []),
               SlicePrompts(2, 3, np.array([[3.0, 22, 22]]), np.array([True]), []),
               SlicePrompts(4, 5, np.array([[3.0, 22, 22]]), np.array([True]), [])]  # not on its slice
    plan = plan_labels(labels, prompts=prompts)
    assert sorted((s.object_id, s.z, s.mask is None) for s in plan.seeds) == [(1, 3, True), (2, 3, True)]
    run(g, labels, plan)
    np.testing.assert_array_equal(labels, g)
    only = plan_labels(labels * 0, ids=[2], prompts=prompts)
    assert [s.object_id for s in only.seeds] == [2]
    with pytest.raises(PropagationError, match=r"object\(s\) 9 have no voxels.*prompt object\(s\) 1, 2"):
        plan_labels(labels * 0, ids=[1, 2, 9], prompts=prompts)


def test_redo_clears_what_a_run_wrote_and_keeps_edits(gt):
    labels, book = np.zeros(SHAPE, np.uint32), {}
    labels[4] = gt[4]
    run(gt, labels, plan_labels(labels, book=book), book=book)
    assert sorted(book[1]) == [1, 2, 3, 5, 6] and book[1][5] == mask_crc(gt[5] == 1)
    labels[6, 8:12] = 0  # edited: an anchor now
    edited = labels[6].copy()
    plan = plan_labels(labels, redo=True, book=book)
    assert plan.cleared == {1: [1, 2, 3, 5]} and plan.forget == {1: [6]}
    assert sorted(s.z for s in plan.seeds) == [4, 6]
    run(gt, labels, plan, book=book)
    np.testing.assert_array_equal(labels[6], edited)
    np.testing.assert_array_equal(labels[:6], gt[:6])
    assert sorted(book[1]) == [1, 2, 3, 5]
