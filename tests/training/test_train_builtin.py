"""``scripts/train_builtin.py --pack`` / ``--packed``: the training data travels as one file
(to a machine without ``../shared/data``) and trains there as it would have here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_builtin.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_builtin", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_packed_data_is_the_built_data_and_trains(tmp_path, capsys):
    tb = _script()
    data = ["--data", "synthetic", "phantoms", "--synthetic", "2", "--phantoms", "1"]
    packed = tmp_path / "train.npz"
    tb.main([*data, "--pack", str(packed), "--out", str(tmp_path / "unused")])
    assert packed.is_file() and not (tmp_path / "unused").exists()
    assert not list(tmp_path.glob("*.part.npz"))  # written whole, then renamed

    args = tb.argparse.Namespace(data=["synthetic", "phantoms"], real=[], synthetic=2, phantoms=1, seed=0)
    built, val = tb.build_pairs(args)
    back, val_back = tb.unpack(packed)
    assert [p.name for p in back] == [p.name for p in built] and val_back == val
    for a, b in zip(built, back):
        np.testing.assert_array_equal(np.asarray(a.image.levels[0]), np.asarray(b.image.levels[0]))
        np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
        assert tuple(b.image.contrast_limits) == tuple(a.image.contrast_limits)
        assert (b.slices, b.objects) == (a.slices, a.objects)

    out = tmp_path / "run"
    tb.main(["--packed", str(packed), "--out", str(out), "--arch", "small", "--init", "random", "--epochs", "2",
             "--no-augment", "--device", "cpu", "--minutes", "30", "--fit"])
    log = capsys.readouterr().out
    assert "3 volumes" in log and "EPOCH 1" in log, log
    # --fit: the first epoch timed, the schedule set to end within the minutes (here: --epochs)
    assert "the cosine ends with epoch 2" in log and "EPOCH 2" in log and "EPOCH 3" not in log, log
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()


def test_pack_keeps_only_the_named_slices_of_a_pair(tmp_path):
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.training.data import TrainingPair

    tb = _script()
    img = np.arange(6 * 8 * 8, dtype=np.uint8).reshape(6, 8, 8)
    lab = np.zeros((6, 8, 8), np.uint16)
    lab[:, 2:5, 2:5] = 1
    pair = TrainingPair(Volume(levels=[img], contrast_limits=(0, 255), name="part"), lab, name="part",
                        slices=[4, 1, 5])
    tb.pack(tmp_path / "p.npz", [pair], {0: [5]})
    (back,), val = tb.unpack(tmp_path / "p.npz")
    np.testing.assert_array_equal(np.asarray(back.image.levels[0]), img[[1, 4, 5]])
    np.testing.assert_array_equal(np.asarray(back.labels), lab[[1, 4, 5]])
    assert back.slices == [1, 0, 2] and val == {0: [2]}


def test_rerendered_shapes_come_from_training_slices_only():
    """``--rerendered`` draws its label maps from the real pairs' training slices: never a
    validation slice, nor a slice a pair does not name; EM components are numbered, their
    membranes kept."""
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.training.data import TrainingPair

    tb = _script()
    img = np.zeros((4, 8, 8), np.uint8)
    em = np.zeros((4, 8, 8), np.uint8)
    em[:, 1:3, 1:3] = em[:, 5:7, 5:7] = 1  # two cells a slice, membrane between them
    em[3] = 0
    em[3, 0:2, 0:2] = 1  # the validation slice: one cell only
    inst = np.zeros((4, 8, 8), np.uint16)
    for z in range(4):
        inst[z, 2:6, 2:6] = 10 + z  # a slice's id tells which slice it came from
    pairs = [TrainingPair(Volume(levels=[img], contrast_limits=(0, 255), name="em"), em, name="em",
                          objects="components"),
             TrainingPair(Volume(levels=[img], contrast_limits=(0, 255), name="inst"), inst, name="inst",
                          slices=[0, 2, 3])]
    out = tb.real_label_slices(pairs, [[3], [3]])
    assert len(out) == 3 + 2  # em z 0-2, inst z 0 and 2
    for lab, membrane in out[:3]:
        assert lab.max() == 2 and membrane is not None and membrane.sum() == 64 - 8
    assert [int(lab.max()) for lab, m in out[3:]] == [10, 12] and all(m is None for _, m in out[3:])
