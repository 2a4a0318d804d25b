"""The trainer: learns, is reproducible, checkpoints atomically, resumes, stops, refuses bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam import load_model, save_checkpoint
from napari_scroll_sam.training.data import (
    TrainingDataError, TrainingPair, check_pair, corrective_points, objects_of, sample_prompt, split_slices,
)
from napari_scroll_sam.training.losses import sam_loss
from napari_scroll_sam.training.trainer import EpochReport, StepReport, TrainConfig, Trainer, TrainingError
from tests.helpers import squares_arrays, tiny_model


def squares(n=6, size=64, seed=0):
    """Bright squares on a dark background, one or two objects per slice; slice 5 unlabelled."""
    image, labels = squares_arrays(n, size, seed)
    return TrainingPair(Volume(levels=[image], contrast_limits=(0, 255), name="squares"), labels, name="squares")


CFG = dict(epochs=2, batch_size=2, warmup_steps=2, patience=0, val_fraction=0.25)


def _run(tmp_path, name="run", model=None, **kw):
    model = model or tiny_model(seed=0)
    cfg = TrainConfig(**{**CFG, **kw})
    tr = Trainer(model, [squares()], tmp_path / name, cfg, cache=tmp_path / "cache")
    reports = list(tr.run())
    return tr, reports


def test_data_annotated_slices_objects_split_prompts():
    pair = squares()
    assert check_pair(pair) == [0, 1, 2, 3, 4]
    assert len(objects_of(pair.labels[0], "instances")) == 2
    assert len(objects_of(pair.labels[0] > 0, "components")) == 2
    train, val = split_slices([0, 1, 2, 3, 4], 0.4, seed=1)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == [0, 1, 2, 3, 4]
    assert split_slices([0, 1, 2], val_slices=[2]) == ([0, 1], [2])
    rng = np.random.default_rng(0)
    m = pair.labels[0] == 1
    for _ in range(20):
        p = sample_prompt(m, rng, ("point", "box", "points", "background"))
        assert all(m[int(y), int(x)] for (y, x) in p.points[p.labels == 1])
        assert not any(m[int(y), int(x)] for (y, x) in p.points[p.labels == 0])
    pred = np.zeros_like(m)
    pred[:, :5] = True
    pts, lab = corrective_points(pred, m)
    assert lab.tolist() == [1, 0] and m[tuple(pts[0].astype(int))] and pred[tuple(pts[1].astype(int))]


def test_loss_picks_the_best_of_multimask_outputs():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = torch.where(target.bool(), 10.0, -10.0)
    logits = torch.stack([-good, good, -good], dim=1)  # mask 1 is right
    loss, parts, best, true_iou = sam_loss(logits, torch.tensor([[0.1, 1.0, 0.1]]), target)
    assert best.tolist() == [1] and true_iou.tolist() == [1.0] and parts["dice"] < 0.01


def test_frozen_encoder_learns_and_writes_checkpoints(tmp_path):
    tr, reports = _run(tmp_path, epochs=4, lr=2e-3)
    steps = [r for r in reports if isinstance(r, StepReport)]
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert len(epochs) == 4 and all(r.val_iou is not None for r in epochs)
    assert np.mean([r.loss for r in steps[-3:]]) < np.mean([r.loss for r in steps[:3]])  # it learns
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    enc = tr.sam.image_encoder.patch_embed.proj.weight
    torch.testing.assert_close(enc, tiny_model(seed=0).sam.image_encoder.patch_embed.proj.weight)  # frozen
    best = load_model(tmp_path / "run" / "best.pt", device="cpu")  # the Segment widget loads this
    assert best.config == tr.model.config
    assert sorted(os.listdir(tmp_path / "run")) == ["best.pt", "last.pt"]  # no temporary files


def test_same_seed_same_run_on_cpu(tmp_path):
    _, a = _run(tmp_path, "a")
    _, b = _run(tmp_path, "b")
    la = [r.loss for r in a if isinstance(r, StepReport)]
    lb = [r.loss for r in b if isinstance(r, StepReport)]
    assert la == lb
    _, c = _run(tmp_path, "c", seed=1)
    assert [r.loss for r in c if isinstance(r, StepReport)] != la


def test_resume_continues_from_last(tmp_path):
    tr, _ = _run(tmp_path, "r", epochs=1)
    model = tiny_model(seed=0)
    cfg = TrainConfig(**{**CFG, "epochs": 2})
    again = Trainer(model, [squares()], tmp_path / "r", cfg, cache=tmp_path / "cache", resume=tmp_path / "r" / "last.pt")
    assert again.epoch == 1 and again.step == tr.step
    torch.testing.assert_close(again.sam.mask_decoder.iou_token.weight, tr.sam.mask_decoder.iou_token.weight)
    reports = [r for r in again.run() if isinstance(r, EpochReport)]
    assert [r.epoch for r in reports] == [2]


def test_unfrozen_encoder_changes(tmp_path):
    tr, _ = _run(tmp_path, "u", epochs=1, freeze="last:1", lr=1e-3)
    before = tiny_model(seed=0).sam.image_encoder
    assert not torch.equal(tr.sam.image_encoder.blocks[-1].mlp.lin1.weight, before.blocks[-1].mlp.lin1.weight)
    assert torch.equal(tr.sam.image_encoder.blocks[0].mlp.lin1.weight, before.blocks[0].mlp.lin1.weight)


def test_early_stop_and_cancel_keep_checkpoints(tmp_path):
    _, reports = _run(tmp_path, "e", epochs=6, lr=0.0, patience=1)
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert len(epochs) == 2 and epochs[-1].stopped and "no better validation score" in epochs[-1].stopped
    model = tiny_model(seed=0)
    tr = Trainer(model, [squares()], tmp_path / "x", TrainConfig(**CFG), cache=tmp_path / "cache")
    gen = tr.run()
    for r in gen:
        if isinstance(r, StepReport):
            break
    gen.close()  # cancelled in the first epoch: nothing half-written
    assert not (tmp_path / "x" / "best.pt").exists() and list((tmp_path / "x").iterdir()) == []


def test_bad_input_before_training(tmp_path):
    model = tiny_model(seed=0)
    good = squares()
    vol = good.image
    cases = [
        (TrainingPair(vol, np.zeros((6, 64, 63), np.uint32)), "do not fit the image"),
        (TrainingPair(vol, np.zeros((6, 64, 64), np.uint32)), "no annotated slice"),
        (TrainingPair(vol, np.ones((6, 64, 64), np.uint32)), "one class only"),
        (TrainingPair(vol, -np.asarray(good.labels, np.int32)), "negative"),
        (TrainingPair(vol, np.asarray(good.labels, np.float32)), "must be integers"),
    ]
    for pair, msg in cases:
        with pytest.raises(TrainingDataError, match=msg):
            Trainer(model, [pair], tmp_path / "o", TrainConfig(**CFG), cache=False)
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):  # (root may write anywhere)
        with pytest.raises(TrainingError, match="not writable"):
            Trainer(model, [good], ro, TrainConfig(**CFG), cache=False)
    other = tmp_path / "other.pt"
    save_checkpoint(other, tiny_model(seed=1, img_size=128))
    with pytest.raises(TrainingError, match="another model"):
        Trainer(model, [good], tmp_path / "o2", TrainConfig(**CFG), cache=False, resume=other)
    with pytest.raises(TrainingError, match="freeze"):
        TrainConfig(freeze="half")


def test_bce_loss_option_and_parts():
    target = torch.zeros(2, 8, 8)
    target[:, 2:4, 2:4] = 1
    logits = torch.full((2, 1, 8, 8), -5.0)
    focal, parts_f, _, _ = sam_loss(logits, torch.zeros(2, 1), target, "focal")
    bce, parts_b, _, _ = sam_loss(logits, torch.zeros(2, 1), target, "bce")
    assert "focal" in parts_f and "bce" in parts_b
    # BCE of logit -5: 5 on the 4 missed positives, ~0.0067 on the 60 negatives
    assert parts_b["bce"] == pytest.approx((4 * 5.0067 + 60 * 0.0067) / 64, rel=1e-3)
    assert float(bce) == pytest.approx(parts_b["bce"] + parts_b["dice"] + parts_b["iou_mse"], rel=1e-4)
    with pytest.raises(TrainingError, match="loss"):
        TrainConfig(loss="l2")
