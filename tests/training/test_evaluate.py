"""Evaluation: IoU per prompt strategy and through the volume, against known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_scroll_sam.cli import main
from napari_scroll_sam.sam import save_checkpoint
from napari_scroll_sam.sam.predictor import Prediction
from napari_scroll_sam.training import evaluate as E
from tests.helpers import tiny_model
from tests.training.test_trainer import squares


def test_every_strategy_scores_every_object(tmp_path):
    pair = squares()
    res = E.evaluate_prompts(tiny_model(), [pair], cache=tmp_path, slices={0: [0, 1]})
    assert set(res) == set(E.STRATEGIES)
    assert all(r["n"] == 4 for r in res.values())  # 2 slices x 2 objects
    assert all(0.0 <= r["iou"] <= 1.0 for r in res.values())
    with pytest.raises(ValueError, match="unknown evaluation strategies"):
        E.evaluate_prompts(tiny_model(), [pair], strategies=["nope"])


def test_a_perfect_model_scores_one(tmp_path, monkeypatch):
    pair = squares()

    def oracle(emb, z, points=None, labels=None, box=None, **kw):
        lab = np.asarray(pair.labels[z])
        if box is not None:
            y0, x0, y1, x1 = np.asarray(box).reshape(4).astype(int)
            vals = lab[y0:y1 + 1, x0:x1 + 1]
            oid = np.bincount(vals[vals > 0]).argmax()
        else:
            y, x = np.asarray(points)[0, 0].round().astype(int)
            oid = lab[y, x]
        return Prediction((lab == oid)[None] if oid else np.zeros((1, *lab.shape), bool), np.ones(1),
                          torch.zeros(1, 1, 4, 4))

    monkeypatch.setattr(E, "segment_slice", oracle)
    res = E.evaluate_prompts(tiny_model(), [pair], strategies=["box", "centroid", "gaussian_centre",
                                                               "random_in_mask"], cache=tmp_path)
    assert all(r["iou"] == 1.0 for r in res.values())


def test_objects_3d_and_propagation_score(tmp_path):
    pair = squares()
    objs = E.objects_3d(pair.labels)
    assert set(objs) == {1, 2} and objs[2] == [0, 1, 2, 3, 4]
    res = E.evaluate_propagation(tiny_model(), pair, objects=[2], cache=tmp_path)
    assert set(res["objects"]) == {2} and 0.0 <= res["mean_iou"] <= 1.0
    assert res["objects"][2]["slices"] == 5


def test_evaluate_command_table(tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    save_checkpoint(a, tiny_model(seed=0, name="small2"))
    save_checkpoint(b, tiny_model(seed=1, name="small2"))
    assert main(["evaluate", "--phantoms", "1", "--phantom-shape", "2", "64", "64", "--model", str(a), "--model",
                 str(b), "--strategies", "box", "centroid", "--cache", str(tmp_path / "c"), "--json",
                 str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert f"| strategy | {a} | {b} |" in out and "| box |" in out and "| centroid |" in out
    assert (tmp_path / "e.json").is_file()
