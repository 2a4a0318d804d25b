"""The registry of openers (io/open.py): one list decides which format a path is and opens it."""

from __future__ import annotations

import numpy as np

from napari_scroll_sam.io import open as io_open
from napari_scroll_sam.io.volume import Volume, open_volume as open_from_volume


def test_a_registered_format_is_detected_and_opened(tmp_path, monkeypatch):
    monkeypatch.setattr(io_open, "OPENERS", list(io_open.OPENERS))
    path = tmp_path / "cube.npy"
    np.save(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    assert io_open.detect_format(path) is None

    def open_npy(p, **_):
        return Volume(levels=[np.load(p)], contrast_limits=(0, 23), name=p.stem, path=p)

    io_open.register(io_open.Opener("npy", lambda p: p.suffix == ".npy", open_npy), before="tiff")
    assert [o.kind for o in io_open.OPENERS][:3] == ["nifti", "npy", "tiff"]
    assert io_open.detect_format(path) == "npy"
    vol = io_open.open_volume(path)
    assert vol.shape == (2, 3, 4) and vol.name == "cube"
    assert open_from_volume is io_open.open_volume  # the old import path still works
