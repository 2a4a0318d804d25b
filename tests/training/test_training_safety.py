"""Training on a disk that fills or is read-only: a clear error naming the checkpoint,
the previous checkpoint whole; Ctrl-C at the CLI exits 130 keeping the last epoch's."""

from __future__ import annotations

import pytest

from napari_scroll_sam.cli import main
from napari_scroll_sam.training.trainer import TrainConfig, Trainer, TrainingError
from tests.fs_helpers import fill, remount_read_only, snapshot, tmpfs
from tests.helpers import tiny_model
from tests.training.test_trainer import CFG, squares


def test_full_disk_during_a_checkpoint_names_it_and_keeps_the_last_one(tmp_path):
    with tmpfs(tmp_path / "disk", "4m") as disk:
        tr = Trainer(tiny_model(seed=0), [squares()], disk / "ckpt", TrainConfig(**{**CFG, "epochs": 3}),
                     cache=False)
        gen = tr.run()
        for r in gen:
            if getattr(r, "checkpoint", None):  # epoch 1 written
                break
        before = snapshot(disk / "ckpt" / "last.pt")
        fill(disk)
        with pytest.raises(TrainingError, match=r"last\.pt: cannot write the checkpoint of epoch 2 "
                                                r"\(no space left on device\); the previous last\.pt is untouched"):
            for _ in gen:
                pass
        assert snapshot(disk / "ckpt" / "last.pt") == before
        assert sorted(p.name for p in (disk / "ckpt").iterdir()) == ["best.pt", "last.pt"]  # no temporary


def test_read_only_output_folder_is_refused_even_for_root(tmp_path):
    with tmpfs(tmp_path / "ro", "1m") as ro:
        (ro / "ckpt").mkdir()
        remount_read_only(ro)
        with pytest.raises(TrainingError, match="output folder is not writable .read-only file system"):
            Trainer(tiny_model(seed=0), [squares()], ro / "ckpt", TrainConfig(**CFG), cache=False)


def test_ctrl_c_in_train_exits_130(tmp_path, monkeypatch, capsys):
    import napari_scroll_sam.training.trainer as trainer

    real = trainer.Trainer.run

    def interrupted(self):
        gen = real(self)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "run", interrupted)
    assert main(["train", "--phantoms", "1", "--phantom-shape", "4", "64", "64", "--out", str(tmp_path / "o"),
                 "--model", "small", "--epochs", "1", "--cache", str(tmp_path / "c")]) == 130
    assert "cancelled" in capsys.readouterr().err
