"""The contrast stop rule: a walk ends where its object ends, though the motion prior (or a
model that answers the same place) would carry the mask on over whatever lies beyond."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.propagation import PropagationError, Seed, StopRule, WalkConfig, propagate
from napari_scroll_sam.propagation.stop import mask_contrast
from napari_scroll_sam.sam.predictor import Prediction
from tests.test_propagation import OracleEmbedder

N, END = 20, 9  # the object is on slices 0..END


def disc(shape=(64, 64), c=(32, 32), r=8):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r


def ending_tube(bright=True):
    """A disc on noise on slices 0..END, noise alone after; intensities 0..1000."""
    rng = np.random.default_rng(0)
    image = rng.normal(300, 40, (N, 64, 64))
    for z in range(END + 1):
        image[z][disc()] += 400 if bright else -250
    gt = np.zeros((N, 64, 64), np.uint32)
    gt[: END + 1][:, disc()] = 1
    return np.clip(image, 0, 1000).astype(np.uint16), gt


class SamePlace:
    """A model that answers the disc's place on every slice, object or not."""

    def predict(self, embedding, original_size, points=None, point_labels=None, boxes=None, mask_input=None,
                multimask=False):
        n = len(points) if points is not None else len(np.asarray(boxes).reshape(-1, 4))
        return Prediction(np.stack([disc()] * n), np.full(n, 0.9, np.float32), torch.zeros((n, 1, 4, 4)))


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def walk(image, gt, stop, model_every=1):
    emb = OracleEmbedder(gt)
    emb.volume = Volume(levels=[image], contrast_limits=(0, 1000), name="tube")
    labels = np.zeros(gt.shape, np.uint32)
    reports = list(propagate(emb, [Seed(1, 4, mask=gt[4] == 1)], labels, predictor=SamePlace(), stop=stop,
                             direction="up", walk=WalkConfig(model_every=model_every)))
    return labels, reports


@pytest.mark.parametrize("bright", [True, False])
@pytest.mark.parametrize("every", [1, 4])
def test_a_walk_stops_where_its_object_ends(bright, every):
    image, gt = ending_tube(bright)
    labels, reports = walk(image, gt, StopRule(), every)
    stops = [r for r in reports if r.stopped]
    assert len(stops) == 1 and "contrast" in stops[0].stopped and stops[0].z == END + 2, stops
    assert all(iou(labels[z] > 0, disc()) > 0.9 for z in range(4, END + 1))  # the whole object
    assert labels[END + 1].any() and not labels[END + 2:].any()  # one slice past it, no more
    # without the rule the same walk runs to the volume's end
    labels, reports = walk(image, gt, StopRule(min_contrast_share=None), every)
    assert not any(r.stopped for r in reports) and all(labels[z].any() for z in range(4, N))


def test_an_anchor_without_contrast_is_not_judged():
    image, gt = ending_tube()
    flat = np.random.default_rng(1).normal(300, 40, image.shape).clip(0, 1000).astype(np.uint16)
    labels, reports = walk(flat, gt, StopRule())
    assert not any(r.stopped for r in reports) and all(labels[z].any() for z in range(4, N))


def test_mask_contrast_is_signed_and_none_without_a_mask():
    image, _ = ending_tube(bright=True)
    dark, _ = ending_tube(bright=False)

    def crop(a):
        return lambda b: a[b[0]:b[2], b[1]:b[3]] / 1000.0

    assert mask_contrast(disc(), crop(image[0])) > 3
    assert mask_contrast(disc(), crop(dark[0])) < -3
    assert abs(mask_contrast(disc(), crop(image[END + 1]))) < 0.5
    assert mask_contrast(np.zeros((64, 64), bool), crop(image[0])) is None
    assert mask_contrast(np.ones((64, 64), bool), crop(image[0])) is None  # no ring around it


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.3"])
def test_bad_contrast_share_is_refused(bad):
    with pytest.raises(PropagationError, match="min_contrast_share"):
        StopRule(min_contrast_share=bad)
