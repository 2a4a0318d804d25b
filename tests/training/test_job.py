"""training.job: a training run as one generator (what the Train widget drives), without Qt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.training.data import TrainingDataError, TrainingPair
from napari_scroll_sam.training.job import TrainerReady, make_trainer, training_run
from napari_scroll_sam.training.trainer import EpochReport, StepReport, TrainConfig, Trainer
from tests.helpers import squares_arrays, tiny_model

CFG = TrainConfig(epochs=1, batch_size=2, warmup_steps=1, patience=0, val_fraction=0.25, freeze="encoder", lr=1e-4)


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))


def squares():
    image, labels = squares_arrays(6, 64, 0)
    return TrainingPair(Volume(levels=[image], contrast_limits=(0, 255), name="squares"), labels, name="squares")


def test_make_trainer_removes_the_folders_it_made_when_it_fails(tmp_path):
    vol = squares().image
    bad = TrainingPair(vol, np.zeros((6, 64, 64), np.uint32))  # nothing annotated
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(TrainingDataError, match="no annotated slice"):
        make_trainer(tiny_model(seed=0), [bad], out, CFG)
    assert not (tmp_path / "a").exists() and tmp_path.exists()  # all three made for nothing: gone
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(TrainingDataError):
        make_trainer(tiny_model(seed=0), [bad], keep / "run", CFG)
    assert not (keep / "run").exists() and (keep / "notes.txt").read_text() == "mine"  # a folder already there stays
    tr = make_trainer(tiny_model(seed=0), [squares()], out, CFG)
    assert isinstance(tr, Trainer) and out.is_dir()


def test_training_run_copies_the_model_and_yields_the_trainer_then_its_reports(tmp_path):
    model = tiny_model(seed=0)
    before = {k: v.clone() for k, v in model.sam.state_dict().items()}
    items = list(training_run([squares()], tmp_path / "run", CFG, model=model))
    assert items[0] == "checking the training data…" and isinstance(items[1], TrainerReady)
    trainer = items[1].trainer
    assert trainer.model is not model and trainer.out_dir == tmp_path / "run"
    assert any(isinstance(r, StepReport) for r in items) and isinstance(items[-1], EpochReport)
    assert (tmp_path / "run" / "best.pt").exists()
    assert all(torch.equal(before[k], v) for k, v in model.sam.state_dict().items())  # the caller's model as it was
    assert any(not torch.equal(before[k], v) for k, v in trainer.sam.state_dict().items())


def test_training_run_by_name_loads_the_model_and_close_cancels(tmp_path, monkeypatch):
    import napari_scroll_sam.sam.models as models

    loaded = []
    monkeypatch.setattr(models, "load_model", lambda name, device: loaded.append((name, device)) or tiny_model(seed=0))
    gen = training_run([squares()], tmp_path / "run", CFG, name="small", device="cpu")
    assert next(gen) == "loading small on cpu…"  # the built-in model: nothing to download
    assert next(gen) == "checking the training data…" and loaded == [("small", "cpu")]
    assert isinstance(next(gen), TrainerReady)
    for r in gen:
        if isinstance(r, StepReport):
            break
    gen.close()  # cancelled in the first epoch: no checkpoint half-written
    assert not (tmp_path / "run" / "best.pt").exists()


def test_training_run_fails_before_training_and_leaves_nothing(tmp_path):
    bad = TrainingPair(squares().image, np.zeros((6, 64, 64), np.uint32))
    gen = training_run([bad], tmp_path / "new" / "run", CFG, model=tiny_model(seed=0))
    assert next(gen) == "checking the training data…"
    with pytest.raises(TrainingDataError):
        next(gen)
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="a model or a model name"):
        next(training_run([bad], tmp_path / "x", CFG))
