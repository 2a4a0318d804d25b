"""Prompt → mask from our batched pipeline equals segment_anything.SamPredictor's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_scroll_sam.sam import ensure_segment_anything
from napari_scroll_sam.sam.predictor import Predictor, PromptError, _to_sam_xy
from napari_scroll_sam.sam.preprocess import preprocess, rgb_to_batch
from tests.helpers import tiny_model

ensure_segment_anything()
from segment_anything import SamPredictor  # noqa: E402


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


@pytest.fixture(scope="module")
def setup():
    model = tiny_model(seed=3, img_size=128)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:150, :200]
    img = (40 + 160 * (((yy - 70) ** 2 + (xx - 90) ** 2) < 40 ** 2) + rng.normal(0, 10, (150, 200))).clip(0, 255)
    rgb = np.repeat(img.astype(np.uint8)[..., None], 3, axis=2)
    ref = SamPredictor(model.sam)
    ref.set_image(rgb)
    x, input_size = preprocess(rgb_to_batch(rgb), (0, 255), model.img_size, already_uint8=True)
    with torch.no_grad():
        emb = model.sam.image_encoder(x)
    return model, ref, emb[0], rgb.shape[:2], input_size


def test_preprocessing_matches_sampredictor(setup):
    model, ref, emb, size, input_size = setup
    assert input_size == tuple(ref.input_size)
    rel = (emb - ref.features[0]).abs().max() / ref.features.abs().max()
    assert rel < 0.05  # torch antialiased bilinear vs PIL bilinear: tiny differences


@pytest.mark.parametrize("prompt", ["points", "box", "both", "multimask"])
def test_masks_match_sampredictor(setup, prompt):
    model, ref, emb, size, _ = setup
    ours = Predictor(model)
    pts_yx = np.array([[70.0, 90.0], [20.0, 180.0]])
    labels = np.array([1, 0])
    box_yx = np.array([25.0, 45.0, 115.0, 135.0])
    kw_ref, kw = {}, {}
    if prompt in ("points", "both", "multimask"):
        kw_ref.update(point_coords=pts_yx[:, ::-1], point_labels=labels)
        kw.update(points=pts_yx, point_labels=labels)
    if prompt in ("box", "both"):
        kw_ref.update(box=box_yx[[1, 0, 3, 2]])
        kw.update(boxes=box_yx)
    multi = prompt == "multimask"
    masks, scores, _ = ref.predict(multimask_output=multi, **kw_ref)
    best = int(np.argmax(scores))
    ref_feats = ref.features[0]
    # same embedding: the decoder path alone must agree exactly
    exact = ours.predict(ref_feats, size, multimask=multi, **kw)
    assert _iou(exact.masks[0], masks[best]) >= 0.999
    np.testing.assert_allclose(exact.iou[0], scores[best], rtol=1e-4, atol=1e-5)
    # our whole pipeline (torch preprocessing + encoder)
    full = ours.predict(emb, size, multimask=multi, **kw)
    assert _iou(full.masks[0], masks[best]) >= 0.99
    side = 4 * model.config.image_embedding_size  # low-res logits are 4x the embedding grid
    assert full.masks.shape == (1, 150, 200) and full.logits.shape == (1, 1, side, side)


def test_many_prompts_at_once_equal_one_by_one(setup):
    model, _, emb, size, _ = setup
    ours = Predictor(model)
    pts = np.array([[[70.0, 90.0]], [[30.0, 40.0]], [[120.0, 160.0]]])
    batch = ours.predict(emb, size, points=pts, point_labels=np.ones((3, 1)))
    for i in range(3):
        one = ours.predict(emb, size, points=pts[i], point_labels=np.ones(1))
        np.testing.assert_array_equal(batch.masks[i], one.masks[0])
        np.testing.assert_allclose(batch.iou[i], one.iou[0], rtol=1e-5)


def test_previous_logits_as_mask_input(setup):
    model, _, emb, size, _ = setup
    ours = Predictor(model)
    first = ours.predict(emb, size, points=[[70.0, 90.0]], point_labels=[1])
    again = ours.predict(emb, size, points=[[70.0, 90.0]], point_labels=[1], mask_input=first.logits)
    assert again.masks.shape == first.masks.shape and again.logits.shape == first.logits.shape


def test_yx_to_xy_happens_once():
    xy = _to_sam_xy(np.array([[10.0, 20.0]]), (100, 200), (50, 100))
    np.testing.assert_allclose(xy, [[10.0, 5.0]])  # x=20*0.5, y=10*0.5


def test_bad_prompts(setup):
    model, _, emb, size, _ = setup
    ours = Predictor(model)
    with pytest.raises(PromptError, match="no prompt"):
        ours.predict(emb, size)
    with pytest.raises(PromptError, match=r"point at \(y=500, x=10\) is outside the slice of shape 150 x 200"):
        ours.predict(emb, size, points=[[500.0, 10.0]], point_labels=[1])
    with pytest.raises(PromptError, match="y0 <= y1"):
        ours.predict(emb, size, boxes=[50, 50, 10, 10])
    with pytest.raises(PromptError, match="one box per prompt"):
        ours.predict(emb, size, points=np.zeros((2, 1, 2)), point_labels=np.ones((2, 1)), boxes=np.zeros((3, 4)))


def test_each_of_the_four_outputs_is_samp_predictors(setup):
    """``output=i`` gives SAM's i-th mask: 0 the single one (multimask off), 1-3 the three."""
    from napari_scroll_sam.sam.predictor import OUTPUTS

    model, ref, _, size, _ = setup
    ours, feats = Predictor(model), ref.features[0]
    pt, lab = np.array([[70.0, 90.0]]), np.array([1])
    single, _, _ = ref.predict(point_coords=pt[:, ::-1], point_labels=lab, multimask_output=False)
    three, scores, _ = ref.predict(point_coords=pt[:, ::-1], point_labels=lab, multimask_output=True)
    assert len(OUTPUTS) == 4
    for i, want in enumerate([single[0], *three]):
        got = ours.predict(feats, size, points=pt, point_labels=lab, output=i)
        assert got.masks.shape == (1, 150, 200) and _iou(got.masks[0], want) >= 0.999
        if i:
            np.testing.assert_allclose(got.iou[0], scores[i - 1], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours.predict(feats, size, points=pt, point_labels=lab, output=0).masks,
                                  ours.predict(feats, size, points=pt, point_labels=lab).masks)
    for bad in (4, -1, 1.5):
        with pytest.raises(PromptError, match="output=.* must be one of 0-3"):
            ours.predict(feats, size, points=pt, point_labels=lab, output=bad)
