"""The real volumes in ../shared/data open lazily and hold what their README says."""

from __future__ import annotations

import numpy as np

from napari_scroll_sam import open_volume
from napari_scroll_sam.io.reader import get_reader


def test_em_stack_png_folder(shared_data):
    vol = open_volume(shared_data / "isbi2012-em" / "image")
    assert vol.shape == (30, 512, 512) and vol.dtype == np.uint8
    assert vol.data.chunks[0] == (1,) * 30
    lo, hi = vol.contrast_limits
    assert 0 <= lo < hi <= 255
    sl = vol.data[10].compute()
    assert sl.std() > 10  # real EM texture, not a blank slice


def test_em_labels_are_binary_cell_interior(shared_data):
    labels = open_volume(shared_data / "isbi2012-em" / "label")
    values = np.unique(labels.data[:3].compute())
    assert set(values.tolist()) <= {0, 255} and 255 in values


def test_fiberform_microct(shared_data):
    vol = open_volume(shared_data / "fiberform-100.tif")
    assert vol.shape == (100, 100, 100) and vol.dtype == np.uint8
    assert vol.unit == "pixel"  # its ImageJ 'inch' is a print resolution, not a voxel size
    data = vol.data.compute()
    assert data.max() > data.min()
    assert vol.contrast_limits[1] > vol.contrast_limits[0]


def test_reader_gives_layers_for_real_data(shared_data):
    reader = get_reader(str(shared_data / "fiberform-100.tif"))
    (data, meta, kind), = reader(str(shared_data / "fiberform-100.tif"))
    assert kind == "image" and data.shape == (100, 100, 100)
    assert meta["scale"] == (1.0, 1.0, 1.0) and len(meta["contrast_limits"]) == 2
