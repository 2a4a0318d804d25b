"""The napari-scroll-sam command: info and the headless demo."""

from __future__ import annotations

import numpy as np
import zarr
from PIL import Image

from napari_scroll_sam.cli import main
from tests.helpers import write_slices


def test_info_describes_a_volume(tmp_path, volume_array, capsys):
    folder = write_slices(tmp_path / "s", volume_array, meta={"voxelsize": 7.91, "min": 0, "max": 65535})
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "(12, 40, 50)" in out and "uint16" in out and "7.91" in out


def test_info_on_bad_path_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err


def test_demo_headless_writes_labels_and_preview(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--headless", "--shape", "8", "96", "96", "--out", str(out)]) == 0
    sheets = zarr.open_array(str(out / "sheets.zarr"), mode="r")[:]
    ink = zarr.open_array(str(out / "ink.zarr"), mode="r")[:]
    assert sheets.shape == (8, 96, 96) and sheets.max() >= 2
    assert ink.any() and np.all(sheets[ink > 0] > 0)
    png = np.asarray(Image.open(out / "sample_slice.png"))
    assert png.shape == (96, 96, 3) and png.std() > 10
    assert "wrote" in capsys.readouterr().out
