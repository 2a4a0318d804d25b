"""Every format opens lazily, with the right pixels, voxel size and window."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_scroll_sam import Volume, open_volume
from napari_scroll_sam.io.volume import list_slices

from tests.helpers import write_ome_zarr, write_slices


def test_tiff_folder_with_vesuvius_meta(tmp_path, volume_array):
    meta = {"voxelsize": 7.91, "min": 0.0, "max": 65535.0, "width": 50, "height": 40, "slices": 12}
    folder = write_slices(tmp_path / "20230205180739", volume_array, meta=meta)
    vol = open_volume(folder)
    assert isinstance(vol, Volume)
    assert vol.shape == (12, 40, 50) and vol.dtype == np.uint16
    assert vol.voxel_size == (7.91, 7.91, 7.91) and vol.unit == "µm"
    assert vol.contrast_limits == (0.0, 65535.0)
    assert vol.levels == [vol.data] and vol.path == folder
    np.testing.assert_array_equal(vol.data.compute(), volume_array)
    assert vol.data.chunks[0] == (1,) * 12  # one chunk per slice


def test_natural_order_of_unpadded_names(tmp_path, volume_array):
    folder = write_slices(tmp_path / "s", volume_array[:11], fmt="{}.tif")
    assert [p.name for p in list_slices(folder)][:3] == ["0.tif", "1.tif", "2.tif"]
    assert list_slices(folder)[-1].name == "10.tif"
    np.testing.assert_array_equal(open_volume(folder).data[10].compute(), volume_array[10])


def test_window_estimated_without_meta(tmp_path):
    vol = np.full((6, 20, 20), 1000, np.uint16)
    vol[:, 5:15, 5:15] = 3000
    v = open_volume(write_slices(tmp_path / "s", vol))
    assert v.contrast_limits == (1000.0, 3000.0)
    assert v.voxel_size == (1.0, 1.0, 1.0)


def test_meta_json_disagreeing_with_slices_is_an_error(tmp_path, volume_array):
    folder = write_slices(tmp_path / "s", volume_array, meta={"slices": 99, "width": 50, "height": 40})
    with pytest.raises(ValueError, match=r"meta.json.*slices=99.*12"):
        open_volume(folder)


def test_png_slice_folder(tmp_path):
    vol = (np.arange(5 * 30 * 20) % 251).astype(np.uint8).reshape(5, 30, 20)
    v = open_volume(write_slices(tmp_path / "png", vol, fmt="{}.png"))
    assert v.shape == (5, 30, 20) and v.dtype == np.uint8
    np.testing.assert_array_equal(v.data.compute(), vol)


def test_large_striped_slices_are_read_in_row_blocks(tmp_path, monkeypatch):
    import napari_scroll_sam.io.tiff as tiffmod

    monkeypatch.setattr(tiffmod, "MAX_SLICE_CHUNK_BYTES", 64 * 64)  # pretend 64x64 uint16 is "large"
    vol = np.arange(3 * 64 * 64, dtype=np.uint16).reshape(3, 64, 64)
    folder = tmp_path / "big"
    folder.mkdir()
    for i, sl in enumerate(vol):
        tifffile.imwrite(folder / f"{i}.tif", sl, rowsperstrip=4)
    v = open_volume(folder)
    assert len(v.data.chunks[1]) > 1  # slice split along y
    np.testing.assert_array_equal(v.data[1, 20:30, 5:9].compute(), vol[1, 20:30, 5:9])
    np.testing.assert_array_equal(v.data.compute(), vol)


def test_tiled_tiff_slices(tmp_path, monkeypatch):
    import napari_scroll_sam.io.tiff as tiffmod

    monkeypatch.setattr(tiffmod, "MAX_SLICE_CHUNK_BYTES", 64 * 64)
    vol = np.arange(2 * 64 * 96, dtype=np.uint16).reshape(2, 64, 96)
    folder = tmp_path / "tiled"
    folder.mkdir()
    for i, sl in enumerate(vol):
        tifffile.imwrite(folder / f"{i}.tif", sl, tile=(16, 16), compression="zlib")
    v = open_volume(folder)
    np.testing.assert_array_equal(v.data.compute(), vol)


def test_multipage_imagej_tiff(tmp_path, volume_array):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, volume_array, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    v = open_volume(path)
    assert v.voxel_size == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(v.data.compute(), volume_array)


def test_ome_tiff_and_bigtiff(tmp_path, volume_array):
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, volume_array, bigtiff=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 1.2})
    v = open_volume(path)
    assert v.voxel_size == pytest.approx((1.2, 0.3, 0.3))
    np.testing.assert_array_equal(v.data[3].compute(), volume_array[3])


def test_ome_tiff_pyramid_is_multiscale(tmp_path):
    vol = np.arange(8 * 64 * 64, dtype=np.uint16).reshape(8, 64, 64)
    path = tmp_path / "pyr.ome.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(vol, subifds=1, metadata={"axes": "ZYX"}, tile=(16, 16))
        tw.write(vol[:, ::2, ::2], subfiletype=1, tile=(16, 16))
    v = open_volume(path)
    assert v.multiscale and v.levels[1].shape == (8, 32, 32)
    np.testing.assert_array_equal(v.levels[1].compute(), vol[:, ::2, ::2])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_bare_array(tmp_path, volume_array, zarr_format):
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=volume_array.shape, chunks=(4, 16, 16),
                          dtype=volume_array.dtype, zarr_format=zarr_format)
    z[:] = volume_array
    v = open_volume(tmp_path / "a.zarr")
    assert v.metadata["zarr_format"] == zarr_format
    assert v.data.chunks[0][0] == 4
    np.testing.assert_array_equal(v.data.compute(), volume_array)


def test_zarr_group_takes_first_array(tmp_path, volume_array):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    sub = g.create_group("raw")
    sub.create_array("volume", shape=volume_array.shape, dtype=volume_array.dtype)[:] = volume_array
    np.testing.assert_array_equal(open_volume(tmp_path / "g.zarr").data.compute(), volume_array)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_pyramid_nested_keys(tmp_path, zarr_format):
    vol = (np.arange(32 * 48 * 40) % 256).astype(np.uint8).reshape(32, 48, 40)
    path = write_ome_zarr(tmp_path / "s1.zarr", vol, levels=3, zarr_format=zarr_format)
    if zarr_format == 2:  # '/'-nested chunk keys, as Vesuvius writes them
        assert (path / "0" / "0" / "0" / "0").is_file()
    v = open_volume(path)
    assert v.multiscale and len(v.levels) == 3
    assert [l.shape for l in v.levels] == [(32, 48, 40), (16, 24, 20), (8, 12, 10)]
    assert v.voxel_size == pytest.approx((7.91, 7.91, 7.91)) and v.unit == "µm"
    assert v.level_voxel_size(2) == pytest.approx((31.64, 31.64, 31.64))
    np.testing.assert_array_equal(v.levels[1].compute(), vol[::2, ::2, ::2])


def test_nrrd_raw_and_gzip_with_mask(tmp_path, volume_array):
    import nrrd

    nrrd.write(str(tmp_path / "cube_volume.nrrd"), volume_array, index_order="C",
               header={"space directions": np.diag([2.0, 3.0, 4.0]), "encoding": "raw"})
    mask = (volume_array > 30000).astype(np.uint8)
    nrrd.write(str(tmp_path / "cube_mask.nrrd"), mask, index_order="C", header={"encoding": "gzip"})
    v = open_volume(tmp_path / "cube_volume.nrrd")
    assert v.voxel_size == (4.0, 3.0, 2.0)  # NRRD lists x first
    np.testing.assert_array_equal(v.data.compute(), volume_array)
    assert [e.name for e in v.extras] == ["cube_mask"] and v.extras[0].kind == "labels"
    np.testing.assert_array_equal(v.extras[0].data.compute(), mask)
    g = open_volume(tmp_path / "cube_mask.nrrd")
    np.testing.assert_array_equal(g.data.compute(), mask)


def test_volpkg_first_volume_and_choices(tmp_path, volume_array):
    pkg = tmp_path / "scroll1.volpkg"
    write_slices(pkg / "volumes" / "20230205180739", volume_array)
    write_slices(pkg / "volumes" / "20230206171837", volume_array[:5])
    (pkg / "config.json").write_text(json.dumps({"name": "scroll1"}))
    v = open_volume(pkg)
    assert v.shape == (12, 40, 50) and v.choices == ["20230206171837"]
    assert open_volume(pkg, volume="20230206171837").shape == (5, 40, 50)
    with pytest.raises(ValueError, match=r"no volume 'nope'.*20230205180739, 20230206171837"):
        open_volume(pkg, volume="nope")


def test_fragment_layout(tmp_path, volume_array):
    from PIL import Image

    frag = tmp_path / "frag1"
    write_slices(frag / "surface_volume", volume_array, fmt="{:02d}.tif")
    mask = np.zeros((40, 50), np.uint8)
    mask[5:35, 5:45] = 255
    ink = np.zeros((40, 50), np.uint8)
    ink[10:12, 10:30] = 255
    Image.fromarray(mask).save(frag / "mask.png")
    Image.fromarray(ink).save(frag / "inklabels.png")
    Image.fromarray((np.arange(2000) % 200).astype(np.uint8).reshape(40, 50)).save(frag / "ir.png")
    v = open_volume(frag)
    assert v.shape == (12, 40, 50) and v.name == "frag1"
    extras = {e.name: e for e in v.extras}
    assert set(extras) == {"mask", "inklabels", "ir"}
    assert extras["mask"].kind == "labels" and extras["ir"].kind == "image"
    np.testing.assert_array_equal(extras["inklabels"].data.compute(), ink > 0)


def test_2d_image_is_a_one_slice_volume(tmp_path):
    img = np.arange(30 * 40, dtype=np.uint16).reshape(30, 40)
    tifffile.imwrite(tmp_path / "one.tif", img)
    v = open_volume(tmp_path / "one.tif")
    assert v.shape == (1, 30, 40)
    np.testing.assert_array_equal(v.data[0].compute(), img)


def test_4d_with_channel_axis(tmp_path):
    vol = np.arange(2 * 6 * 10 * 12, dtype=np.uint16).reshape(6, 2, 10, 12)
    tifffile.imwrite(tmp_path / "zc.tif", vol, imagej=True, metadata={"axes": "ZCYX"})
    v = open_volume(tmp_path / "zc.tif", channel=1)
    assert v.shape == (6, 10, 12) and v.n_channels == 2
    np.testing.assert_array_equal(v.data.compute(), vol[:, 1])


def test_crop_and_level_stay_lazy_and_keep_position(tmp_path):
    vol = (np.arange(32 * 48 * 40) % 256).astype(np.uint8).reshape(32, 48, 40)
    v = open_volume(write_ome_zarr(tmp_path / "p.zarr", vol, levels=2))
    c = v.crop(z=(4, 10), y=(8, 24), x=(0, 16))
    assert c.shape == (6, 16, 16) and c.offset == (4, 8, 0)
    assert c.translate == pytest.approx((4 * 7.91, 8 * 7.91, 0.0))
    np.testing.assert_array_equal(c.data.compute(), vol[4:10, 8:24, 0:16])
    c1 = v.crop(z=(2, 4), level=1)
    assert c1.voxel_size == pytest.approx((15.82,) * 3) and c1.offset == (2, 0, 0)
    np.testing.assert_array_equal(c1.data.compute(), vol[::2, ::2, ::2][2:4])
    with pytest.raises(ValueError, match=r"crop z=\(10, 99\) is outside"):
        v.crop(z=(10, 99))


def test_nrrd_voxel_size_without_float_noise_and_its_unit(tmp_path, volume_array):
    """A header's 6.4999999999999982 (the brain MRI's) is 6.5: with the noise napari's slider
    has one step too few (24 for 25 slices). Anatomical spaces are in millimetres."""
    import nrrd

    dirs = np.diag([0.78124999999999989, -0.78124999999999989, 6.4999999999999982])
    nrrd.write(str(tmp_path / "mri.nrrd"), volume_array, index_order="C",
               header={"space": "left-posterior-superior", "space directions": dirs})
    v = open_volume(tmp_path / "mri.nrrd")
    assert v.voxel_size == (6.5, 0.78125, 0.78125) and v.unit == "mm"
    nrrd.write(str(tmp_path / "um.nrrd"), volume_array, index_order="C",
               header={"space directions": np.diag([2.0, 2.0, 2.0]), "space dimension": 3,
                       "space units": ["um", "um", "um"]})
    assert open_volume(tmp_path / "um.nrrd").unit == "um"
    nrrd.write(str(tmp_path / "plain.nrrd"), volume_array, index_order="C", header={"spacings": [1.0, 1.0, 1.0]})
    assert open_volume(tmp_path / "plain.nrrd").unit == "pixel"


def test_napari_reaches_every_slice_of_the_brain_mri(shared_data, make_napari_viewer):
    """The MRI's 25 slices are 25 steps of napari's slider (with its float-noise voxel size 24)."""
    from napari_scroll_sam.io.reader import get_reader

    path = str(shared_data / "brain-mri" / "brain1_image.nrrd")
    viewer = make_napari_viewer()
    for data, meta, kind in get_reader(path)(path):
        getattr(viewer, f"add_{kind}")(data, **meta)
    viewer.dims.set_current_step(0, 24)
    assert viewer.dims.nsteps[0] == 25 and viewer.dims.current_step[0] == 24
