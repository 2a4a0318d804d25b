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
from napari_scroll_sam.training.trainer import EpochReport, StageReport, StepReport, TrainConfig, Trainer, TrainingError
from tests.helpers import squares_arrays, tiny_model


def squares(n=6, size=64, seed=0):
    """Bright squares on a dark background, one or two objects per slice; slice 5 unlabelled."""
    image, labels = squares_arrays(n, size, seed)
    return TrainingPair(Volume(levels=[image], contrast_limits=(0, 255), name="squares"), labels, name="squares")


CFG = dict(epochs=2, batch_size=2, warmup_steps=2, patience=0, val_fraction=0.25, freeze="encoder", lr=1e-4)


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
    _, reports = _run(tmp_path, "e", epochs=6, lr=0.0, patience=1, min_steps=0)
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


# --- schedules in epochs, early stopping, honest validation (issue 12) ------------------

def test_warmup_is_in_epochs_like_patience(tmp_path):
    model = tiny_model(seed=0)
    tr = Trainer(model, [squares()], tmp_path / "w", TrainConfig(epochs=4, batch_size=1, warmup_epochs=2.0,
                                                                  val_fraction=0.25), cache=False)
    assert tr.steps_per_epoch == 4  # 4 training slices (of 5 annotated) x 1 tile, batch 1
    assert tr.warmup_steps == 8
    assert tr.lr_at(0) < tr.lr_at(7) == pytest.approx(tr.config.lr) and tr.lr_at(15) < tr.config.lr / 10
    explicit = Trainer(model, [squares()], tmp_path / "w2", TrainConfig(warmup_steps=2, val_fraction=0.25), cache=False)
    assert explicit.warmup_steps == 2


def test_early_stop_waits_for_min_steps_and_warmup(tmp_path):
    # lr 0: validation never improves, patience 1 would stop after epoch 2 …
    _, reports = _run(tmp_path, "m", epochs=5, lr=0.0, patience=1, min_steps=7)
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    # … but 2 steps per epoch: not before step 7, i.e. at the end of epoch 4
    assert [r.epoch for r in epochs] == [1, 2, 3, 4] and epochs[-1].stopped and epochs[-1].step == 8
    _, reports = _run(tmp_path, "m2", epochs=5, lr=0.0, patience=1, min_steps=0, warmup_epochs=3.0,
                      warmup_steps=None)
    assert [r.epoch for r in reports if isinstance(r, EpochReport)] == [1, 2, 3]  # warm-up = 6 steps


def test_validation_warns_when_it_rests_on_few_slices(tmp_path, caplog):
    model = tiny_model(seed=0)
    few = Trainer(model, [squares()], tmp_path / "v", TrainConfig(val_fraction=0.25), cache=False)
    assert few.validation_warning and "1 held-out slice" in few.validation_warning
    assert "too few to trust" in caplog.text
    none = Trainer(model, [squares()], tmp_path / "v0", TrainConfig(val_fraction=0.0), cache=False)
    assert "no validation" in none.validation_warning
    enough = Trainer(model, [squares(n=12)], tmp_path / "v2", TrainConfig(val_fraction=0.3), cache=False)
    assert enough.validation_warning is None and sum(map(len, enough.val_slices)) == 3
    reports = [r for r in enough.run() if isinstance(r, EpochReport)]
    r = reports[0]
    assert r.val_slices == 3 and 0 <= r.val_box <= 1 and 0 <= r.val_click <= 1
    assert r.val_iou == pytest.approx((r.val_box + r.val_click) / 2)  # as many box as click prompts


def test_other_labelled_slices_validate(tmp_path):
    pair = squares()
    pair.slices = [0, 1]  # trained on two of the five labelled slices
    tr = Trainer(tiny_model(seed=0), [pair], tmp_path / "o", TrainConfig(), cache=False)
    assert tr.train_slices == [[0, 1]] and tr.val_slices == [[2, 3, 4]] and tr.validation_warning is None


def test_augmentation_on_by_default_and_off_by_flag(tmp_path):
    assert TrainConfig().augment
    on, _ = _run(tmp_path, "a1", epochs=1, lr=1e-3)
    off, _ = _run(tmp_path, "a0", epochs=1, lr=1e-3, augment=False)
    assert on.augmentation is not None and off.augmentation is None
    w_on, w_off = on.sam.mask_decoder.iou_token.weight, off.sam.mask_decoder.iou_token.weight
    assert not torch.equal(w_on, w_off)  # the augmented images changed what was learned
    from napari_scroll_sam.training.augment import AugmentConfig, AugmentError

    with pytest.raises(AugmentError, match="p must be a probability"):
        TrainConfig(augmentation=AugmentConfig(p=2.0))
    with pytest.raises(TrainingError, match="AugmentConfig"):
        TrainConfig(augmentation={"p": 0.5})


def test_overfits_one_slice(tmp_path):
    """The sanity check of issue 12 on a tiny model: one annotated slice, true-box prompts,
    encoder trained: it must fit that slice (the real-data version is benchmarks/overfit.py)."""
    image, labels = squares_arrays(2, 64, 0)
    pair = TrainingPair(Volume(levels=[image[:1]], contrast_limits=(0, 255), name="one"), labels[:1], name="one")
    cfg = TrainConfig(epochs=60, lr=5e-3, batch_size=1, freeze="none", val_fraction=0.0, patience=0,
                      prompt_kinds=("box",), corrective_rounds=0, augment=False, loss="bce", warmup_steps=10)
    tr = Trainer(tiny_model(seed=0), [pair], tmp_path / "f", cfg, cache=False)
    for _ in tr.run():
        pass
    tr.sam.eval()
    ious = []
    with torch.no_grad():
        from napari_scroll_sam import prompts as P

        s = tr.train_samples[0]
        emb = tr._embedding(s)
        prompts = [P.Prompt(np.zeros((0, 2)), np.zeros(0), P.bbox(m)) for m in s.masks]
        logits, _, _ = tr._decode(emb, s.masks.shape[1:], prompts)
        for lg, m in zip(logits[:, 0], s.masks):
            ious.append(((lg > 0).numpy() & m).sum() / ((lg > 0).numpy() | m).sum())
    assert min(ious) > 0.9, ious


@pytest.mark.parametrize("smc", [False, True])
def test_single_mask_clicks_trains_the_mask_a_click_shows(tmp_path, smc):
    """One-click prompts train SAM's three masks; with ``single_mask_clicks`` also the single
    output (token 0) that a click shows in the widgets and propagation."""
    tr, _ = _run(tmp_path, f"s{smc}", epochs=1, lr=1e-2, weight_decay=0.0, prompt_kinds=("point",),
                 corrective_rounds=0, single_mask_clicks=smc)
    ref = tiny_model(seed=0).sam.mask_decoder.output_hypernetworks_mlps
    mlps = tr.sam.mask_decoder.output_hypernetworks_mlps
    assert any(not torch.equal(mlps[i].layers[0].weight, ref[i].layers[0].weight) for i in (1, 2, 3))  # the three
    assert torch.equal(mlps[0].layers[0].weight, ref[0].layers[0].weight) != smc  # the single one: only with smc


@pytest.mark.parametrize("smc", [False, True])
def test_validation_click_scores_the_output_the_run_trains(tmp_path, smc):
    """The click of the validation is answered by the top-scored of three masks, or, when the run
    trains the single mask a click shows (``single_mask_clicks``), by that single mask."""
    from napari_scroll_sam.training.validation import validate

    tr = Trainer(tiny_model(seed=0), [squares(n=12)], tmp_path / "v", TrainConfig(val_fraction=0.3,
                 single_mask_clicks=smc), cache=False)
    asked = []
    decode = tr._decode

    def spy(emb, size, prompts, mask_input=None, multimask=False):
        asked.append(multimask)
        return decode(emb, size, prompts, mask_input=mask_input, multimask=multimask)

    tr._decode = spy
    (iou, dice), per = validate(tr, tr.val_samples)
    assert 0 <= per["click"] <= 1 and 0 <= per["box"] <= 1
    # one box and one click call per sample; the click's multimask flag follows the run
    assert asked.count(False) == len(tr.val_samples) * (2 if smc else 1)
    assert asked.count(True) == (0 if smc else len(tr.val_samples))


def test_request_stop_ends_the_run_within_the_step(tmp_path):
    """``request_stop`` (the widget's Stop, from the GUI thread) ends the run at the next sample:
    the step under way is dropped (no update, step count unchanged), nothing is written."""
    tr = Trainer(tiny_model(seed=0), [squares()], tmp_path / "s", TrainConfig(**{**CFG, "batch_size": 3}),
                 cache=tmp_path / "cache")
    assert len(tr.train_samples) >= 3
    before = {k: v.clone() for k, v in tr.sam.state_dict().items()}
    seen = []
    loss_of = tr._sample_loss

    def one_sample(sample, rng):
        seen.append(sample)
        if len(seen) == 2:  # inside the first step (3 samples)
            tr.request_stop()
        return loss_of(sample, rng)

    tr._sample_loss = one_sample
    reports = [r for r in tr.run() if not isinstance(r, StageReport)]
    assert reports == [] and tr.step == 0 and len(seen) == 2  # the third sample never ran
    assert all(torch.equal(before[k], v) for k, v in tr.sam.state_dict().items())  # no update
    assert not (tmp_path / "s" / "last.pt").exists()  # no epoch ended: no checkpoint
    # the same Trainer runs again after a stop (the request is cleared when a run starts)
    tr._sample_loss = loss_of
    assert any(isinstance(r, EpochReport) for r in tr.run()) and tr.step > 0
