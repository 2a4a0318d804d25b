"""Bad input: each case is a clear error naming the file or folder, raised at open."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_scroll_sam import VolumeError, open_volume
from tests.helpers import write_slices


def test_missing_path(tmp_path):
    with pytest.raises(VolumeError, match=r"nope\.zarr: no such file or folder"):
        open_volume(tmp_path / "nope.zarr")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match=r"empty: not a volume"):
        open_volume(tmp_path / "empty")


def test_folder_without_images(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    with pytest.raises(VolumeError, match="notes"):
        open_volume(tmp_path / "notes")


def test_slice_of_another_shape_is_named(tmp_path, volume_array):
    folder = write_slices(tmp_path / "s", volume_array)
    tifffile.imwrite(folder / "00007.tif", volume_array[7, :30])
    with pytest.raises(VolumeError, match=r"00007\.tif: slice 7 .* shape \(30, 50\)"):
        open_volume(folder)


def test_slice_of_another_dtype_is_named(tmp_path, volume_array):
    folder = write_slices(tmp_path / "s", volume_array)
    tifffile.imwrite(folder / "00004.tif", volume_array[4].astype(np.uint8))
    with pytest.raises(VolumeError, match=r"00004\.tif: slice 4 .*uint8"):
        open_volume(folder)


def test_odd_slice_of_same_size_caught_with_check_all_and_at_read(tmp_path, volume_array):
    """Same bytes on disk but another shape: a stat cannot see it; check='all' or the read does."""
    folder = write_slices(tmp_path / "s", volume_array)
    tifffile.imwrite(folder / "00005.tif", volume_array[5].reshape(50, 40))
    with pytest.raises(VolumeError, match=r"00005\.tif: slice 5"):
        open_volume(folder, check="all")
    vol = open_volume(folder)  # auto: sizes agree, so it opens ...
    with pytest.raises(VolumeError, match=r"00005\.tif: slice 5"):
        vol.data[5].compute()  # ... and the odd slice is named when read


def test_truncated_tiff_slice(tmp_path, volume_array):
    folder = write_slices(tmp_path / "s", volume_array)
    raw = (folder / "00003.tif").read_bytes()
    (folder / "00003.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VolumeError, match=r"00003\.tif"):
        open_volume(folder)


def test_corrupt_tiff_file(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(VolumeError, match=r"bad\.tif: not a readable TIFF"):
        open_volume(tmp_path / "bad.tif")


def test_truncated_multipage_tiff(tmp_path, volume_array):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, volume_array)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.6)])
    with pytest.raises(VolumeError, match=r"stack\.tif"):
        open_volume(path)


def test_zarr_group_without_arrays(tmp_path):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_group("empty")
    with pytest.raises(VolumeError, match=r"g\.zarr: zarr group with no arrays"):
        open_volume(tmp_path / "g.zarr")


def test_corrupt_zarr_metadata(tmp_path):
    (tmp_path / "c.zarr").mkdir()
    (tmp_path / "c.zarr" / "zarr.json").write_text("{ not json")
    with pytest.raises(VolumeError, match=r"c\.zarr: not a readable zarr store"):
        open_volume(tmp_path / "c.zarr")


def test_4d_without_channel_axis(tmp_path):
    z = zarr.create_array(str(tmp_path / "t.zarr"), shape=(5, 6, 20, 20), dtype="uint8")
    with pytest.raises(VolumeError, match=r"t\.zarr: cannot read an array of shape \(5, 6, 20, 20\)"):
        open_volume(tmp_path / "t.zarr")


def test_4d_with_obvious_channel_axis_last(tmp_path):
    z = zarr.create_array(str(tmp_path / "rgb.zarr"), shape=(5, 20, 20, 3), dtype="uint8")
    z[..., 2] = 7
    v = open_volume(tmp_path / "rgb.zarr", channel=2)
    assert v.shape == (5, 20, 20) and v.n_channels == 3
    assert int(v.data.max().compute()) == 7


def test_5d_ome_style_with_singletons(tmp_path):
    z = zarr.create_array(str(tmp_path / "tczyx.zarr"), shape=(1, 1, 5, 20, 20), dtype="uint8")
    assert open_volume(tmp_path / "tczyx.zarr").shape == (5, 20, 20)


def test_channel_out_of_range(tmp_path):
    zarr.create_array(str(tmp_path / "rgb.zarr"), shape=(5, 20, 20, 3), dtype="uint8")
    with pytest.raises(VolumeError, match="no channel 5; it has 3"):
        open_volume(tmp_path / "rgb.zarr", channel=5)


def test_unknown_file_type(tmp_path):
    (tmp_path / "x.csv").write_text("1,2,3")
    with pytest.raises(VolumeError, match=r"x\.csv: not a volume"):
        open_volume(tmp_path / "x.csv")


def test_volpkg_without_volumes(tmp_path):
    (tmp_path / "s.volpkg" / "volumes").mkdir(parents=True)
    with pytest.raises(VolumeError, match=r"s\.volpkg: volpkg with no volumes"):
        open_volume(tmp_path / "s.volpkg")


def test_truncated_nrrd(tmp_path, volume_array):
    import nrrd

    path = tmp_path / "cube.nrrd"
    nrrd.write(str(path), volume_array, index_order="C", header={"encoding": "raw"})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(VolumeError, match=r"cube\.nrrd: truncated NRRD"):
        open_volume(path)


def test_corrupt_gzip_nrrd(tmp_path, volume_array):
    import nrrd

    path = tmp_path / "cube.nrrd"
    nrrd.write(str(path), volume_array, index_order="C", header={"encoding": "gzip"})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(VolumeError, match=r"cube\.nrrd: cannot decode NRRD data"):
        open_volume(path)


def test_fragment_mask_of_wrong_shape(tmp_path, volume_array):
    from PIL import Image

    frag = tmp_path / "frag"
    write_slices(frag / "surface_volume", volume_array, fmt="{:02d}.tif")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(frag / "mask.png")
    with pytest.raises(VolumeError, match=r"mask\.png: shape \(10, 10\) differs"):
        open_volume(frag)
