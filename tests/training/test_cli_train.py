"""`napari-scroll-sam train --synthetic N`: trains on domain-randomised volumes and warns
when validation rests on too few slices."""

from __future__ import annotations

from napari_scroll_sam.cli import main
from napari_scroll_sam.sam import save_checkpoint
from tests.helpers import tiny_model


def test_train_synthetic_warns_on_thin_validation(tmp_path, capsys):
    model = save_checkpoint(tmp_path / "tiny.pt", tiny_model(seed=0, img_size=256))
    rc = main(["train", "--synthetic", "1", "--model", str(model), "--out", str(tmp_path / "ck"), "--epochs", "1",
               "--no-augment", "--val-fraction", "0.15", "--objects-per-sample", "2", "--corrective-rounds", "0",
               "--device", "cpu", "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "warning: validation rests on 1 held-out slice" in out.err  # 8 slices x 0.15 -> 1
    assert "held-out slices)" in out.out + out.err and (tmp_path / "ck" / "best.pt").is_file()
