"""``propagate`` never destroys data: a failed, cancelled or refused run leaves an earlier
output and every input byte-identical, exits non-zero (130 on Ctrl-C) and leaves no
temporary behind; bad prompts and bad output paths are refused before the model loads."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
import zarr

import napari_scroll_sam.propagation as propagation
from napari_scroll_sam.cli import main
from tests.fs_helpers import fill, remount_read_only, snapshot, tmpfs
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from napari_scroll_sam.sam import save_checkpoint

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, tiny_model(seed=0))
    return path


@pytest.fixture
def job(tmp_path, ckpt):
    """An input slice folder, prompts, and a good labels output from an earlier run."""
    data = np.zeros((6, 64, 64), np.uint8)
    data[:, 16:48, 16:48] = 200
    folder = tmp_path / "cube"
    folder.mkdir()
    for z, sl in enumerate(data):
        tifffile.imwrite(folder / f"{z:05d}.tif", sl)
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("object,z,y,x,label,y1,x1\n3,2,32,32,1,,\n4,4,10,10,,20,20\n")
    out = tmp_path / "labels.zarr"

    def args(**kw):
        volume = kw.pop("volume", folder)
        a = {"--prompts": prompts, "--model": ckpt, "--out": out, "--cache": tmp_path / "cache",
             "--min-pred-iou": 0, "--min-slice-iou": 0, "--max-area-change": 0, "--max-empty": 6, **kw}
        return ["propagate", str(volume)] + [str(v) for kv in a.items() for v in kv]

    assert main(args()) == 0
    return folder, prompts, out, args


def _untouched(folder, out, before):
    assert snapshot(folder) == before[0] and snapshot(out) == before[1]
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def _after_first_report(monkeypatch, action):
    """Make the run fail the way ``action`` does once its first slice is written."""
    real = propagation.propagate

    def wrapped(*a, **k):
        gen = real(*a, **k)

        def run():
            yield next(gen)
            action()
            yield from gen
        return run()

    monkeypatch.setattr(propagation, "propagate", wrapped)


def test_ctrl_c_exits_130_keeps_the_earlier_output_and_names_the_partial(job, monkeypatch, capsys):
    folder, _, out, args = job
    before = snapshot(folder), snapshot(out)

    def interrupt():
        raise KeyboardInterrupt

    _after_first_report(monkeypatch, interrupt)
    capsys.readouterr()
    assert main(args()) == 130
    _untouched(folder, out, before)
    partial = out.with_name("labels.partial.zarr")
    assert f"the slices done so far are in {partial}" in capsys.readouterr().err
    assert zarr.open_array(str(partial), mode="r")[:].any()  # the one slice done


def test_error_mid_run_exits_non_zero_and_keeps_the_earlier_output(job, monkeypatch, capsys):
    folder, _, out, args = job
    before = snapshot(folder), snapshot(out)

    def boom():
        raise RuntimeError("the GPU fell over")

    _after_first_report(monkeypatch, boom)
    assert main(args()) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: RuntimeError: the GPU fell over  (run again with --debug for the traceback)"]
    _untouched(folder, out, before)


def test_full_disk_mid_run_keeps_the_earlier_output(job, tmp_path, monkeypatch, capsys):
    folder, prompts, _, args = job
    with tmpfs(tmp_path / "small", "2m") as disk:
        out = disk / "labels.zarr"
        assert main(args(**{"--out": out})) == 0
        before = snapshot(folder), snapshot(out)
        _after_first_report(monkeypatch, lambda: fill(disk))
        assert main(args(**{"--out": out})) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"error: {out}: not written (no space left on device)") and "untouched" in err
        (disk / "filler.bin").unlink()
        _untouched(folder, out, before)


def test_read_only_output_folder_is_refused_before_the_model_loads(job, tmp_path, monkeypatch, capsys):
    import napari_scroll_sam.sam.models as models

    _, _, _, args = job
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with tmpfs(tmp_path / "ro", "1m") as ro:
        remount_read_only(ro)
        assert main(args(**{"--out": ro / "labels.zarr"})) == 2
    assert "is not writable (read-only file system)" in capsys.readouterr().err


def test_read_only_cache_still_propagates_with_one_warning(job, tmp_path, caplog):
    folder, _, out, args = job
    with tmpfs(tmp_path / "ro", "1m") as ro:
        remount_read_only(ro)
        with caplog.at_level(logging.WARNING):
            assert main(args(**{"--cache": ro, "--out": tmp_path / "other.zarr"})) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "cannot be used" in warned[0] and "read-only" in warned[0].lower()
    assert zarr.open_array(str(tmp_path / "other.zarr"), mode="r")[:].any()


@pytest.mark.parametrize("where,why", [
    (lambda f, p, o: f, "is the input"),
    (lambda f, p, o: f / "labels.zarr", "is inside the input"),
    (lambda f, p, o: f / "00002.tif", "is inside the input"),
    (lambda f, p, o: f.parent, "contains the input"),
    (lambda f, p, o: p, "is the prompts file"),
    (lambda f, p, o: f.parent / "cache" / "x.zarr", "is inside the embedding cache"),
])
def test_out_overlapping_an_input_is_refused_before_any_work(job, monkeypatch, capsys, where, why):
    import napari_scroll_sam.sam.models as models

    folder, prompts, out, args = job
    before = snapshot(folder.parent)
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(args(**{"--out": where(folder, prompts, out)})) == 2
    assert why in capsys.readouterr().err
    assert snapshot(folder.parent) == before


def test_out_equal_to_an_input_tiff_file_is_refused_and_the_file_kept(job, tmp_path, capsys):
    _, _, _, args = job
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, np.zeros((6, 64, 64), np.uint8))
    before = tif.read_bytes()
    assert main(args(volume=tif, **{"--out": tif})) == 2
    assert "the output is the input" in capsys.readouterr().err
    assert tif.read_bytes() == before and not list(tmp_path.glob(".stack.tif*"))


def test_out_that_is_an_unrelated_folder_is_not_replaced(job, tmp_path, capsys):
    _, _, _, args = job
    mine = tmp_path / "my_notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    assert main(args(**{"--out": mine})) == 2
    assert "not a zarr output; it is not replaced" in capsys.readouterr().err
    assert (mine / "thesis.txt").read_text() == "years of work"


@pytest.mark.parametrize("rows,message", [
    ("3,2,40,40,1,20,20", r"line 2: .*the box .* is reversed"),
    ("3,2,nan,32,1,,", r"line 2: .*non-finite"),
    ("3,2,32,inf,1,,", r"line 2: .*non-finite"),
    ("3,2,10,10,,20,20\n3,2,30,30,,40,40", r"lines 2 and 3: two boxes for object 3 on slice 2"),
    ("5000000000,2,32,32,1,,", r"line 2: object 5000000000 on slice 2: object id 5000000000 does not fit .*uint32"),
    ("3,2,32,99,1,,", r"line 2: object 3 on slice 2: a prompt lies outside the 64 x 64 slice"),
    ("3,2,32,32,7,,", r"line 2: label '7' is not 0"),
])
def test_bad_prompts_are_refused_with_line_numbers_before_the_model_loads(job, monkeypatch, capsys, rows,
                                                                         message):
    import re

    import napari_scroll_sam.sam.models as models

    folder, prompts, out, args = job
    before = snapshot(folder), snapshot(out)
    prompts.write_text("object,z,y,x,label,y1,x1\n" + rows + "\n")
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(args()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    _untouched(folder, out, before)


def test_unknown_strategy_is_refused_before_the_model_loads(job, monkeypatch, capsys):
    import napari_scroll_sam.sam.models as models

    folder, _, out, args = job
    before = snapshot(folder), snapshot(out)
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(args(**{"--strategy": "box+psychic"})) == 2
    assert "--strategy: unknown prompt strategy 'box+psychic'" in capsys.readouterr().err
    _untouched(folder, out, before)


def test_seed_api_refuses_what_the_csv_does():
    from napari_scroll_sam.propagation import PropagationError, Seed

    with pytest.raises(PropagationError, match="reversed"):
        Seed(1, 0, box=[10, 10, 5, 20])
    with pytest.raises(PropagationError, match="non-finite"):
        Seed(1, 0, points=[[np.nan, 3]])
    with pytest.raises(PropagationError, match="non-finite"):
        Seed(1, 0, box=[0, 0, np.inf, 3])


def test_embed_into_a_read_only_cache_is_refused_before_work(tmp_path, capsys, monkeypatch):
    import napari_scroll_sam.sam.models as models

    folder = tmp_path / "cube"
    folder.mkdir()
    tifffile.imwrite(folder / "0.tif", np.zeros((32, 32), np.uint8))
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with tmpfs(tmp_path / "ro", "1m") as ro:
        remount_read_only(ro)
        assert main(["embed", str(folder), "--cache", str(ro)]) == 2
    assert "the embedding cache is not writable (read-only file system)" in capsys.readouterr().err
