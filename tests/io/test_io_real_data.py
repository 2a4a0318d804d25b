"""Data in and out on the real volumes of ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam import open_volume, write_labels
from napari_scroll_sam.io.reader import get_reader


def test_chloroplast_labels_roundtrip_ome_zarr_and_mesh(shared_data, tmp_path):
    import tifffile

    from napari_scroll_sam.io.mesh import export_meshes, read_mesh

    lab = tifffile.imread(shared_data / "chloroplast-em" / "labels.tif")
    out = write_labels(tmp_path / "chloro.ome.zarr", lab, scale=(40.0, 5.0, 5.0), translate=(400.0, 0.0, 0.0),
                       unit="nm")
    (data, meta, kind), = get_reader(str(out))(str(out))
    assert kind == "labels" and meta["multiscale"] and len(data) == 5  # 3293 → … ≤ 256 along x
    assert meta["scale"] == (40.0, 5.0, 5.0) and meta["translate"] == (400.0, 0.0, 0.0)
    np.testing.assert_array_equal(np.asarray(data[0]), lab)
    ids = sorted(int(i) for i in np.unique(lab) if i)[:2]
    paths = export_meshes(data[0], tmp_path / "m", objects=ids, voxel_size=meta["scale"],
                          translate=meta["translate"], name="chloro")
    for obj, p in zip(ids, paths):
        v, f = read_mesh(p)
        zz, yy, xx = np.nonzero(lab == obj)
        # the mesh spans the object's voxels in nm, within one voxel
        assert v[:, 1].min() == pytest.approx(yy.min() * 5.0, abs=5.0) and v[:, 2].max() == pytest.approx(
            xx.max() * 5.0, abs=5.0)


def test_brain_mri_as_nifti_matches_the_nrrd_in_ras(shared_data, tmp_path):
    nib = pytest.importorskip("nibabel")
    import nrrd

    src = shared_data / "brain-mri" / "brain1_image.nrrd"
    ijk, header = nrrd.read(str(src))  # stored (x, y, z), space left-posterior-superior
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(header["space directions"]).T
    affine[:3, 3] = header["space origin"]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS → RAS, as NIfTI stores it
    nib.save(nib.Nifti1Image(ijk, affine), str(tmp_path / "brain1.nii.gz"))
    ref = open_volume(src)  # as stored: (z, y, x) = (k, j, i)
    vol = open_volume(tmp_path / "brain1.nii.gz")
    assert vol.shape == ref.shape == (25, 256, 256)
    assert vol.voxel_size == pytest.approx((6.5, 0.78125, 0.78125))
    # i runs towards the patient's left (L): RAS canonical flips x only
    np.testing.assert_array_equal(vol.data.compute(), ref.data.compute()[:, :, ::-1])
    lab, _ = nrrd.read(str(shared_data / "brain-mri" / "brain1_label.nrrd"))
    nib.save(nib.Nifti1Image(lab.astype(np.uint8), affine), str(tmp_path / "brain1_label.nii.gz"))
    (data, meta, kind), = get_reader(str(tmp_path / "brain1_label.nii.gz"))(str(tmp_path / "brain1_label.nii.gz"))
    assert kind == "labels" and int(np.asarray(data).astype(bool).sum()) == 4137
