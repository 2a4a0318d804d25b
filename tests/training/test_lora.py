"""LoRA adapters on the encoder's attention: start as the model was, train only themselves,
fold back into a plain checkpoint, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_scroll_sam.sam import load_model, save_checkpoint
from napari_scroll_sam.training.lora import LoRALinear, add_lora, has_lora, merge_lora, merged_copy
from napari_scroll_sam.training.trainer import EpochReport, StepReport, TrainConfig, Trainer, TrainingError
from tests.helpers import tiny_model
from tests.training.test_trainer import CFG, squares


def _encode(sam, x):
    with torch.no_grad():
        return sam.image_encoder(x)


def test_adapters_start_as_identity_and_merge_exactly():
    model = tiny_model(seed=0)
    x = torch.rand(1, 3, 64, 64)
    before = _encode(model.sam, x)
    adapters = add_lora(model.sam, rank=2)
    assert len(adapters) == 2 * len(model.sam.image_encoder.blocks) and has_lora(model.sam)
    torch.testing.assert_close(_encode(model.sam, x), before)  # B = 0: nothing changed yet
    with torch.no_grad():
        for a in adapters:
            a.B.normal_(0, 0.5)
    changed = _encode(model.sam, x)
    assert not torch.allclose(changed, before, atol=1e-4)
    plain = merged_copy(model.sam)
    assert has_lora(model.sam) and not has_lora(plain)
    assert set(plain.state_dict()) == set(tiny_model(seed=0).sam.state_dict())
    torch.testing.assert_close(_encode(plain, x), changed, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="already carries"):
        add_lora(model.sam, 2)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        LoRALinear(torch.nn.Linear(4, 4), 0)


def test_lora_run_trains_only_adapters_and_decoder_and_saves_plain(tmp_path):
    model = tiny_model(seed=0)
    ref = tiny_model(seed=0).sam
    x = torch.rand(1, 3, 64, 64)
    tr = Trainer(model, [squares()], tmp_path / "l", TrainConfig(**{**CFG, "freeze": "lora:2", "lr": 5e-3}),
                 cache=tmp_path / "cache")
    trained = {n for n, p in tr.sam.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("mask_decoder.") or n.endswith((".A", ".B")) for n in trained)
    reports = list(tr.run())
    assert [r.epoch for r in reports if isinstance(r, EpochReport)] == [1, 2]
    assert not has_lora(model.sam)  # folded in when the run ended
    blk, ref_blk = model.sam.image_encoder.blocks[0], ref.image_encoder.blocks[0]
    assert not torch.equal(blk.attn.qkv.weight, ref_blk.attn.qkv.weight)  # the adapter moved the weight
    assert torch.equal(blk.mlp.lin1.weight, ref_blk.mlp.lin1.weight)  # nothing else in the encoder
    saved = load_model(tmp_path / "l" / "last.pt", device="cpu")  # a plain checkpoint
    torch.testing.assert_close(_encode(saved.sam, x), _encode(model.sam, x), atol=1e-5, rtol=1e-4)
    with pytest.raises(TrainingError, match="make a new Trainer"):
        next(tr.run())


def test_lora_resume_continues_the_same_run(tmp_path):
    cfg = lambda epochs: TrainConfig(**{**CFG, "freeze": "lora:2", "lr": 5e-3, "epochs": epochs})  # noqa: E731
    whole = tiny_model(seed=0)
    losses = [r.loss for r in Trainer(whole, [squares()], tmp_path / "w", cfg(2), cache=tmp_path / "c").run()
              if isinstance(r, StepReport)]
    half = tiny_model(seed=0)
    list(Trainer(half, [squares()], tmp_path / "h", cfg(1), cache=tmp_path / "c").run())
    again = Trainer(tiny_model(seed=0), [squares()], tmp_path / "h", cfg(2), cache=tmp_path / "c",
                    resume=tmp_path / "h" / "last.pt")
    rest = [r.loss for r in again.run() if isinstance(r, StepReport)]
    np.testing.assert_allclose(rest, losses[len(losses) - len(rest):], rtol=1e-4)
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, tiny_model(seed=0))
    with pytest.raises(TrainingError, match="holds no LoRA adapters"):
        Trainer(tiny_model(seed=0), [squares()], tmp_path / "p", cfg(2), cache=tmp_path / "c", resume=plain)


@pytest.mark.parametrize("freeze", ["lora:0", "lora:x", "lora", "last:", "all"])
def test_bad_freeze_is_refused(freeze):
    with pytest.raises(TrainingError, match=f"not {freeze!r}"):
        TrainConfig(freeze=freeze)


def test_merge_lora_in_place_and_a_second_trainer_folds_the_first_ones_adapters(tmp_path):
    model = tiny_model(seed=0)
    add_lora(model.sam, 1)
    assert merge_lora(model.sam) is model.sam and not has_lora(model.sam)
    cfg = TrainConfig(**{**CFG, "freeze": "lora:2"})
    first = Trainer(model, [squares()], tmp_path / "a", cfg, cache=False)  # never run: adapters stay
    with torch.no_grad():
        first.sam.image_encoder.blocks[0].attn.qkv.B.fill_(0.1)
    x = torch.rand(1, 3, 64, 64)
    out = _encode(model.sam, x)
    second = Trainer(model, [squares()], tmp_path / "b", cfg, cache=False)
    assert len([m for m in second.sam.modules() if isinstance(m, LoRALinear)]) == 2 * 2  # fresh ones only
    torch.testing.assert_close(_encode(model.sam, x), out, atol=1e-5, rtol=1e-4)  # the first's update kept
