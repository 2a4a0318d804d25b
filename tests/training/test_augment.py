"""Augmentation moves image and masks together, changes only intensities when told, refuses bad ranges."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.training.augment import AugmentConfig, AugmentError, augment

GEOMETRY_ONLY = dict(p=1.0, p_intensity=0.0)


def _scene():
    masks = np.zeros((2, 48, 64), bool)
    masks[0, 5:20, 8:30] = True
    masks[1, 30:44, 40:60] = True
    img = np.zeros((3, 48, 64), np.float32)
    img[:, masks[0]] = 200
    img[:, masks[1]] = 120
    return img, masks


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("kw", [dict(p_affine=0, p_elastic=0, p_crop=0),  # flips, turns
                                dict(p_affine=0, p_elastic=0, p_crop=1.0),  # + crops
                                dict(p_affine=1.0, p_elastic=1.0, p_crop=0)])  # + warps
def test_masks_follow_the_image(kw):
    img, masks = _scene()
    cfg = AugmentConfig(**GEOMETRY_ONLY, **kw)
    changed = 0
    for seed in range(12):
        out, m = augment(img, masks, np.random.default_rng(seed), cfg)
        assert out.shape[0] == 3 and m.shape[0] == 2 and out.shape[1:] == m.shape[1:]
        for k, level in ((0, 200), (1, 120)):
            if m[k].sum() > 20:
                assert _iou(np.abs(out[0] - level) < 40, m[k]) > 0.8
        changed += out.shape != img.shape or not np.array_equal(out, img)
    assert changed >= 10


def test_intensity_only_keeps_geometry_and_p0_is_identity():
    img, masks = _scene()
    cfg = AugmentConfig(p=1.0, flips=False, rot90=False, p_affine=0, p_elastic=0, p_crop=0, p_intensity=1.0)
    out, m = augment(img, masks, np.random.default_rng(0), cfg)
    assert np.array_equal(m, masks) and not np.array_equal(out, img) and 0 <= out.min() and out.max() <= 255
    out, m = augment(img, masks, np.random.default_rng(0), AugmentConfig(p=0.0))
    assert np.array_equal(out, img) and np.array_equal(m, masks)


@pytest.mark.parametrize("kw, msg", [
    (dict(p=1.5), "p must be a probability"),
    (dict(crop=(0.0, 1.0)), "crop 0.0..1.0 must lie in"),
    (dict(gamma=(2.0, 1.0)), "gamma range 2.0..1.0 is empty"),
    (dict(rotate=400), "rotate"),
    (dict(noise=(0, 500)), "noise"),
    (dict(scale=1.2), r"scale must be a \(low, high\) pair of numbers, got 1.2"),
    (dict(blur=(0, 1, 2)), "blur must be a .low, high. pair"),
    (dict(p_elastic=-0.1, elastic=64), "p_elastic must be a probability in 0..1, got -0.1; .*elastic must be 0..32"),
])
def test_out_of_range_parameters_are_refused(kw, msg):
    with pytest.raises(AugmentError, match=msg):
        AugmentConfig(**kw)
