"""Domain-randomised synthetic data: every scene makes objects, seeded, and bad configs are refused."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.training.data import check_pair, objects_of
from napari_scroll_sam.training.synthetic import (
    SCENES, SyntheticConfig, SyntheticConfigError, synthetic_pairs, synthetic_slice,
)


@pytest.mark.parametrize("scene", SCENES)
def test_every_scene_makes_objects(scene):
    cfg = SyntheticConfig(size=96, scenes=((scene, 1.0),), object_size=(12, 60), n_cells=(4, 12))
    rng = np.random.default_rng(0)
    for _ in range(3):
        img, lab = synthetic_slice(cfg, rng)
        assert img.shape == lab.shape == (96, 96) and img.dtype == np.uint8
        assert len(objects_of(lab, "instances", cfg.min_area)) >= 1
        assert img.std() > 5  # something is drawn, not a flat slice
        ids = np.unique(lab)
        assert ids[0] == 0 and np.array_equal(ids[1:], np.arange(1, len(ids)))  # numbered 1..K
        assert all((lab == i).sum() >= cfg.min_area for i in ids[1:])


def test_seeded_and_trainable():
    cfg = SyntheticConfig(size=64, object_size=(10, 40), n_cells=(4, 10))
    a, b = synthetic_pairs(cfg, n=1, slices=2, seed=5)[0], synthetic_pairs(cfg, n=1, slices=2, seed=5)[0]
    assert np.array_equal(np.asarray(a.image.data), np.asarray(b.image.data))
    assert np.array_equal(a.labels, b.labels)
    c = synthetic_pairs(cfg, n=1, slices=2, seed=6)[0]
    assert not np.array_equal(np.asarray(a.image.data), np.asarray(c.image.data))
    assert check_pair(a) == [0, 1]


@pytest.mark.parametrize("kw, msg", [
    (dict(shapes=()), "shapes is empty"),
    (dict(object_size=(40, 20)), "object_size range 40..20 is empty"),
    (dict(n_objects=(0, 0)), "n_objects must be >= 1"),
    (dict(scenes=(("scatter", 0.0),)), "no scene with a positive weight"),
    (dict(scenes=(("clouds", 1.0),)), "unknown scenes"),
    (dict(p_invert=1.5), "p_invert must be a probability"),
    (dict(noise=(-0.1, 0.1)), "noise range"),
    (dict(min_area=10**6), "min_area"),
])
def test_configs_that_cannot_make_objects_are_refused(kw, msg):
    with pytest.raises(SyntheticConfigError, match=msg):
        SyntheticConfig(**kw)
