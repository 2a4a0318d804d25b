"""The Volume dock widget, driven through its buttons on volumes written to disk."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest

from napari_scroll_sam._widgets.volume import VolumeWidget
from napari_scroll_sam.io.volume import open_volume
from tests.helpers import write_ome_zarr, write_slices

VOXEL = 7.91


@pytest.fixture
def widget(make_napari_viewer):
    viewer = make_napari_viewer()
    return VolumeWidget(viewer)


@pytest.fixture
def pyramid(tmp_path):
    vol = (np.arange(32 * 48 * 40) % 251).astype(np.uint8).reshape(32, 48, 40)
    return write_ome_zarr(tmp_path / "p.zarr", vol, levels=3), vol


def open_with_button(widget, path):
    widget.path_edit.setText(str(path))
    widget.open_button.click()


def test_open_tiff_slice_folder(widget, tmp_path, volume_array):
    folder = write_slices(tmp_path / "slices", volume_array,
                          meta={"voxelsize": 3.24, "min": 100.0, "max": 50000.0, "uuid": "x"})
    open_with_button(widget, folder)
    assert widget.error_label.text() == "" and widget.error_label.isHidden()
    (layer,) = widget.viewer.layers
    assert layer.name == "slices" and not layer.multiscale
    assert isinstance(layer.data, da.Array)
    expected = open_volume(folder)
    assert tuple(layer.scale) == pytest.approx(expected.voxel_size)
    assert tuple(layer.contrast_limits) == pytest.approx(expected.contrast_limits)
    assert widget.volume is layer.metadata["volume"]
    info = widget.info_label.text()
    assert "(12, 40, 50)" in info and "uint16" in info
    assert [widget.ranges[a][1].value() for a in "zyx"] == [12, 40, 50]
    assert widget.level_combo.count() == 1 and widget.volume_combo.isHidden()


def test_ome_zarr_pyramid_levels(widget, pyramid):
    path, vol = pyramid
    open_with_button(widget, path)
    (layer,) = widget.viewer.layers
    assert layer.multiscale and len(layer.data) == 3
    assert tuple(layer.scale) == pytest.approx((VOXEL,) * 3)
    items = [widget.level_combo.itemText(i) for i in range(widget.level_combo.count())]
    assert items == ["0: 32 × 48 × 40", "1: 16 × 24 × 20", "2: 8 × 12 × 10"]
    assert "µm" in widget.info_label.text()

    widget.level_combo.setCurrentIndex(1)
    assert [widget.ranges[a][1].maximum() for a in "zyx"] == [16, 24, 20]
    widget.show_level_button.click()
    new = widget.viewer.layers[-1]
    assert new.name == "p.zarr [level 1]" and not new.multiscale
    assert new.data.shape == (16, 24, 20) and not isinstance(new.data, np.ndarray)  # lazy (zarr array)
    assert tuple(new.scale) == pytest.approx((2 * VOXEL,) * 3)
    np.testing.assert_array_equal(np.asarray(new.data), vol[::2, ::2, ::2])
    assert widget.volume is layer.metadata["volume"]  # still the opened volume


def test_crop_is_lazy_and_in_place(widget, pyramid):
    path, vol = pyramid
    open_with_button(widget, path)
    for axis, (a, b) in zip("zyx", ((4, 10), (8, 24), (3, 19))):
        widget.ranges[axis][0].setValue(a)
        widget.ranges[axis][1].setValue(b)
    widget.crop_button.click()
    crop = widget.viewer.layers[-1]
    assert crop.name == "p.zarr [crop z 4:10 y 8:24 x 3:19]"
    assert isinstance(crop.data, da.Array) and crop.data.shape == (6, 16, 16)
    np.testing.assert_array_equal(np.asarray(crop.data), vol[4:10, 8:24, 3:19])
    assert tuple(crop.translate) == pytest.approx((4 * VOXEL, 8 * VOXEL, 3 * VOXEL))
    assert tuple(crop.scale) == pytest.approx((VOXEL,) * 3)

    # a crop at level 1 is in level-1 voxels and lands at the same place in the world
    widget.level_combo.setCurrentIndex(1)
    for axis, (a, b) in zip("zyx", ((2, 5), (4, 12), (0, 20))):
        widget.ranges[axis][0].setValue(a)
        widget.ranges[axis][1].setValue(b)
    widget.crop_button.click()
    crop1 = widget.viewer.layers[-1]
    assert crop1.name.endswith("level 1]")
    np.testing.assert_array_equal(np.asarray(crop1.data), vol[::2, ::2, ::2][2:5, 4:12, 0:20])
    assert tuple(crop1.translate) == pytest.approx((2 * 2 * VOXEL, 4 * 2 * VOXEL, 0.0))


def test_bad_crop_shows_error(widget, pyramid):
    open_with_button(widget, pyramid[0])
    widget.ranges["z"][0].setValue(10)
    widget.ranges["z"][1].setValue(5)
    widget.crop_button.click()
    assert "outside" in widget.error_label.text()
    assert len(widget.viewer.layers) == 1


def test_from_view_takes_slice_and_canvas_extent(widget, pyramid):
    path, _ = pyramid
    open_with_button(widget, path)
    viewer = widget.viewer
    viewer.dims.set_point(0, 20 * VOXEL)
    viewer.camera.center = (20 * VOXEL, 24 * VOXEL, 20 * VOXEL)
    viewer.camera.zoom = max(viewer.canvas.size) / (10 * VOXEL)  # about 10 voxels across
    widget.from_view_button.click()
    z0, z1 = (s.value() for s in widget.ranges["z"])
    assert (z0, z1) == (4, 32)  # 20 - 16, clamped 20 + 17 -> 32
    y0, y1 = (s.value() for s in widget.ranges["y"])
    x0, x1 = (s.value() for s in widget.ranges["x"])
    assert 0 < y0 < 24 < y1 < 48 and 0 < x0 < 20 < x1 < 40


def test_bad_path_shows_error_and_adds_nothing(widget, tmp_path):
    open_with_button(widget, tmp_path / "nope")
    assert "no such file or folder" in widget.error_label.text() and not widget.error_label.isHidden()
    assert len(widget.viewer.layers) == 0 and widget.volume is None
    (tmp_path / "empty").mkdir()
    open_with_button(widget, tmp_path / "empty")
    assert "not a volume" in widget.error_label.text()
    assert len(widget.viewer.layers) == 0


def test_follows_active_layer_volume(widget, tmp_path, volume_array, pyramid):
    from napari_scroll_sam.io.reader import read_volume

    folder = write_slices(tmp_path / "slices", volume_array)
    open_with_button(widget, pyramid[0])
    # a volume opened by drag and drop: layers from the reader, not from the widget
    for data, meta, kind in read_volume(str(folder)):
        widget.viewer.add_image(data, **{k: v for k, v in meta.items() if k != "multiscale"})
    assert widget.volume.name == "slices" and "(12, 40, 50)" in widget.info_label.text()
    widget.viewer.layers.selection.active = widget.viewer.layers["p.zarr"]
    assert widget.volume.name == "p.zarr" and widget.level_combo.count() == 3


def test_volpkg_volume_choice(widget, tmp_path, volume_array):
    pkg = tmp_path / "scroll1.volpkg"
    write_slices(pkg / "volumes" / "20230205180739", volume_array)
    write_slices(pkg / "volumes" / "20230206171837", volume_array[:5])
    (pkg / "config.json").write_text(json.dumps({"name": "scroll1"}))
    open_with_button(widget, pkg)
    combo = widget.volume_combo
    assert not combo.isHidden()
    assert [combo.itemText(i) for i in range(combo.count())] == ["20230205180739", "20230206171837"]
    combo.setCurrentIndex(1)
    combo.activated.emit(1)  # what a user's choice emits
    assert widget.viewer.layers[-1].data.shape == (5, 40, 50)
    assert widget.volume.name == "scroll1/20230206171837" and combo.currentText() == "20230206171837"


def test_follows_any_selected_image_layer(widget, volume_array):
    """The plugin's sample and a plain numpy image are wrapped as Volumes (scale, window);
    selecting a non-image layer keeps the volume; an RGB image says why it is none."""
    from napari_scroll_sam.io.phantom import sample_scroll

    viewer = widget.viewer
    for data, meta, kind in sample_scroll(shape=(8, 32, 32)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    viewer.layers.selection.active = viewer.layers["scroll"]
    assert widget.volume is not None and widget.volume.shape == (8, 32, 32) and widget.volume.name == "scroll"
    assert "no volume" not in widget.info_label.text() and widget.crop_button.isEnabled()
    viewer.add_image(volume_array, name="plain", scale=(2, 1, 1), contrast_limits=(0, 1000))
    assert widget.volume.name == "plain" and widget.volume.voxel_size == (2.0, 1.0, 1.0)
    assert widget.volume.contrast_limits == (0.0, 1000.0)
    viewer.layers.selection.active = viewer.layers["sheets"]  # labels: the volume stays
    assert widget.volume.name == "plain"
    widget.crop_button.click()
    assert viewer.layers[-1].data.shape == volume_array.shape
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), name="photo", rgb=True)
    assert widget.volume is None and "'photo' is an RGB image" in widget.info_label.text()
