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
    assert f"| strategy | {a} | {b} | {b} − {a} |" in out and "| box |" in out and "| centroid |" in out
    assert "masks: single" in out and "refined on the slice's edges" in out
    assert (tmp_path / "e.json").is_file()
    assert main(["evaluate", "--phantoms", "1", "--phantom-shape", "2", "64", "64", "--model", str(a),
                 "--strategies", "box", "--cache", str(tmp_path / "c"), "--no-refine"]) == 0
    assert "the model's own" in capsys.readouterr().out


def test_evaluate_command_one_table_with_propagation(tmp_path, capsys):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    save_checkpoint(a, tiny_model(seed=0, name="small2"))
    save_checkpoint(b, tiny_model(seed=0, name="small2"))
    assert main(["evaluate", "--phantoms", "1", "--phantom-shape", "4", "64", "64", "--model", str(a), "--model",
                 str(b), "--strategies", "box", "deepest_point", "--propagation", "--click", "best_of_3",
                 "--cache", str(tmp_path / "c")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 2 + 1  # head, rule, two strategies, propagation: one table
    assert lines[-1].startswith("| propagation: one point on the middle slice")
    assert all(ln.endswith("| +0.000 |") for ln in lines[2:])  # the same weights twice: no change


def test_table_change_column():
    cols = {"before": {"box": {"iou": 0.5}}, "after": {"box": {"iou": 0.75}}}
    prop = {"before": {"mean_iou": 0.4, "objects": {1: {}}}, "after": {"mean_iou": 0.3, "objects": {1: {}}}}
    lines = E.table(cols, propagation=prop).splitlines()
    assert lines[0] == "| strategy | before | after | after − before |"
    assert lines[2] == "| box | 0.500 | 0.750 | +0.250 |"
    assert lines[3].endswith("| 0.400 | 0.300 | -0.100 |") and "(1 objects)" in lines[3]
    assert E.table({"one": cols["before"]}).splitlines()[0] == "| strategy | one |"


def test_click_rule_chooses_the_mask_that_answers(monkeypatch):
    """'single' scores SAM's single-mask output, 'best_of_3' the top-scored of three: an oracle whose
    single mask is right and whose three are wrong scores 1 and 0."""
    pair = squares()
    lab = np.asarray(pair.labels)

    def oracle(emb, z, points=None, labels=None, box=None, multimask=False, **kw):
        if box is not None:
            y0, x0, y1, x1 = np.asarray(box).reshape(4).astype(int)
        else:
            y0, x0 = y1, x1 = np.asarray(points).reshape(-1, 2)[0].round().astype(int)
        oid = lab[z][y0:y1 + 1, x0:x1 + 1].max()
        right = lab[z] == oid
        return Prediction(((~right) if multimask else right)[None], np.ones(1), torch.zeros(1, 1, 4, 4))

    monkeypatch.setattr(E, "segment_slice", oracle)
    single = E.ceiling_scores(None, lab, slices=[0, 1])
    best3 = E.ceiling_scores(None, lab, slices=[0, 1], click="best_of_3")
    assert single == {"box": 1.0, "click": 1.0, "n": 4, "click_rule": "single"}
    assert best3["box"] == 1.0 and best3["click"] == 0.0
    res = E.evaluate_prompts(tiny_model(), [pair], ["deepest_point"], slices={0: [0]}, click="best_of_3")
    assert res["deepest_point"] == {"iou": 0.0, "n": 2}
    with pytest.raises(ValueError, match="click must be one of single, best_of_3"):
        E.ceiling_scores(None, lab, click="top")


def test_refine_reaches_segment_slice(monkeypatch):
    """``refine`` of the ceiling and of the prompt table is what segment_slice is asked for."""
    pair = squares()
    lab = np.asarray(pair.labels)
    asked = []

    def oracle(emb, z, points=None, labels=None, box=None, multimask=False, refine=True, **kw):
        asked.append(refine)
        return Prediction(np.zeros((1,) + lab.shape[1:], bool), np.ones(1), torch.zeros(1, 1, 4, 4))

    monkeypatch.setattr(E, "segment_slice", oracle)
    E.ceiling_scores(None, lab, slices=[0])
    assert asked and all(asked)
    asked.clear()
    E.ceiling_scores(None, lab, slices=[0], refine=False)
    assert asked and not any(asked)
    asked.clear()
    E.evaluate_prompts(tiny_model(), [pair], ["box"], slices={0: [0]}, refine=False)
    assert asked and not any(asked)
