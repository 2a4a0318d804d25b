"""Labels come back where they were: crop (translate) + anisotropic voxel size → write → reader."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_scroll_sam import open_volume, write_labels
from napari_scroll_sam.io.labels import labels_info, pyramid
from napari_scroll_sam.io.reader import get_reader
from napari_scroll_sam.io.writer import WriteError, napari_write_labels
from tests.helpers import write_ome_zarr


@pytest.fixture
def cropped(tmp_path):
    """A (2, 1, 1)-voxel OME-Zarr cropped at (5, 100, 150), and labels drawn in the crop."""
    vol = (np.arange(20 * 160 * 200) % 251).astype(np.uint8).reshape(20, 160, 200)
    src = write_ome_zarr(tmp_path / "scan.zarr", vol, levels=1, voxel=(2.0, 1.0, 1.0))
    crop = open_volume(src).crop(z=(5, 15), y=(100, 140), x=(150, 190))
    labels = np.zeros(crop.shape, np.uint32)
    labels[2:8, 5:30, 10:35] = 3
    labels[4, 1:4, 1:4] = 70000  # beyond uint16
    return crop, labels


@pytest.mark.parametrize("suffix", [".ome.zarr", ".zarr", ".tif"])
def test_crop_labels_roundtrip_through_the_reader(tmp_path, cropped, suffix):
    crop, labels = cropped
    assert crop.translate == (10.0, 100.0, 150.0) and crop.voxel_size == (2.0, 1.0, 1.0)
    out = write_labels(tmp_path / f"masks{suffix}", labels, scale=crop.voxel_size, translate=crop.translate,
                       unit=crop.unit)
    reader = get_reader(str(out))
    assert reader is not None
    (data, meta, kind), = reader(str(out))
    assert kind == "labels"
    assert meta["scale"] == (2.0, 1.0, 1.0) and meta["translate"] == (10.0, 100.0, 150.0)
    assert meta["units"] == ("micrometer",) * 3
    np.testing.assert_array_equal(np.asarray(data), labels)
    assert np.asarray(data).dtype == np.uint32
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scan.zarr", out.name])  # no temporary left


def test_roundtrip_into_a_napari_labels_layer(tmp_path, cropped, make_napari_viewer):
    crop, labels = cropped
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels, scale=crop.voxel_size, translate=crop.translate)
    out = tmp_path / "seg.ome.zarr"
    # napari's save path: the plugin's writer with the layer's own scale/translate
    paths = viewer.layers.save(str(out), selected=False, plugin="napari-scroll-sam")
    assert paths == [str(out)]
    viewer.layers.clear()
    new = viewer.open(str(out), plugin="napari-scroll-sam")
    assert len(new) == 1 and type(new[0]).__name__ == "Labels"
    np.testing.assert_array_equal(np.asarray(new[0].data), labels)
    np.testing.assert_allclose(new[0].scale, layer.scale)
    np.testing.assert_allclose(new[0].translate, layer.translate)


def test_ngff_metadata_is_image_label_with_transforms(tmp_path):
    labels = np.zeros((4, 600, 300), np.uint16)
    labels[:, 100:500, 50:250] = 2
    out = write_labels(tmp_path / "big.ome.zarr", labels, scale=(4.0, 1.0, 1.0), translate=(8.0, 0.0, 3.0),
                       unit="µm", chunks=(4, 128, 128))
    root = zarr.open_group(str(out), mode="r")
    ome = root.attrs["ome"]
    assert ome["version"] == "0.5" and "image-label" in ome
    ds = ome["multiscales"][0]["datasets"]
    # level 1 halves y, x only (z is already 4x coarser); level 2 goes on while max axis > 256
    assert [root[d["path"]].shape for d in ds] == [(4, 600, 300), (4, 300, 150), (4, 150, 75)]
    assert ds[1]["coordinateTransformations"] == [{"type": "scale", "scale": [4.0, 2.0, 2.0]},
                                                  {"type": "translation", "translation": [8.0, 0.0, 3.0]}]
    assert [a["unit"] for a in ome["multiscales"][0]["axes"]] == ["micrometer"] * 3
    np.testing.assert_array_equal(root["1"][:], labels[:, ::2, ::2])
    info = labels_info(out)
    assert info.format == "ome-zarr" and len(info.levels) == 3
    # open_volume still reads it as a volume (voxel size from the metadata)
    assert open_volume(out).voxel_size == (4.0, 1.0, 1.0)


def test_pyramid_is_lazy_and_mode_keeps_majority():
    reads = []
    base = da.zeros((2, 512, 512), dtype=np.uint8, chunks=(2, 128, 128))
    base = base.map_blocks(lambda b: (reads.append(1), b)[1], dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))
    levels = pyramid(base, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), method="mode")
    assert reads == [] and [lv.shape for lv, _, _ in levels] == [(2, 512, 512), (1, 256, 256)]
    blocks = np.zeros((2, 4, 4), np.uint8)
    blocks[:, :2, :2] = [[[5, 5], [5, 0]], [[5, 0], [0, 0]]]  # 4 of 8 are 5 in block 0
    blocks[:, :2, 2:] = [[[1, 2], [2, 2]], [[2, 2], [3, 3]]]
    (_, _, _), (lv, sc, tr) = pyramid(blocks, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), method="mode", min_size=2)
    assert lv.compute()[0, 0].tolist() == [0, 2]  # a tie 5/0 goes to the smaller value; 2 is the majority
    assert sc == (2.0, 2.0, 2.0) and tr == (0.5, 0.5, 0.5)  # mode: the block centre


def test_napari_writer_hook_keeps_scale_and_translate(tmp_path):
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:4, 2:4] = 3
    path, = napari_write_labels(str(tmp_path / "seg"), labels, {"scale": (3.0, 0.5, 0.5),
                                                               "translate": (6.0, 1.0, 2.0), "units": None})
    assert path == str(tmp_path / "seg.zarr")
    arr = zarr.open_array(path, mode="r")
    assert arr.attrs["napari_scroll_sam"] == {"kind": "labels", "scale": [3.0, 0.5, 0.5],
                                              "translate": [6.0, 1.0, 2.0], "unit": None}
    (_, meta, kind), = get_reader(path)(path)
    assert kind == "labels" and meta["translate"] == (6.0, 1.0, 2.0) and "units" not in meta


def test_an_image_zarr_still_opens_as_an_image(tmp_path):
    vol = np.zeros((8, 16, 16), np.uint8)
    src = str(write_ome_zarr(tmp_path / "img.zarr", vol, levels=2))
    assert labels_info(src) is None
    assert [k for _, _, k in get_reader(src)(src)] == ["image"]


def test_bad_placement_is_refused_before_writing(tmp_path):
    labels = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(WriteError, match="scale"):
        write_labels(tmp_path / "a.ome.zarr", labels, scale=(0.0, 1.0, 1.0))
    with pytest.raises(WriteError, match="do not match"):
        write_labels(tmp_path / "a.tif", labels, translate=(1.0, 2.0))
    with pytest.raises(WriteError, match="unknown downsampling"):
        write_labels(tmp_path / "a.ome.zarr", np.zeros((3, 400, 4), np.uint8), downsample="mean")
    assert os.listdir(tmp_path) == []


def test_ome_zarr_py_reads_our_labels_as_image_labels(tmp_path, cropped):
    """Interoperability: ome-zarr-py's own reader finds the multiscales and the image-label."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    crop, labels = cropped
    out = write_labels(tmp_path / "m.ome.zarr", labels, scale=crop.voxel_size, translate=crop.translate, unit="µm")
    node, = Reader(parse_url(str(out)))()
    assert node.specs and any(isinstance(s, Label) for s in node.specs)
    np.testing.assert_array_equal(np.asarray(node.data[0]), labels)
    assert node.metadata["coordinateTransformations"][0] == [
        {"type": "scale", "scale": [2.0, 1.0, 1.0]}, {"type": "translation", "translation": [10.0, 100.0, 150.0]}]


def test_an_ngff_image_brings_its_labels_along(tmp_path):
    vol = (np.arange(8 * 32 * 32) % 200).astype(np.uint8).reshape(8, 32, 32)
    img = write_ome_zarr(tmp_path / "img.zarr", vol, levels=2, zarr_format=3, voxel=(2.0, 1.0, 1.0))
    lab = np.zeros_like(vol, dtype=np.uint32)
    lab[2:5, 4:9, 4:9] = 5
    (img / "labels").mkdir()
    from napari_scroll_sam.io.labels import write_ngff

    write_ngff(img / "labels" / "cells", lab, chunks=(8, 32, 32), scale=(2.0, 1.0, 1.0))
    zarr.open_group(str(img / "labels"), mode="a", zarr_format=3).attrs["ome"] = {"version": "0.5",
                                                                                 "labels": ["cells"]}
    layers = get_reader(str(img))(str(img))
    assert [(m["name"], k) for _, m, k in layers] == [("img.zarr", "image"), ("img.zarr cells", "labels")]
    np.testing.assert_array_equal(np.asarray(layers[1][0]), lab)
    assert layers[1][1]["scale"] == (2.0, 1.0, 1.0)


def test_a_napari_image_layer_becomes_the_same_volume():
    from napari.layers import Image

    data = (np.arange(6 * 20 * 30) % 250).astype(np.uint8).reshape(6, 20, 30)
    layer = Image(data, scale=(3.0, 0.5, 0.5), translate=(30.0, 5.0, 2.5), contrast_limits=(10, 200), name="scan")
    vol = open_volume(layer)
    assert vol.voxel_size == (3.0, 0.5, 0.5) and vol.contrast_limits == (10.0, 200.0) and vol.name == "scan"
    assert vol.offset == (10, 10, 5) and vol.translate == (30.0, 5.0, 2.5)
    np.testing.assert_array_equal(vol.data.compute(), data)


@pytest.mark.parametrize("suffix", [".ome.zarr", ".zarr", ".tif"])
def test_open_volume_places_the_labels_too(tmp_path, cropped, suffix):
    crop, labels = cropped
    out = write_labels(tmp_path / f"m{suffix}", labels, scale=crop.voxel_size, translate=crop.translate, unit="µm")
    vol = open_volume(out)
    assert vol.metadata["kind"] == "labels" and vol.offset == crop.offset == (5, 100, 150)
    assert vol.voxel_size == crop.voxel_size and vol.translate == crop.translate and vol.unit == "µm"
    np.testing.assert_array_equal(vol.data.compute(), labels)


def test_foreign_tiff_and_zarr_labels_by_name_keep_their_voxel_size(tmp_path):
    import tifffile

    lab = np.zeros((4, 20, 30), np.uint16)
    lab[1:3, 5:10, 5:20] = 9
    # an ImageJ hyperstack from elsewhere: z spacing 2.5 µm, 0.5 µm pixels
    tifffile.imwrite(tmp_path / "cells_labels.tif", lab, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 2.5, "unit": "um", "axes": "ZYX"})
    (data, meta, kind), = get_reader(str(tmp_path / "cells_labels.tif"))(str(tmp_path / "cells_labels.tif"))
    assert kind == "labels" and meta["scale"] == pytest.approx((2.5, 0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(data), lab)
    # an unmarked zarr named labels (e.g. the propagate command's output) opens as labels too
    zarr.create_array(str(tmp_path / "labels.zarr"), shape=lab.shape, dtype=lab.dtype)[:] = lab
    assert get_reader(str(tmp_path / "labels.zarr"))(str(tmp_path / "labels.zarr"))[0][2] == "labels"
    # the same pixels under an image's name stay an image
    tifffile.imwrite(tmp_path / "scan.tif", lab)
    assert get_reader(str(tmp_path / "scan.tif"))(str(tmp_path / "scan.tif"))[0][2] == "image"
