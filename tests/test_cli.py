"""The napari-scroll-sam command: info and the headless demo."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image

from napari_scroll_sam.cli import main
from tests.helpers import write_slices


def test_info_describes_a_volume(tmp_path, volume_array, capsys):
    folder = write_slices(tmp_path / "s", volume_array, meta={"voxelsize": 7.91, "min": 0, "max": 65535})
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "(12, 40, 50)" in out and "uint16" in out and "voxel size:  (7.91, 7.91, 7.91)" in out


def test_info_on_bad_path_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err


def test_demo_headless_propagates_and_scores(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--headless", "--shape", "8", "96", "96", "--out", str(out),
                 "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "wraps (all at once) with one point each" in printed and "IoU vs ground truth" in printed
    assert "mean IoU" in printed and "sheet switches" in printed and "as one sheet: IoU" in printed
    labels = zarr.open_array(str(out / "labels.zarr"), mode="r")[:]
    assert labels.shape == (8, 96, 96)
    from napari_scroll_sam.io.phantom import scroll_phantom

    truth = np.asarray(scroll_phantom((8, 96, 96), seed=0, wraps=8)[1])
    ids = set(np.unique(labels[4])) - {0}
    assert len(ids) > 1 and ids <= set(np.unique(truth[4])) - {0}  # every wrap keeps its own id
    png = np.asarray(Image.open(out / "demo_slice.png"))
    assert png.shape == (96, 96, 3) and png.std() > 10
    # one wrap only
    assert main(["demo", "--headless", "--shape", "8", "96", "96", "--out", str(out), "--wrap", "3",
                 "--cache", str(tmp_path / "cache")]) == 0
    assert "prompted wrap 3 with one point" in capsys.readouterr().out
    labels = zarr.open_array(str(out / "labels.zarr"), mode="r")[:]
    assert set(np.unique(labels)) == {0, 3} and labels[4].any()


def _slices(folder, data):
    import tifffile

    folder.mkdir()
    for z, sl in enumerate(data):
        tifffile.imwrite(folder / f"{z:05d}.tif", sl)
    return folder


def test_propagate_command_writes_labels_and_reports(tmp_path, capsys):
    from napari_scroll_sam.sam import save_checkpoint
    from tests.helpers import tiny_model

    data = np.zeros((6, 64, 64), np.uint8)
    data[:, 16:48, 16:48] = 200
    folder = _slices(tmp_path / "cube", data)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, tiny_model(seed=0))
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("object,z,y,x,label,y1,x1\n3,2,32,32,1,,\n3,2,5,5,0,,\n4,4,10,10,,20,20\n")
    out = tmp_path / "labels.zarr"
    args = ["propagate", str(folder), "--prompts", str(prompts), "--model", str(ckpt), "--out", str(out),
            "--cache", str(tmp_path / "cache"), "--min-pred-iou", "0", "--min-slice-iou", "0",
            "--max-area-change", "0", "--max-empty", "6", "--z-limits", "1", "6", "--flow", "dis"]
    assert main(args) == 0
    captured = capsys.readouterr()
    printed = captured.out.strip().splitlines()
    assert printed[0] == "z,object,area,predicted_iou,slice_iou,direction,stopped,source"
    assert {r.split(",")[-1] for r in printed[1:]} <= {"seed", "model", "prior", "carried", "empty", "bridged"}
    summary = [line for line in captured.err.splitlines() if line.startswith("object ")]
    assert [line.split(":")[0] for line in summary] == ["object 3", "object 4"]  # one line per object
    rows = [line.split(",") for line in printed[1:]]
    assert {(r[0], r[1], r[5]) for r in rows} >= {("2", "3", "0"), ("4", "4", "0")}  # both anchors
    assert {r[0] for r in rows} <= {"1", "2", "3", "4", "5"}  # z limits kept
    labels = zarr.open_array(str(out), mode="r")
    assert labels.shape == (6, 64, 64) and set(np.unique(labels[:])) <= {0, 3, 4}
    assert not labels[0].any()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial left


def test_propagate_command_bad_prompts(tmp_path, capsys):
    folder = _slices(tmp_path / "cube", np.zeros((3, 32, 32), np.uint8))
    bad = tmp_path / "p.csv"
    bad.write_text("obj,zz\n1,2\n")
    assert main(["propagate", str(folder), "--prompts", str(bad), "--out", str(tmp_path / "o.zarr")]) == 2
    assert "needs columns object,z,y,x" in capsys.readouterr().err
    bad.write_text("1,2,5,5\n1,2,6,6\n")  # no header line: said so, not taken as column names
    assert main(["propagate", str(folder), "--prompts", str(bad), "--out", str(tmp_path / "o.zarr")]) == 2
    assert "line 1: numbers where the header belongs (1,2,5,5); put a header line first" in capsys.readouterr().err
    bad.write_text("object,z,y,x\n1,9,5,5\n")
    assert main(["propagate", str(folder), "--prompts", str(bad), "--out", str(tmp_path / "o.zarr"),
                 "--model", "small", "--cache", str(tmp_path / "c")]) == 2
    assert "slice 9 is outside the volume" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()
    with pytest.raises(SystemExit) as exc:  # the prior's flow is one of FLOWS, checked by the parser
        main(["propagate", str(folder), "--prompts", str(bad), "--out", str(tmp_path / "o.zarr"), "--flow", "tv"])
    assert exc.value.code == 2 and "invalid choice: 'tv'" in capsys.readouterr().err


def test_propagate_walk_switches_reach_the_walk():
    from napari_scroll_sam.cli.main import build_parser
    from napari_scroll_sam.cli.propagate import _walk_from_args

    parse = lambda *extra: _walk_from_args(build_parser().parse_args(["propagate", "v", "--prompts", "p.csv", "--out", "o", *extra]))[1]  # noqa: E731
    default = parse()
    assert default.winding and default.recut and default.compete and default.refine
    off = parse("--no-winding", "--no-recut", "--no-compete", "--no-refine")
    assert not off.winding and not off.recut and not off.compete and not off.refine


def test_propagate_stop_switches_reach_the_stop_rule():
    from napari_scroll_sam.cli.main import build_parser
    from napari_scroll_sam.cli.propagate import _walk_from_args
    from napari_scroll_sam.propagation import StopRule

    parse = lambda *extra: _walk_from_args(build_parser().parse_args(["propagate", "v", "--prompts", "p.csv", "--out", "o", *extra]))[0]  # noqa: E731
    assert parse() == StopRule()
    assert parse("--min-contrast-share", "0").min_contrast_share is None
    assert parse("--min-contrast-share", "0.2", "--min-area-share", "0.1") == StopRule(min_contrast_share=0.2,
                                                                                    min_area_share=0.1)
