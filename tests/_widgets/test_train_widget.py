"""The Train dock widget: trains from layers, plots, checkpoints, stops, refuses bad input, hands over."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.layers import BUILTIN_MODEL
from napari_scroll_sam._widgets.segment import SegmentWidget
from napari_scroll_sam._widgets.train import TrainWidget, parse_slices
from napari_scroll_sam.training.trainer import EpochReport, StepReport
from tests.helpers import squares_arrays, tiny_model

N, SIZE = 6, 64


def squares(n=N, size=SIZE, seed=0):
    return squares_arrays(n, size, seed)


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture
def setup(make_napari_viewer, qtbot, monkeypatch, tmp_path, model):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_SYNC", "1")
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))
    image, labels = squares()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="squares", contrast_limits=(0, 255))
    viewer.add_labels(labels, name="squares labels")
    w = TrainWidget(viewer)
    qtbot.addWidget(w)
    w.set_model(model)
    w.epochs_spin.setValue(2)
    w.batch_spin.setValue(2)
    w.val_fraction.setValue(0.25)
    w.patience_spin.setValue(0)
    w.out_edit.setText(str(tmp_path / "run"))
    return viewer, w, tmp_path / "run"


def test_trains_plots_and_writes_checkpoints(setup, model):
    viewer, w, out = setup
    assert w.image_combo.currentText() == "squares" and w.labels_combo.currentText() == "squares labels"
    assert w.model_combo.currentText() == "tiny"
    w.add_pair_button.click()
    assert w.pairs() == [("squares", "squares labels", "instances")] and w.pairs_list.count() == 1
    reports, finished = [], []
    w.report.connect(reports.append)
    w.training_finished.connect(finished.append)
    before = model.sam.mask_decoder.iou_token.weight.detach().clone()
    w.start_button.click()
    assert finished == ["done"], w.error_label.text()
    assert w.error_label.isHidden()
    steps = [r for r in reports if isinstance(r, StepReport)]
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    # 5 annotated slices, 1 for validation, 4 for training in batches of 2: 2 steps per epoch
    assert len(steps) == 4 and len(epochs) == 2 and w.trainer.total_steps == 4
    assert w.plot.steps == [1, 2, 3, 4] and w.plot.losses == [r.loss for r in steps]
    assert w.plot.epoch_steps == [2, 4] and len(w.plot.val_iou) == len(w.plot.val_dice) == 2
    assert all(v is not None for v in w.plot.val_iou)
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert w.best_checkpoint() == out / "best.pt"
    assert w.progress_bar.value() == 4 and w.progress_bar.maximum() == 4
    assert f"val IoU {epochs[-1].val_iou:.3f}" in w.status_label.text()
    assert "done: 2 epochs" in w.status_label.text()
    assert w.use_button.isEnabled() and w.start_button.isEnabled() and not w.stop_button.isEnabled()
    # a copy was trained: the given model is as it was
    assert np.array_equal(model.sam.mask_decoder.iou_token.weight.detach(), before)
    w.plot.grab()  # paints without error

    # "Use this model": no Segment widget docked yet → one is docked and gets best.pt
    seg = w.use_model()
    assert isinstance(seg, SegmentWidget)
    assert seg.model_combo.currentText() == str(out / "best.pt")
    assert seg is w._find_segment_widget()
    # the checkpoint loads there (the first Embed loads it)
    seg.device_combo.setCurrentText("cpu")
    seg.embed_volume()
    assert not seg.error_label.text(), seg.error_label.text()
    assert "loaded: tiny:" in seg.model_label.text()
    # a second click finds the docked one again
    w.use_button.click()
    assert sum(isinstance(getattr(x, "native", x), SegmentWidget)
               for x in viewer.window.dock_widgets.values()) == 1


def test_use_model_finds_the_docked_segment_widget(setup):
    viewer, w, out = setup
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg, name="Segment")
    w.epochs_spin.setValue(1)
    w.start()  # the pair in the combos is used when none was added
    assert w.best_checkpoint() is not None, w.error_label.text()
    w.use_button.click()
    assert seg.model_combo.currentText() == str(out / "best.pt")
    assert "loads at the first" in seg.model_label.text()


def test_stop_in_the_first_epoch_writes_no_checkpoint(setup):
    viewer, w, out = setup
    finished = []
    w.training_finished.connect(finished.append)

    asked = []

    def stop_at_first_step(r):
        if isinstance(r, StepReport):
            orig = w.trainer.request_stop  # Stop reaches the trainer: it ends within the step under way
            w.trainer.request_stop = lambda: (asked.append("stop"), orig())
            w.stop()

    w.report.connect(stop_at_first_step)
    w.start()
    assert finished == ["stopped"] and asked == ["stop"]
    assert w.plot.steps == [1] and w.plot.epochs == []
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()
    assert "no checkpoint written" in w.status_label.text()
    assert not w.use_button.isEnabled() and w.start_button.isEnabled()


def test_bad_input_shows_an_error_and_trains_nothing(setup):
    viewer, w, out = setup
    viewer.add_labels(np.zeros((N, SIZE, SIZE - 1), np.uint32), name="wrong shape")
    viewer.add_labels(np.zeros((N, SIZE, SIZE), np.uint32), name="empty")
    finished = []
    w.training_finished.connect(finished.append)
    for labels, msg in (("wrong shape", "do not fit the image"), ("empty", "no annotated slice")):
        while w.pairs():
            w.remove_pair(0)
        w.add_pair("squares", labels)
        w.start()
        assert finished[-1] == "failed"
        assert not w.error_label.isHidden() and msg in w.error_label.text()
        assert w.trainer is None and w.plot.steps == [] and not out.exists()
        assert w.start_button.isEnabled() and not w.use_button.isEnabled()
    # controls checked before anything runs
    w.remove_pair(0)
    w.add_pair()
    w.val_slices_edit.setText("2, x")
    w.start()
    assert "not a slice number" in w.error_label.text()
    w.val_slices_edit.setText("5")  # not annotated
    w.start()
    assert "not annotated" in w.error_label.text() and not out.exists()
    w.val_slices_edit.setText("")
    w.freeze_combo.setCurrentText("half")
    w.start()
    assert "freeze must be 'encoder', 'none', 'last:N' or 'lora:R'" in w.error_label.text()
    w.freeze_combo.setCurrentText("encoder")
    for cb in w.prompt_checks.values():
        cb.setChecked(False)
    w.start()
    assert "prompt kind" in w.error_label.text()
    assert finished == ["failed"] * 6 and not out.exists()
    with pytest.raises(ValueError, match="already"):
        w.add_pair()


def test_defaults_work_offline(make_napari_viewer, qtbot, monkeypatch, tmp_path, model):
    """A fresh widget starts from the built-in model and, with no folder typed, trains into
    <cache>/checkpoints/<image>-<time>."""
    monkeypatch.setenv("NAPARI_SCROLL_SAM_SYNC", "1")
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))
    image, labels = squares()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="squares", contrast_limits=(0, 255))
    viewer.add_labels(labels, name="squares labels")
    w = TrainWidget(viewer)
    qtbot.addWidget(w)
    assert w.model_combo.currentText() == BUILTIN_MODEL and w.out_edit.text() == ""
    w.set_model(model)
    w.epochs_spin.setValue(1)
    w.batch_spin.setValue(4)
    finished = []
    w.training_finished.connect(finished.append)
    w.start()
    assert finished == ["done"], w.error_label.text()
    runs = list((tmp_path / "cache" / "checkpoints").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("squares-") and (runs[0] / "best.pt").is_file()
    assert w.best_checkpoint() == runs[0] / "best.pt"


def test_parse_slices():
    assert parse_slices("") is None
    assert parse_slices("3, 7 10-12") == [3, 7, 10, 11, 12]
    with pytest.raises(ValueError, match="backwards"):
        parse_slices("5-2")
    assert parse_slices("3, 63", depth=64) == [3, 63]
    with pytest.raises(ValueError, match=r"'60-64' is past the last slice \(63\)"):
        parse_slices("3, 60-64", "stop slices", depth=64)


def test_in_a_thread(setup, monkeypatch, qtbot):
    """Without NAPARI_SCROLL_SAM_SYNC the job runs in napari's thread worker."""
    monkeypatch.delenv("NAPARI_SCROLL_SAM_SYNC")
    viewer, w, out = setup
    w.epochs_spin.setValue(1)
    with qtbot.waitSignal(w.training_finished, timeout=60000) as blocker:
        w.start_button.click()
    assert blocker.args == ["done"], w.error_label.text()
    assert len(w.plot.losses) == 2 and len(w.plot.val_iou) == 1 and (out / "best.pt").is_file()
    assert w.use_button.isEnabled() and w.start_button.isEnabled()
    # errors come back from the thread too
    w.set_checkpoint(out / "missing.pt")
    with qtbot.waitSignal(w.training_finished, timeout=60000) as blocker:
        w.start_button.click()
    assert blocker.args == ["failed"] and "no such checkpoint file" in w.error_label.text()
