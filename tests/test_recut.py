"""A scroll's sheet completed from the image (sheet.complete_sheet) and its turns re-cut on
the walk's slices (propagation/recut.py)."""

import numpy as np
import pytest
from scipy import ndimage

from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.prompts import farthest_from_boundary
from napari_scroll_sam.propagation import Seed, WalkConfig, propagate
from napari_scroll_sam.propagation.engine import split_seeds
from napari_scroll_sam.propagation.prior import window
from napari_scroll_sam.propagation.recut import recut
from napari_scroll_sam.propagation.sheet import complete_sheet
from napari_scroll_sam.propagation.winding import sheet_centre


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def phantom():
    image, sheets, _ = scroll_phantom((64, 256, 256), seed=0, wraps=8)
    return np.asarray(image), np.asarray(sheets)


def _grey(image_slice):
    h, w = image_slice.shape
    return (0, 0, h, w), window(image_slice, (7000, 40000))


def _angles(shape, centre):
    yy, xx = np.indices(shape)
    return np.arctan2(yy - centre[0], xx - centre[1])


def _gappy(gt, wraps, centre, width_deg=35):
    """Each wrap's true mask with an arc cut out of it (what the model's masks leave)."""
    ang = _angles(gt.shape, centre)
    out = []
    for i, w in enumerate(wraps):
        gap = np.abs(np.angle(np.exp(1j * (ang - 0.9 * i - 1.0)))) < np.deg2rad(width_deg / 2)
        out.append((gt == w) & ~gap)
    return out


def test_the_image_fills_the_gaps_the_masks_leave_along_the_sheet(phantom):
    image, sheets = phantom
    gt = sheets[32]
    centre = sheet_centre(gt > 0)
    masks = _gappy(gt, range(1, 9), centre)
    masks[0] = np.zeros_like(masks[0])  # the innermost turn not found at all (phantom seed 1)
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    plain = split_seeds(masks, clicks)
    filled = split_seeds(masks, clicks, grey=_grey(image[32]))
    plain_iou = [_iou(m, gt == w) for w, m in zip(range(1, 9), plain)]
    filled_iou = [_iou(m, gt == w) for w, m in zip(range(1, 9), filled)]
    assert min(filled_iou) > 0.9 and np.mean(filled_iou) > 0.95, filled_iou
    assert np.mean(filled_iou) > np.mean(plain_iou) + 0.05
    assert (np.logical_or.reduce(filled) & ~ndimage.binary_dilation(gt > 0, iterations=2)).sum() == 0  # no air
    assert not np.logical_and(filled[2], filled[3]).any()


def test_turns_no_one_clicked_or_found_are_not_added(phantom):
    """Clicks on wraps 3-6 only: the image shows the whole spiral, but its other turns (inside
    the clicked ones, or beyond) are left alone."""
    image, sheets = phantom
    gt = sheets[32]
    centre = sheet_centre(gt > 0)
    masks = _gappy(gt, (3, 4, 5, 6), centre)
    clicks = [farthest_from_boundary(gt == w)[None] for w in (3, 4, 5, 6)]
    out = split_seeds(masks, clicks, grey=_grey(image[32]))
    for w, m in zip((3, 4, 5, 6), out):
        assert _iou(m, gt == w) > 0.9
    got = np.logical_or.reduce(out)
    for w in (1, 2, 7, 8):
        assert (got & (gt == w)).sum() < 0.03 * (gt == w).sum(), w


def test_complete_sheet_keeps_to_the_scrolls_outline():
    """A bright blob outside the scroll's outline is not part of its sheet."""
    yy, xx = np.mgrid[:80, :80]
    ring = np.abs(np.hypot(yy - 40, xx - 40) - 20) < 2
    image = np.where(ring, 0.9, 0.1).astype(np.float32)
    image[2:8, 2:8] = 0.9
    union = ring & (np.abs(xx - 40) > 6) & (np.abs(yy - 40) > 6)  # four gaps
    done = complete_sheet(union, image)
    assert _iou(done, ring) > 0.95 and not done[2:8, 2:8].any()


def _true_end(gt, centre):
    """The angle of the phantom's inner end (where its wrap 1 meets wrap 2)."""
    yy, xx = np.nonzero(ndimage.binary_dilation(gt == 1) & (gt == 2))
    return np.arctan2(yy.mean() - centre[0], xx.mean() - centre[1])


def _carried(gt, deg=20):
    """The true turns with their cut moved ``deg`` back from the inner end (``_moved_cut``),
    and the phantom's centre and inner end."""
    centre = sheet_centre(gt > 0)
    end = _true_end(gt, centre)
    return _moved_cut(gt, centre, end, deg), centre, end


def _moved_cut(gt, centre, end, deg):
    """The true turns with the cut between each turn and the next moved ``deg`` back: what
    the flow carries when the sheet's inner end turns with depth."""
    ang = _angles(gt.shape, centre)
    sector = (np.angle(np.exp(1j * (ang - end))) < 0) & (np.angle(np.exp(1j * (ang - end))) > -np.deg2rad(deg))
    lab = np.where(sector & (gt > 0) & (gt < gt.max()), gt + 1, gt)
    return [lab == w for w in range(1, int(gt.max()) + 1)]


def test_recut_moves_a_carried_cut_back_to_the_inner_end(phantom):
    gt = phantom[1][32]
    carried, centre, end = _carried(gt)
    before = [_iou(m, gt == w) for w, m in zip(range(1, 9), carried)]
    after = [_iou(m, gt == w) for w, m in zip(range(1, 9), recut(carried))]
    assert np.mean(before) < 0.95 and min(after) > 0.97, (before, after)
    # a cut far from the end seen (a turn off by half): more than MOVE would move, so nothing does
    wild = _moved_cut(gt, centre, end, 150)
    assert all((a == b).all() for a, b in zip(recut(wild), wild))


def test_recut_leaves_objects_that_do_not_wind_alone():
    yy, xx = np.mgrid[:64, :96]
    a = (yy - 32) ** 2 + (xx - 30) ** 2 <= 15 ** 2
    b = ((yy - 32) ** 2 + (xx - 58) ** 2 <= 15 ** 2) & ~a
    out = recut([a, b])
    assert (out[0] == a).all() and (out[1] == b).all()


def test_the_walk_follows_a_turning_inner_end(phantom, tmp_path):
    """The true masks of the middle slice as seeds, an oracle-free walk (prior alone: the
    model is asked on no slice past the seed) through the 64 slices: with the re-cut each wrap's
    mask stays on its own wrap; without it the carried cut drifts onto the next."""
    from tests.helpers import tiny_model
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.sam.embeddings import SliceEmbedder

    image, sheets = phantom
    sub = slice(0, 64)
    vol = Volume(levels=[image[sub]], contrast_limits=(7000, 40000), name="scroll")
    emb = SliceEmbedder(tiny_model(), vol, cache=tmp_path / "cache")
    gt = sheets[sub]
    scores = {}
    for on in (True, False):
        labels = np.zeros(gt.shape, np.uint32)
        seeds = [Seed(w, 32, mask=gt[32] == w) for w in range(1, 9)]
        walk = WalkConfig(recut=on, model_every=1000)
        list(propagate(emb, seeds, labels, walk=walk))
        wrong = ((labels > 0) & (gt > 0) & (labels != gt)).sum() / max((labels > 0).sum(), 1)
        scores[on] = wrong
    assert scores[True] < 0.02 and scores[True] < scores[False] / 2, scores


def test_a_mask_spilling_onto_an_unclicked_turn_does_not_win_that_turn(phantom):
    """Clicks on wraps 3-6; wrap 3's mask spills a few pixels onto wrap 2 where they touch.
    The image shows all of wrap 2, but the masks hold little of it: it is not completed."""
    image, sheets = phantom
    gt = sheets[32]
    masks = [gt == w for w in (3, 4, 5, 6)]
    near = ndimage.distance_transform_edt(gt != 3)
    y, x = np.argwhere(gt == 2)[np.argmin(near[gt == 2])]
    spill = (gt == 2) & (np.hypot(*(np.indices(gt.shape) - np.array([y, x])[:, None, None])) < 6)
    masks[0] = masks[0] | spill
    clicks = [farthest_from_boundary(gt == w)[None] for w in (3, 4, 5, 6)]
    out = split_seeds(masks, clicks, grey=_grey(image[32]))
    assert (out[0] & (gt == 2)).sum() <= 2 * spill.sum()
    assert all(_iou(m, gt == w) > 0.95 for w, m in zip((3, 4, 5, 6), out))


def test_recut_completes_no_turn_the_masks_do_not_hold(phantom):
    """Wraps 3-6 walking with their cut carried 20° off: re-cut on the completed sheet, no
    object takes wrap 2 or 7 (the image's sheet runs on into them)."""
    image, sheets = phantom
    gt = sheets[32]
    centre = sheet_centre(gt > 0)
    end = _true_end(gt, centre)
    carried = [m for w, m in zip(range(1, 9), _moved_cut(gt, centre, end, 20)) if w in (3, 4, 5, 6)]
    out = recut(carried, _grey(image[32]))
    for w, before, after in zip((3, 4, 5, 6), carried, out):
        assert after.sum() <= 1.05 * before.sum(), w
        assert (after & np.isin(gt, [1, 2, 7, 8])).sum() <= (before & np.isin(gt, [1, 2, 7, 8])).sum() + 10, w


def test_recut_on_a_pooled_union_matches_full_resolution(phantom):
    """The ray searched on the union pooled (a large slice): the same turns."""
    _, sheets = phantom
    gt = np.repeat(np.repeat(sheets[32], 2, 0), 2, 1)
    centre = sheet_centre(gt > 0)
    end = _true_end(gt, centre)
    carried = _moved_cut(gt, centre, end, 20)
    full, pooled = recut(carried, max_side=1024), recut(carried, max_side=128)
    assert min(_iou(m, gt == w) for w, m in zip(range(1, 9), pooled)) > 0.95
    assert np.mean([_iou(a, b) for a, b in zip(full, pooled)]) > 0.97


def test_recut_refuses_to_move_more_than_move(phantom):
    carried, _, _ = _carried(phantom[1][32])
    assert any((a != b).any() for a, b in zip(recut(carried), carried))
    assert all((a == b).all() for a, b in zip(recut(carried, move=0.01), carried))


def test_the_turns_found_on_the_click_slice_are_snapped_to_the_edges(phantom):
    """The model's masks a pixel too fat: the completed turns snapped to the image's edges
    (``snap_to``, as the walk snaps its prior) fit the wraps better, and no two overlap."""
    from skimage.segmentation import expand_labels

    image, sheets = phantom
    gt = sheets[32]
    grown = expand_labels(gt, 1)  # each wrap a pixel fatter, a pixel of air kept between wraps
    fat = [((grown == w) & ~ndimage.binary_dilation((grown != w) & (grown > 0))) | (gt == w) for w in range(1, 9)]
    clicks = [farthest_from_boundary(gt == w)[None] for w in range(1, 9)]
    plain = split_seeds(fat, clicks, grey=_grey(image[32]))
    snapped = split_seeds(fat, clicks, grey=_grey(image[32]), snap_to=(2.0, 1.0))
    before = np.mean([_iou(m, gt == w) for w, m in zip(range(1, 9), plain)])
    after = [_iou(m, gt == w) for w, m in zip(range(1, 9), snapped)]
    assert np.mean(after) > before + 0.02 and min(after) > 0.9, (before, after)
    assert not any((a & b).any() for i, a in enumerate(snapped) for b in snapped[i + 1:])


def _spilled(gt, w, click, reach=40):
    """The model's mask of one click on wrap ``w``: the wrap, and a neighbour near the click."""
    yy, xx = np.indices(gt.shape)
    near = np.hypot(yy - click[0], xx - click[1]) < reach
    return (gt == w) | ((gt == (w + 1 if w < gt.max() else w - 1)) & near)


class _Spill:
    """The model: any prompt answers wrap ``w`` and the next one near ``near`` (``_spilled``)."""

    def __init__(self, gt, w, near):
        self.gt, self.w, self.near = gt, w, near

    def predict(self, embedding, original_size, points=None, point_labels=None, boxes=None, mask_input=None,
                multimask=False):
        import torch

        from napari_scroll_sam.sam.predictor import Prediction

        zz = int(torch.as_tensor(embedding).flatten()[0])
        return Prediction(_spilled(self.gt[zz], self.w, self.near)[None], np.ones(1, np.float32),
                          torch.zeros((1, 1, 16, 16)))


def _phantom_embedder(image, gt):
    from napari_scroll_sam.io.volume import Volume
    from tests.test_propagation import OracleEmbedder

    emb = OracleEmbedder(gt)
    emb.volume = Volume(levels=[image], contrast_limits=(7000, 40000), name="phantom")
    return emb


def test_a_wrap_clicked_alone_is_its_turn_read_from_the_image(phantom):
    """``lone_turn``: one clicked wrap whose mask runs on along the next turn is the turn the
    click lies on, read from the image, whatever wrap; None where the sheet does not wind."""
    from napari_scroll_sam.propagation.sheet import lone_turn

    image, sheets = phantom
    gt, grey = sheets[32], _grey(image[32])
    for w in range(1, 9):
        click = farthest_from_boundary(gt == w)
        mask = _spilled(gt, w, click)
        turn = lone_turn(mask, click[None], grey)
        assert turn is not None and _iou(turn, gt == w) > max(0.9, _iou(mask, gt == w) + 0.05), w
    blobs = ndimage.gaussian_filter(np.random.default_rng(0).random((128, 128)), 4) > 0.5
    one = ndimage.label(blobs)[0] == 1
    box = (0, 0, 128, 128), blobs.astype(np.float32)
    assert lone_turn(one, farthest_from_boundary(one)[None], box) is None  # no scroll: the mask stays
    assert lone_turn(gt == 3, np.zeros((0, 2)), grey) is None and lone_turn(gt == 3, [[5, 5]], None) is None


def test_a_wrap_boxed_alone_is_the_turn_its_box_was_drawn_around(phantom):
    """``turn_of_prompt`` with a box (no click): the model's mask runs on along the next turn;
    the turn whose bounding box matches the box is the object, whatever wrap. A click picks
    the turn it lies on instead; negative points alone, or blobs, keep the mask."""
    from napari_scroll_sam.propagation.sheet import turn_around, turn_of_prompt

    image, sheets = phantom
    gt, grey = sheets[32], window(image[32], (7000, 40000))

    def read(b):
        return grey[b[0]:b[2], b[1]:b[3]]

    for w in range(1, 9):
        ys, xs = np.nonzero(gt == w)
        box = np.array([ys.min(), xs.min(), ys.max(), xs.max()], float)
        mask = _spilled(gt, w, farthest_from_boundary(gt == w))
        turn = turn_of_prompt(mask, read, box=box[None])  # (1, 4), as prompts_on_slice gives it
        assert turn is not None and _iou(turn, gt == w) > max(0.9, _iou(mask, gt == w) + 0.05), w
    click = farthest_from_boundary(gt == 4)
    mask = _spilled(gt, 4, click)
    assert np.array_equal(turn_of_prompt(mask, read, click[None], [1], box=box), turn_around(mask, click[None], read))
    assert turn_of_prompt(mask, read, click[None], [0]) is None  # a negative point alone: no prompt to follow
    blobs = ndimage.gaussian_filter(np.random.default_rng(0).random((128, 128)), 4) > 0.5
    one = ndimage.label(blobs)[0] == 1
    ys, xs = np.nonzero(one)
    assert turn_of_prompt(one, lambda b: blobs[b[0]:b[2], b[1]:b[3]].astype(np.float32),
                          box=[ys.min(), xs.min(), ys.max(), xs.max()]) is None  # no scroll: the mask stays


def test_one_wrap_clicked_alone_walks_its_own_turn(phantom):
    """Propagate from one click on one wrap (no other object): the seed slice holds the wrap's
    turn, not the neighbour the model's mask ran onto; without winding the mask stays."""
    image, sheets = phantom
    gt = sheets[24:40].astype(np.uint32)
    w, z = 5, 8
    click = farthest_from_boundary(gt[z] == w)

    emb, Spill = _phantom_embedder(image[24:40], gt), lambda: _Spill(gt, w, click)
    for wind in (True, False):
        labels = np.zeros(gt.shape, np.uint32)
        list(propagate(emb, [Seed(1, z, points=click[None], labels=[1])], labels, predictor=Spill(),
                       direction="up", z_limits=(z, z + 1), walk=WalkConfig(winding=wind, refine=False)))
        got = _iou(labels[z] == 1, gt[z] == w)
        assert (got > 0.9) if wind else (got < 0.85), (wind, got)


def test_one_wrap_boxed_alone_walks_its_own_turn(phantom):
    """Propagate from one box around one wrap: the seed slice holds the wrap's turn, not the
    neighbour the model's mask ran onto."""
    image, sheets = phantom
    gt = sheets[24:40].astype(np.uint32)
    w, z = 6, 8
    ys, xs = np.nonzero(gt[z] == w)
    box = np.array([ys.min(), xs.min(), ys.max(), xs.max()], float)
    near = farthest_from_boundary(gt[z] == w)

    emb, Spill = _phantom_embedder(image[24:40], gt), lambda: _Spill(gt, w, near)
    for wind in (True, False):
        labels = np.zeros(gt.shape, np.uint32)
        list(propagate(emb, [Seed(1, z, box=box)], labels, predictor=Spill(), direction="up", z_limits=(z, z + 1),
                       walk=WalkConfig(winding=wind, refine=False)))
        got, spilled = _iou(labels[z] == 1, gt[z] == w), _iou(_spilled(gt[z], w, near), gt[z] == w)
        assert (got > max(0.9, spilled + 0.05)) if wind else (got == spilled), (wind, got, spilled)


def test_wraps_clicked_together_whose_masks_do_not_wind_get_their_turns(phantom):
    """Two wraps clicked together whose masks (each running onto its neighbour) do not wind as
    one sheet: each is still cut to its own turn from the image."""
    import torch

    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.propagation.winding import union_winds
    from napari_scroll_sam.sam.predictor import Prediction
    from tests.test_propagation import OracleEmbedder

    image, sheets = phantom
    gt = sheets[24:40].astype(np.uint32)
    z, wraps = 8, (3, 6)
    clicks = {w: farthest_from_boundary(gt[z] == w) for w in wraps}

    class Spill:  # a click answers its wrap and the next one near it
        def predict(self, embedding, original_size, points=None, point_labels=None, boxes=None, mask_input=None,
                    multimask=False):
            zz = int(torch.as_tensor(embedding).flatten()[0])
            pts = np.asarray(points, float).reshape(-1, 2)
            w = int(gt[zz][tuple(np.round(pts[0]).astype(int))])
            return Prediction(_spilled(gt[zz], w, clicks.get(w, pts[0]), reach=90)[None], np.ones(1, np.float32),
                              torch.zeros((1, 1, 16, 16)))

    spilled = [_spilled(gt[z], w, clicks[w], reach=90) for w in wraps]
    assert not union_winds(spilled) and max(_iou(m, gt[z] == w) for m, w in zip(spilled, wraps)) < 0.85
    emb = OracleEmbedder(gt)
    emb.volume = Volume(levels=[image[24:40]], contrast_limits=(7000, 40000), name="phantom")
    labels = np.zeros(gt.shape, np.uint32)
    seeds = [Seed(k, z, points=clicks[w][None], labels=[1]) for k, w in enumerate(wraps, start=1)]
    list(propagate(emb, seeds, labels, predictor=Spill(), direction="up", z_limits=(z, z + 1),
                   walk=WalkConfig(refine=False)))
    for k, w in enumerate(wraps, start=1):
        assert _iou(labels[z] == k, gt[z] == w) > 0.9, (w, _iou(labels[z] == k, gt[z] == w))
