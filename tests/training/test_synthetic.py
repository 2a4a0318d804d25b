"""Domain-randomised synthetic data: every scene makes objects, seeded, and bad configs are refused."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.training.data import check_pair, objects_of
from napari_scroll_sam.training.synthetic import (
    SCENES, SyntheticConfig, SyntheticConfigError, rerendered_pairs, rerendered_slice, synthetic_pairs,
    synthetic_slice,
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


def _real_like_labels():
    """Three objects on a 120 x 150 map, one of them (id 7) smaller than min_area."""
    lab = np.zeros((120, 150), np.uint16)
    lab[10:50, 10:60] = 3
    lab[60:110, 80:140] = 5
    lab[5:8, 100:103] = 7  # 9 px
    return lab


def test_rerendered_slice_keeps_the_real_shapes_and_changes_the_look():
    lab = _real_like_labels()
    membrane = np.zeros(lab.shape, bool)
    membrane[55:58] = True
    cfg = SyntheticConfig(size=64)
    looks = []
    for seed in range(4):
        img, out = rerendered_slice(lab, cfg, seed, membrane)
        assert img.shape == out.shape == (64, 64) and img.dtype == np.uint8
        ids = np.unique(out)
        assert ids[0] == 0 and np.array_equal(ids[1:], np.arange(1, len(ids)))  # renumbered 1..K
        assert all((out == i).sum() >= cfg.min_area for i in ids[1:])  # the 9-px object is dropped
        # every object is one of the real ones, cropped: a 64² window of the map
        hits = [(y, x) for y in range(57) for x in range(87) if np.array_equal(out > 0, np.isin(
            lab[y:y + 64, x:x + 64], [3, 5]) & (np.bincount(lab[y:y + 64, x:x + 64].ravel(), minlength=8)[
                lab[y:y + 64, x:x + 64]] >= cfg.min_area))]
        assert hits
        looks.append(img)
    assert len({a.tobytes() for a in looks}) == 4  # a new look each time


def test_rerendered_pairs_are_seeded_and_trainable():
    ls = [(_real_like_labels(), None)]
    cfg = SyntheticConfig(size=64)
    a, b = rerendered_pairs(ls, cfg, n=1, slices=3, seed=2)[0], rerendered_pairs(ls, cfg, n=1, slices=3, seed=2)[0]
    assert np.array_equal(np.asarray(a.image.data), np.asarray(b.image.data)) and np.array_equal(a.labels, b.labels)
    assert check_pair(a) == [0, 1, 2]
    c = rerendered_pairs(ls, cfg, n=1, slices=3, seed=3)[0]
    assert not np.array_equal(np.asarray(a.image.data), np.asarray(c.image.data))


@pytest.mark.parametrize("labels, msg", [
    (np.zeros((40, 200), np.uint16), "at least 64 px a side"),
    (np.zeros((4, 80, 80), np.uint16), "must be 2D"),
    (np.zeros((80, 80), np.uint16), "no object of at least"),
])
def test_rerendering_refuses_maps_it_cannot_use(labels, msg):
    with pytest.raises(SyntheticConfigError, match=msg):
        rerendered_slice(labels, SyntheticConfig(size=64), 0)


def test_rerendered_pairs_need_a_label_map():
    with pytest.raises(SyntheticConfigError, match="no label map"):
        rerendered_pairs([], SyntheticConfig(size=64))
