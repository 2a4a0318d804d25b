"""Prompt strategies on known masks: a disc, a ring, a thin spiral arc, an empty mask."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam import prompts as P

yy, xx = np.mgrid[:100, :120]
DISC = (yy - 40) ** 2 + (xx - 60) ** 2 <= 15 ** 2
R = np.hypot(yy - 50, xx - 60)
RING = (R >= 25) & (R <= 32)
# a thin arc of an Archimedean spiral, 3 px thick, a bit more than half a turn
THETA = np.arctan2(yy - 50, xx - 60)
ARC = (np.abs(R - (20 + 8 * (THETA + np.pi) / (2 * np.pi))) <= 1.5) & (THETA > -0.5)


def test_box_tight_and_margins():
    np.testing.assert_array_equal(P.box(DISC), [25, 45, 55, 75])
    np.testing.assert_array_equal(P.box(DISC, margin=5), [20, 40, 60, 80])
    np.testing.assert_allclose(P.box(DISC, margin=0.1), [25 - 3.1, 45 - 3.1, 55 + 3.1, 75 + 3.1])
    np.testing.assert_array_equal(P.box(DISC, margin=-5), [30, 50, 50, 70])
    assert P.box(DISC, margin=500).tolist() == [0, 0, 99, 119]  # clipped to the slice


def test_centroid_disc_and_ring_snap():
    np.testing.assert_array_equal(P.centroid(DISC), [40, 60])
    c = P.centroid(RING)  # the centre of mass is the hole: snapped onto the ring
    assert RING[int(c[0]), int(c[1])]
    assert 24 <= np.hypot(c[0] - 50, c[1] - 60) <= 33


def test_gaussian_centre_inside_and_near_centre():
    g = P.gaussian_centre(DISC)
    assert DISC[int(g[0]), int(g[1])] and np.hypot(g[0] - 40, g[1] - 60) <= 1
    a = P.gaussian_centre(ARC)
    assert ARC[int(a[0]), int(a[1])]


def test_random_points_are_in_mask_and_seeded():
    for fn in (P.random_point, P.random_gaussian_point):
        pts = [fn(ARC, rng) for rng in range(20)]
        assert all(ARC[int(p[0]), int(p[1])] for p in pts)
        np.testing.assert_array_equal(fn(ARC, 7), fn(ARC, 7))
        assert len({tuple(p) for p in pts}) > 5


def test_random_gaussian_prefers_the_centre():
    big = np.ones((101, 101), bool)
    pts = np.array([P.random_gaussian_point(big, s, sigma_frac=0.1) for s in range(200)])
    uni = np.array([P.random_point(big, s) for s in range(200)])
    assert np.abs(pts - 50).mean() < 0.5 * np.abs(uni - 50).mean()


def test_farthest_from_boundary():
    np.testing.assert_array_equal(P.farthest_from_boundary(DISC), [40, 60])
    f = P.farthest_from_boundary(RING)
    assert RING[int(f[0]), int(f[1])] and 27 <= np.hypot(f[0] - 50, f[1] - 60) <= 30  # mid-ring


def test_skeleton_points_follow_a_thin_arc_in_order():
    pts = P.skeleton_points(ARC, n=4)
    assert pts.shape == (4, 2)
    assert all(ARC[int(p[0]), int(p[1])] for p in pts)
    ang = np.unwrap(np.arctan2(pts[:, 0] - 50, pts[:, 1] - 60))
    assert np.all(np.diff(ang) > 0) or np.all(np.diff(ang) < 0)  # ordered along the arc
    assert np.ptp(ang) > 1.5  # spread over it, not clustered


def test_background_points_outside_mask_and_other_objects():
    bg = P.background_points(DISC, n=2)
    assert len(bg) == 2 and not any(DISC[int(p[0]), int(p[1])] for p in bg)
    other = np.zeros_like(DISC)
    other[40, 80:90] = True
    bg = P.background_points(DISC, n=1, others=other)
    np.testing.assert_array_equal(bg, [[40, 80]])  # the nearest pixel of the other object


@pytest.mark.parametrize("strategy", P.STRATEGIES)
def test_every_strategy_gives_a_usable_prompt(strategy):
    pr = P.make_prompt(ARC, strategy, rng=0)
    assert not pr.empty
    pos = pr.points[pr.labels == 1]
    assert all(ARC[int(p[0]), int(p[1])] for p in pos)
    assert all(not ARC[int(p[0]), int(p[1])] for p in pr.points[pr.labels == 0])
    assert (pr.box is not None) == ("box" in strategy)
    assert pr.use_logits == strategy.endswith("logits")


def test_combination_and_background_option():
    pr = P.make_prompt(DISC, "box+centroid", background=2, margin=0)
    np.testing.assert_array_equal(pr.box, [25, 45, 55, 75])
    assert pr.labels.tolist() == [1, 0, 0]


def test_empty_mask_and_unknown_strategy():
    with pytest.raises(P.EmptyMaskError):
        P.make_prompt(np.zeros((10, 10), bool), "box")
    with pytest.raises(P.EmptyMaskError):
        P.skeleton_points(np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="unknown prompt strategy 'middle'"):
        P.make_prompt(DISC, "middle")


def test_deepest_point_is_scipys_whatever_computes_the_distance():
    """``farthest_from_boundary`` (OpenCV's exact distance transform when installed) picks the
    pixel scipy's distance transform picks, ties included (the benchmarks' clicks depend on it)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for i in range(60):
        m = ndimage.gaussian_filter(rng.random((90, 120)), 2 + i % 5) > 0.5
        if not m.any():
            continue
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        d = ndimage.distance_transform_edt(np.pad(m[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1], 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(d)), d.shape)
        np.testing.assert_array_equal(P.farthest_from_boundary(m), [y + ys[0], x + xs[0]])
    square = np.zeros((9, 9), bool)
    square[2:7, 2:7] = True  # one deepest pixel: the centre
    np.testing.assert_array_equal(P.farthest_from_boundary(square), [4, 4])
