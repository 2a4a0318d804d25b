"""Wraps of a rolled sheet shared out by winding (propagation/winding.py)."""

import numpy as np
import pytest
from scipy import ndimage

from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.prompts import farthest_from_boundary
from napari_scroll_sam.propagation.engine import split_seeds
from napari_scroll_sam.propagation.winding import cut_angle, sheet_centre, winding_split, winds


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def sheet_slice():
    """The File-menu sample's middle slice: 8 wraps of one continuous spiral sheet."""
    _, sheets, _ = scroll_phantom((64, 256, 256), seed=0, wraps=8)
    return np.asarray(sheets[32])


def _per_wrap(split, gt):
    return [_iou(m, gt == w) for w, m in zip(range(1, 9), split)]


def test_one_click_per_wrap_cuts_the_merged_sheet_into_turns(sheet_slice):
    """Every wrap's mask is the whole sheet (the wraps touch, the model cannot tell them
    apart); one click on each wrap's deepest point: the winding cut gives each wrap its turn,
    far better than the geodesic split midway between the clicks."""
    gt = sheet_slice
    whole = gt > 0
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    split = split_seeds([whole] * 8, clicks)
    assert not np.logical_and.reduce(split[:2]).any()
    assert (np.logical_or.reduce(split) == whole).all()  # nothing dropped, nothing added
    scores = _per_wrap(split, gt)
    geodesic = _per_wrap(split_seeds([whole] * 8, clicks, winding=False), gt)
    assert np.mean(scores) > 0.95 and min(scores) > 0.85
    assert np.mean(scores) > np.mean(geodesic) + 0.25
    for k, (m, c) in enumerate(zip(split, clicks)):  # each click stays in its own wrap
        y, x = np.round(c[0]).astype(int)
        assert m[y, x], k


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_cut_goes_through_the_sheets_inner_end(seed):
    """A scroll's first turn starts at the sheet's inner end: the cut is there, which on the
    phantom is where its wrap 1 meets wrap 2; one click per wrap then gives each its wrap."""
    _, sheets, _ = scroll_phantom((64, 256, 256), seed=seed, wraps=8)
    gt = np.asarray(sheets[32])
    union = gt > 0
    centre = sheet_centre(union)
    contact = ndimage.binary_dilation(gt == 1) & (gt == 2)
    yy, xx = np.nonzero(contact)
    true = np.arctan2(yy.mean() - centre[0], xx.mean() - centre[1])
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    alpha = cut_angle(union, centre, clicks)
    assert abs(np.angle(np.exp(1j * (alpha - true)))) < np.deg2rad(4)
    assert np.mean(_per_wrap(split_seeds([union] * 8, clicks), gt)) > 0.95


def test_without_an_inner_end_the_cut_keeps_away_from_the_clicks(sheet_slice, monkeypatch):
    import napari_scroll_sam.propagation.winding as W

    monkeypatch.setattr(W, "inner_end_angle", lambda union, centre: None)
    gt = sheet_slice
    union = gt > 0
    centre = sheet_centre(union)
    assert winds(union, centre)
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    alpha = cut_angle(union, centre, clicks)
    for c in clicks:
        ang = np.arctan2(c[0, 0] - centre[0], c[0, 1] - centre[1])
        assert abs(np.angle(np.exp(1j * (ang - alpha)))) > np.deg2rad(10)
    scores = _per_wrap(split_seeds([union] * 8, clicks), gt)
    assert np.mean(scores) > 0.8


def test_a_broken_turn_goes_to_its_own_wrap(sheet_slice):
    """A gap through wrap 4 (a crack, or a hole in the model's mask) leaves a piece of that
    turn without a click; the order of the turns around the centre gives it to wrap 4, not
    to the neighbouring turn the ray cut touches."""
    gt = sheet_slice.copy()
    centre = sheet_centre(gt > 0)
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    yy, xx = np.indices(gt.shape)
    ang = np.arctan2(yy - centre[0], xx - centre[1])
    c4 = np.arctan2(clicks[3][0, 0] - centre[0], clicks[3][0, 1] - centre[1])
    gap = (gt == 4) & (np.abs(np.angle(np.exp(1j * (ang - c4 - np.pi)))) < np.deg2rad(3))
    gt[gap] = 0
    split = split_seeds([gt > 0] * 8, clicks)
    assert _iou(split[3], gt == 4) > 0.8


def test_a_union_that_does_not_wind_is_left_to_the_geodesic_split():
    """Two touching discs (cells): no ray crosses them three times: None, and split_seeds
    cuts between the clicks as before."""
    yy, xx = np.mgrid[:64, :96]
    a = (yy - 32) ** 2 + (xx - 30) ** 2 <= 15 ** 2
    b = (yy - 32) ** 2 + (xx - 58) ** 2 <= 15 ** 2
    clicks = [np.array([[32, 30]]), np.array([[32, 58]])]
    assert winding_split([a | b, a | b], clicks) is None
    sa, sb = split_seeds([a | b, a | b], clicks)
    assert sa[32, 30] and sb[32, 58] and not (sa & sb).any()


def test_a_large_slice_is_searched_pooled(sheet_slice):
    """The ray search on a pooled union (an 8k² slice's sheet): the same turns."""
    gt = np.repeat(np.repeat(sheet_slice, 4, 0), 4, 1)
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    full = winding_split([gt > 0] * 8, clicks, max_side=2048)
    pooled = winding_split([gt > 0] * 8, clicks, max_side=256)
    assert pooled is not None and np.mean(_per_wrap(pooled, gt)) > 0.8
    assert np.mean([_iou(a, b) for a, b in zip(full, pooled)]) > 0.8


def test_separate_rings_stay_whole():
    """Three concentric rings that do not touch (every ray crosses the union three times, so
    it 'winds'), each mask the whole union, one click on each: a part holding one object's
    click is that object's, whole; the ray cut never halves it."""
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot(yy - 64, xx - 64)
    rings = [(r >= a) & (r < a + 4) for a in (20, 32, 44)]
    union = np.logical_or.reduce(rings)
    clicks = [np.array([[64, 64 + a + 2]]) for a in (20, 32, 44)]
    split = split_seeds([union] * 3, clicks)
    for m, ring in zip(split, rings):
        assert (m == ring).all()


def test_turns_the_mask_bridges_are_shared_out_along_the_sheet(sheet_slice):
    """A bridge of mask between wraps 3 and 4 (no ray leaves their clicks apart): the cut is
    still made at the inner end, the other wraps get their turns, and the bridged piece is
    shared between the two clicks along the sheet (geodesically: midway between them)."""
    gt = sheet_slice
    union = gt > 0
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    y, x = np.round(clicks[2][0]).astype(int)
    bridged = union.copy()
    ys, xs = np.nonzero(gt == 4)
    j = np.argmin(np.hypot(ys - y, xs - x))  # the nearest pixel of wrap 4 to wrap 3's click
    rr = np.linspace(0, 1, 20)
    bridged[np.round(y + rr * (ys[j] - y)).astype(int), np.round(x + rr * (xs[j] - x)).astype(int)] = True
    bridged = ndimage.binary_dilation(bridged & ~union) | bridged
    split = split_seeds([bridged] * 8, clicks)
    scores = _per_wrap(split, gt)
    assert np.mean(scores) > 0.8 and scores[2] > 0.4 and scores[3] > 0.4  # the two: midway between their clicks
    assert np.mean(scores) > np.mean(_per_wrap(split_seeds([bridged] * 8, clicks, winding=False), gt)) + 0.1


def test_scattered_blobs_are_left_to_the_geodesic_split():
    """A field of blobs (smoothed noise) that every ray from its centre crosses three times
    or more, but unevenly: not a sheet that winds; the share-out is the geodesic one."""
    from napari_scroll_sam.propagation.winding import crossings

    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 3) > 0.0
    centre = sheet_centre(field)
    assert min(crossings(field, centre, a) for a in np.deg2rad(np.arange(0, 360, 15))) >= 3
    assert not winds(field, centre)
    ys, xs = np.nonzero(field)
    pick = rng.choice(len(ys), 5, replace=False)
    clicks = [np.array([[ys[i], xs[i]]]) for i in pick]
    got = split_seeds([field] * 5, clicks)
    want = split_seeds([field] * 5, clicks, winding=False)
    assert all((a == b).all() for a, b in zip(got, want))


def test_a_click_off_the_sheet_does_not_empty_a_wrap(sheet_slice):
    """A ninth object clicked on the air in the spiral's core, far from the sheet (its mask:
    the sheet, as the others'): every wrap keeps its turn."""
    gt = sheet_slice
    union = gt > 0
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    air = np.round(sheet_centre(union)).astype(int)
    assert ndimage.distance_transform_edt(~union)[tuple(air)] > 5
    split = split_seeds([union] * 9, clicks + [air[None].astype(float)])
    assert min(_per_wrap(split[:8], gt)) > 0.9


def test_pooled_clicks_land_in_their_own_wrap(sheet_slice):
    """Pooled by 8 (a 1,024² sheet searched at 128 px): each click, even at a wrap's edge,
    stays in its own wrap's share."""
    gt = np.repeat(np.repeat(sheet_slice, 4, 0), 4, 1)
    clicks = []
    for w in range(1, 9):
        edge = (gt == w) & ~ndimage.binary_erosion(gt == w)
        clicks.append(np.argwhere(edge)[len(np.argwhere(edge)) // 3][None].astype(float))
    split = winding_split([gt > 0] * 8, clicks, max_side=128)
    assert split is not None
    for m, c in zip(split, clicks):
        y, x = c[0].astype(int)
        assert m[y, x]
    assert np.mean(_per_wrap(split, gt)) > 0.5


def test_a_click_a_pixel_beside_its_own_mask_still_marks_its_wrap(sheet_slice):
    """The model's mask of a thin sheet can lie a pixel beside the click: the click counts as
    on its mask (within 2 px), so its wrap is not handed to a neighbour."""
    gt = sheet_slice
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    masks = [gt > 0] * 8
    y, x = np.round(clicks[5][0]).astype(int)
    hole = np.zeros_like(gt, bool)
    hole[y - 1:y + 2, x - 1:x + 2] = True  # wrap 6's masks miss the click's 3x3 neighbourhood
    masks = [m & ~hole for m in masks]
    split = split_seeds(masks, clicks)
    assert _iou(split[5], (gt == 6) & ~hole) > 0.9
