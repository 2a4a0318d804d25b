"""In-memory arrays and NIfTI files as volumes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_scroll_sam import Volume, VolumeError, open_volume
from napari_scroll_sam.io.reader import get_reader

nib = pytest.importorskip("nibabel")


@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr"])
def test_open_array_estimates_the_window_like_files(kind, volume_array):
    arr = {"numpy": lambda a: a, "dask": lambda a: da.from_array(a, chunks=(4, 20, 25)),
           "zarr": lambda a: _zarr(a)}[kind](volume_array)
    vol = open_volume(arr, voxel_size=(2.0, 0.5, 0.5))
    assert vol.shape == (12, 40, 50) and vol.voxel_size == (2.0, 0.5, 0.5) and vol.unit == "µm"
    lo, hi = vol.contrast_limits
    assert 0 <= lo < 2000 and 58000 < hi <= 60000  # percentiles of uniform 0..60000, not dtype range
    np.testing.assert_array_equal(vol.data[3].compute(), volume_array[3])
    assert open_volume(arr, window=(10, 20)).contrast_limits == (10.0, 20.0)
    if kind == "zarr":
        assert vol.sources == [arr]  # napari slices the zarr array itself


def _zarr(a):
    z = zarr.create_array(store={}, shape=a.shape, chunks=(4, 20, 25), dtype=a.dtype)
    z[:] = a
    return z


def test_volume_default_window_is_the_datas_not_zero_one():
    data = np.full((4, 8, 8), 100, np.int16)
    data[:, :4] = -1000
    assert Volume(levels=[data]).contrast_limits == (-1000.0, 100.0)
    assert Volume(levels=[np.full((2, 4, 4), 7, np.uint8)]).contrast_limits == (0.0, 255.0)


def test_array_bad_input():
    with pytest.raises(VolumeError, match="voxel_size"):
        open_volume(np.zeros((2, 3, 4), np.uint8), voxel_size=(1, -1, 1))
    with pytest.raises(VolumeError, match="window"):
        open_volume(np.zeros((2, 3, 4), np.uint8), window=(5, 5))
    with pytest.raises(VolumeError, match="dtype"):
        open_volume(np.zeros((2, 3, 4), complex))
    with pytest.raises(VolumeError, match="shape"):
        open_volume(np.zeros((2, 3, 4, 5, 6), np.uint8))
    with pytest.raises(VolumeError, match="every voxel is NaN"):
        open_volume(np.full((2, 3, 4), np.nan, np.float32))


def test_array_with_nan_is_flagged_and_the_window_ignores_it():
    data = np.linspace(0, 1, 2 * 30 * 30, dtype=np.float32).reshape(2, 30, 30)
    data[1, 5, 6] = np.nan
    vol = open_volume(data)
    assert vol.metadata["non_finite"] == 1 and vol.metadata["first_non_finite"] == (1, 5, 6)
    assert np.all(np.isfinite(vol.contrast_limits))


def _nifti(path, data_ijk, affine=None, zooms=None, **hdr):
    img = nib.Nifti1Image(data_ijk, affine if affine is not None else np.diag([*(zooms or (1, 1, 1)), 1.0]))
    for k, v in hdr.items():
        img.header[k] = v
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_axes_voxel_size_and_orientation(tmp_path, suffix):
    ijk = np.arange(5 * 6 * 40, dtype=np.int16).reshape(5, 6, 40)  # i = x (R), j = y (A), k = z (S)
    path = _nifti(tmp_path / f"ct{suffix}", ijk, zooms=(0.5, 0.75, 2.0))
    vol = open_volume(path)
    assert vol.shape == (40, 6, 5) and vol.voxel_size == (2.0, 0.75, 0.5) and vol.unit == "mm"
    np.testing.assert_array_equal(vol.data.compute(), ijk.transpose(2, 1, 0))
    assert vol.metadata["axcodes"] == "RAS" and vol.metadata["compressed"] == (suffix == ".nii.gz")
    assert vol.data.chunks[0] == (16, 16, 8)  # slabs along z
    # stored LPS (x and y flipped): the same anatomy comes out in the same (S, A, R) order
    lps = np.diag([-0.5, -0.75, 2.0, 1.0])
    path2 = _nifti(tmp_path / f"lps{suffix}", ijk[::-1, ::-1].copy(), affine=lps)
    np.testing.assert_array_equal(open_volume(path2).data.compute(), vol.data.compute())
    assert open_volume(path2).metadata["axcodes"] == "LPS"


def test_uncompressed_nifti_reads_only_the_slabs_asked(tmp_path, monkeypatch):
    from napari_scroll_sam.io import nifti

    ijk = np.random.default_rng(0).integers(0, 1000, (8, 8, 64)).astype(np.uint16)
    path = _nifti(tmp_path / "ct.nii", ijk, cal_min=0, cal_max=1000)
    reads = []
    real = nifti._Reader.__call__
    monkeypatch.setattr(nifti._Reader, "__call__", lambda self, index: (reads.append(index), real(self, index))[1])
    vol = open_volume(path)
    assert vol.contrast_limits == (0.0, 1000.0) and reads == []  # window from cal_min/cal_max: no read
    vol.data[20].compute()
    assert len(reads) == 1 and reads[0][2] == slice(16, 32)


def test_seg_nifti_opens_as_labels(tmp_path):
    seg = np.zeros((4, 5, 6), np.uint8)
    seg[1:3, 1:3, 1:3] = 2
    path = _nifti(tmp_path / "case_seg.nii.gz", seg, zooms=(1.0, 1.0, 3.0))
    (data, meta, kind), = get_reader(str(path))(str(path))
    assert kind == "labels" and meta["scale"] == (3.0, 1.0, 1.0)
    np.testing.assert_array_equal(np.asarray(data), seg.transpose(2, 1, 0))


def test_nifti_bad_input(tmp_path):
    broken = tmp_path / "broken.nii"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(VolumeError, match="broken.nii: not a readable NIfTI header"):
        open_volume(broken)
    five = _nifti(tmp_path / "five.nii", np.zeros((3, 3, 3, 2, 2), np.uint8))
    with pytest.raises(VolumeError, match=r"five.nii: NIfTI data of shape \(3, 3, 3, 2, 2\) \(5D\) is not a volume"):
        open_volume(five)
    four = _nifti(tmp_path / "four.nii", np.stack([np.zeros((3, 3, 3)), np.ones((3, 3, 3))], -1).astype(np.uint8))
    assert open_volume(four, channel=1).data.compute().min() == 1 and open_volume(four).n_channels == 2
    truncated = tmp_path / "trunc.nii"
    truncated.write_bytes((tmp_path / "four.nii").read_bytes()[:400])
    with pytest.raises(VolumeError, match="trunc.nii: truncated NIfTI: needs 406 bytes, has 400"):
        open_volume(truncated)
    gz = _nifti(tmp_path / "t.nii.gz", np.arange(4000, dtype=np.uint16).reshape(10, 20, 20), cal_min=0, cal_max=9)
    (tmp_path / "cut.nii.gz").write_bytes(gz.read_bytes()[:-200])
    with pytest.raises(VolumeError, match="cut.nii.gz: cannot read NIfTI voxels"):
        open_volume(tmp_path / "cut.nii.gz").data.compute()
