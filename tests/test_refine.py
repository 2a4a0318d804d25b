"""A prompted mask settled on the slice's edges (``prior.refine``): in ``segment_slice`` and on
the walk's clicked seeds. The model is trusted in the mask's core and far outside it; between,
the image decides; the prompt's box bounds it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.propagation import Seed, StopRule, WalkConfig, propagate
from napari_scroll_sam.propagation.prior import refine, refine_pad, window
from napari_scroll_sam.sam.predictor import Prediction
from napari_scroll_sam.sam.segment import refine_on_slice, segment_slice
from tests.test_propagation import OracleEmbedder, OraclePredictor


def _disc_slice(r=12, shape=(80, 90), seed=0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = (yy - 40) ** 2 + (xx - 44) ** 2 <= r * r
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(truth * 0.6 + 0.2, 1.0) + rng.normal(0, 0.04, shape)
    return truth, np.clip(image, 0, 1).astype(np.float32)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("grow", [3, -3])
def test_a_mask_off_by_a_few_pixels_comes_back_to_the_edge(grow):
    truth, image = _disc_slice()
    model = ndimage.binary_dilation(truth, iterations=grow) if grow > 0 else ndimage.binary_erosion(truth, iterations=-grow)
    out = refine(model, ((0, 0) + truth.shape, image))
    assert iou(model, truth) < 0.7 and iou(out, truth) > 0.92


def test_the_prompt_box_bounds_the_mask_and_the_crop_is_enough():
    truth, image = _disc_slice()
    model = ndimage.binary_erosion(truth, iterations=3)
    box = (34, 30, 60, 60)  # the disc's top (y 28-33) lies beyond the box
    free = refine(model, ((0, 0) + truth.shape, image))
    out = refine(model, ((0, 0) + truth.shape, image), box=box)
    inside = np.zeros_like(truth)
    inside[box[0] - 1:box[2] + 2, box[1] - 1:box[3] + 2] = True
    assert (free & ~inside).sum() > 20  # unbounded, it grows to the disc's edge above the box
    assert not (out & ~model & ~inside).any()  # bounded, it gains nothing beyond the box
    assert iou(out & inside, truth & inside) > 0.9
    model = ndimage.binary_dilation(truth, iterations=3)
    # only the mask's box grown by refine_pad is needed: a crop gives what the whole slice gives
    whole = refine(model, ((0, 0) + truth.shape, image))
    ys, xs = np.nonzero(model)
    p = refine_pad()
    y0, x0, y1, x1 = max(0, ys.min() - p), max(0, xs.min() - p), ys.max() + p + 1, xs.max() + p + 1
    crop = refine(model, ((y0, x0, y1, x1), image[y0:y1, x0:x1]))
    np.testing.assert_array_equal(crop, whole)


def test_nothing_to_refine_is_returned_as_it_is():
    truth, image = _disc_slice()
    empty = np.zeros_like(truth)
    assert not refine(empty, ((0, 0) + truth.shape, image)).any()
    # a crop that does not cover the mask: the model's mask unchanged
    model = ndimage.binary_dilation(truth, iterations=3)
    np.testing.assert_array_equal(refine(model, ((0, 0, 20, 20), image[:20, :20])), model)
    np.testing.assert_array_equal(refine(model, None), model)


class Swollen(OraclePredictor):
    """The true object, 3 px too large (a model that spills over the edge)."""

    def predict(self, *a, **kw):
        res = super().predict(*a, **kw)
        return Prediction(np.stack([ndimage.binary_dilation(m, iterations=3) for m in res.masks]), res.iou, res.logits)


class NoisyEmbedder(OracleEmbedder):
    """The oracle's embedder over a noisy picture of the objects (the refinement reads it)."""

    def __init__(self, gt, seed=0):
        super().__init__(gt)
        rng = np.random.default_rng(seed)
        pic = ndimage.gaussian_filter((gt > 0) * 600.0 + 200.0, (0, 1, 1)) + rng.normal(0, 40, gt.shape)
        self.volume = Volume(levels=[np.clip(pic, 0, 1000).astype(np.uint16)], contrast_limits=(0, 1000), name="pic")


def _discs(n=6):
    gt = np.zeros((n, 80, 90), np.uint32)
    for z in range(n):
        gt[z] = _disc_slice()[0]
    return gt


def test_segment_slice_refines_by_default_and_not_when_asked():
    gt = _discs()
    emb = NoisyEmbedder(gt)
    raw = segment_slice(emb, 2, points=[[[40, 44]]], labels=[[1]], predictor=Swollen(gt), refine=False).masks[0]
    got = segment_slice(emb, 2, points=[[[40, 44]]], labels=[[1]], predictor=Swollen(gt)).masks[0]
    truth = gt[2] > 0
    assert iou(raw, truth) < 0.75 and iou(got, truth) > 0.92
    np.testing.assert_array_equal(got, refine_on_slice(emb.volume, 2, raw))
    pic = window(np.asarray(emb.volume.data[2]), emb.volume.contrast_limits)
    np.testing.assert_array_equal(got, refine(raw, ((0, 0) + truth.shape, pic)))


@pytest.mark.parametrize("refined", [True, False])
def test_a_clicked_seed_is_refined_before_the_walk(refined):
    gt = _discs()
    labels = np.zeros(gt.shape, np.uint32)
    reports = list(propagate(NoisyEmbedder(gt), [Seed(1, 2, points=[[40, 44]])], labels, predictor=Swollen(gt),
                             stop=StopRule.off(), z_limits=(2, 3), walk=WalkConfig(refine=refined)))
    assert [r.source for r in reports] == ["seed"]
    score = iou(labels[2] == 1, gt[2] > 0)
    assert (score > 0.92) if refined else (score < 0.75)
    # a drawn mask is the user's: never refined
    labels = np.zeros(gt.shape, np.uint32)
    drawn = ndimage.binary_dilation(gt[2] > 0, iterations=3)
    list(propagate(NoisyEmbedder(gt), [Seed(1, 2, mask=drawn)], labels, predictor=Swollen(gt), stop=StopRule.off(),
                   z_limits=(2, 3), walk=WalkConfig(refine=refined)))
    np.testing.assert_array_equal(labels[2] == 1, drawn)


def test_the_walk_of_old_does_not_refine():
    assert WalkConfig.blind().refine is False and WalkConfig().refine is True
    assert WalkConfig.blind(refine=True).refine is True


def _count_refines(monkeypatch):
    from napari_scroll_sam.propagation import run as run_mod

    calls = []
    real = run_mod.refine
    monkeypatch.setattr(run_mod, "refine", lambda mask, *a, **k: calls.append(int(mask.sum())) or real(mask, *a, **k))
    return calls


def test_wraps_clicked_together_go_to_the_winding_split_unrefined(monkeypatch):
    """A scroll's wraps clicked together wind: the winding split completes and snaps them from
    the image itself, so they are not refined first (refined, phantom seed 1's union stopped
    winding). Objects clicked together that do not wind (two discs) are refined."""
    from napari_scroll_sam.io.phantom import scroll_phantom

    _, sheets, _ = scroll_phantom((4, 256, 256), seed=0, wraps=8)
    gt = np.asarray(sheets.compute()).astype(np.uint32)
    seeds = []
    for k in range(1, int(gt[2].max()) + 1):
        ys, xs = np.nonzero(gt[2] == k)
        seeds.append(Seed(k, 2, points=[[ys[len(ys) // 2], xs[len(xs) // 2]]]))
    calls = _count_refines(monkeypatch)
    list(propagate(OracleEmbedder(gt), seeds, np.zeros(gt.shape, np.uint32), predictor=OraclePredictor(gt),
                   stop=StopRule.off(), z_limits=(2, 3)))
    assert len(seeds) >= 6 and calls == []
    gt = _discs()
    gt[:, 5:15, 5:15] = 2
    calls = _count_refines(monkeypatch)
    list(propagate(NoisyEmbedder(gt), [Seed(1, 2, points=[[40, 44]]), Seed(2, 2, points=[[10, 10]])],
                   np.zeros(gt.shape, np.uint32), predictor=OraclePredictor(gt), stop=StopRule.off(), z_limits=(2, 3)))
    assert len(calls) == 2 and all(calls)  # each clicked disc's mask, refined once
