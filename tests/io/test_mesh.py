"""Surfaces out: a sphere and a thin curved sheet, exported, re-read and checked."""

from __future__ import annotations

import os
from collections import Counter

import dask.array as da
import numpy as np
import pytest

from napari_scroll_sam import write_labels
from napari_scroll_sam.cli import main
from napari_scroll_sam.io.mesh import MeshError, bounding_boxes, export_meshes, read_mesh
from napari_scroll_sam.io.reader import get_reader


def _watertight(faces) -> bool:
    """Every edge belongs to exactly two triangles."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return set(Counter(map(tuple, edges)).values()) == {2}


@pytest.fixture
def scene():
    """Object 1: a sphere of radius 8 voxels; object 2: a 2-voxel-thick curved sheet that runs
    through the whole volume along z (it touches the edges)."""
    z, y, x = np.mgrid[:24, :48, :64]
    labels = np.zeros((24, 48, 64), np.uint32)
    labels[(z - 12) ** 2 + (y - 14) ** 2 + (x - 14) ** 2 <= 64] = 1
    curve = 34 + 8 * np.sin(x / 64 * np.pi)  # y of the sheet, as a function of x
    labels[(np.abs(y - curve) < 1.0) & (x >= 30)] = 2
    return labels


VOXEL, TRANSLATE = (2.0, 0.5, 0.5), (100.0, 10.0, 20.0)


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_sphere_and_sheet_exported_and_reread(tmp_path, scene, fmt):
    labels = da.from_array(scene, chunks=(8, 16, 16))
    paths = export_meshes(labels, tmp_path / "out", voxel_size=VOXEL, translate=TRANSLATE, fmt=fmt, name="scan")
    assert [p.name for p in paths] == [f"scan_1.{fmt}", f"scan_2.{fmt}"]
    (v1, f1), (v2, f2) = read_mesh(paths[0]), read_mesh(paths[1])
    assert len(v1) > 500 and len(f1) > 1000 and f1.max() < len(v1)
    assert _watertight(f1) and _watertight(f2)  # closed, even the sheet cut by the volume's edges
    # sphere: centre (12, 14, 14) voxels, radius 8 → physical box, within half a voxel
    centre = np.array(TRANSLATE) + np.array([12, 14, 14]) * VOXEL
    np.testing.assert_allclose(v1.min(0), centre - 8 * np.array(VOXEL), atol=np.max(VOXEL) / 2 + 1e-6)
    np.testing.assert_allclose(v1.max(0), centre + 8 * np.array(VOXEL), atol=np.max(VOXEL) / 2 + 1e-6)
    radius = np.linalg.norm((v1 - centre) / np.array(VOXEL), axis=1)
    assert 7.0 < radius.mean() < 8.5
    # sheet: z from the first to the last slice (closed at the edge: half a voxel beyond), x from 30
    lo, hi = v2.min(0), v2.max(0)
    assert lo[0] == pytest.approx(TRANSLATE[0] - VOXEL[0] / 2) and hi[0] == pytest.approx(TRANSLATE[0] + 23.5 * VOXEL[0])
    assert lo[2] == pytest.approx(TRANSLATE[2] + 29.5 * VOXEL[2])
    assert hi[1] - lo[1] < 12 * VOXEL[1]  # thin: it spans the curve, not the volume
    assert sorted(os.listdir(tmp_path / "out")) == sorted(p.name for p in paths)  # no temporary folder left


def test_scene_step_and_smoothing(tmp_path, scene):
    full, = export_meshes(scene, tmp_path, objects=[1], voxel_size=VOXEL, fmt="ply", scene=True, name="one")
    coarse, = export_meshes(scene, tmp_path, objects=[1], voxel_size=VOXEL, step=2, name="coarse", scene=True)
    smooth, = export_meshes(scene, tmp_path, objects=[1], voxel_size=VOXEL, smooth=1.0, name="smooth", scene=True)
    nf, nc, ns = (len(read_mesh(p)[0]) for p in (full, coarse, smooth))
    assert nc < nf / 2  # decimation: fewer vertices
    assert _watertight(read_mesh(coarse)[1]) and _watertight(read_mesh(smooth)[1])
    both, = export_meshes(scene, tmp_path, name="both", scene=True)
    sheet, = export_meshes(scene, tmp_path, objects=[2], name="sheet", scene=True)
    assert len(read_mesh(both)[0]) == nf + len(read_mesh(sheet)[0])  # a scene holds every object


def test_bounding_boxes_are_found_chunk_by_chunk(scene):
    reads = []
    arr = da.from_array(scene, chunks=(8, 16, 16)).map_blocks(lambda b: (reads.append(b.shape), b)[1],
                                                               meta=np.empty((0, 0, 0), np.uint32))
    boxes = bounding_boxes(arr)
    assert boxes[1] == (slice(4, 21), slice(6, 23), slice(6, 23))
    assert boxes[2][0] == slice(0, 24) and boxes[2][2] == slice(30, 64)
    assert max(int(np.prod(s)) for s in reads) == 8 * 16 * 16  # never more than one chunk at a time


def test_mesh_command_from_labels_file_keeps_physical_units(tmp_path, scene, capsys):
    src = write_labels(tmp_path / "seg.ome.zarr", scene, scale=VOXEL, translate=TRANSLATE)
    assert main(["mesh", str(src), "--out", str(tmp_path / "m"), "--objects", "1", "--format", "obj"]) == 0
    out = capsys.readouterr().out
    assert "object 1:" in out and "wrote" in out
    v, _ = read_mesh(tmp_path / "m" / "seg_1.obj")
    assert v.min(0)[0] == pytest.approx(TRANSLATE[0] + 4 * VOXEL[0], abs=VOXEL[0] / 2 + 1e-6)
    # the napari reader previews a mesh as a Surface layer
    (data, meta, kind), = get_reader(str(tmp_path / "m" / "seg_1.obj"))(str(tmp_path / "m" / "seg_1.obj"))
    assert kind == "surface" and len(data[0]) == len(v)


def test_mesh_bad_input(tmp_path, scene, capsys, monkeypatch):
    with pytest.raises(MeshError, match=r"scan: object\(s\) \[7\] are not in the labels \(it has \[1, 2\]\)"):
        export_meshes(scene, tmp_path / "out", objects=[7], name="scan")
    assert not (tmp_path / "out").exists()  # nothing written
    # root can write anywhere here, so the permission answer is stubbed for this one check
    monkeypatch.setattr("napari_scroll_sam.io.mesh.os.access", lambda path, mode: False)
    with pytest.raises(MeshError, match=rf"{tmp_path}/m: folder {tmp_path} is not writable"):
        export_meshes(scene, tmp_path / "m")
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")
    with pytest.raises(MeshError, match="exists and is not a folder"):
        export_meshes(scene, tmp_path / "file")
    with pytest.raises(MeshError, match="labels must be 3D integers"):
        export_meshes(scene.astype(np.float32), tmp_path)
    with pytest.raises(MeshError, match="format 'stl' unknown"):
        export_meshes(scene, tmp_path, fmt="stl")
    src = write_labels(tmp_path / "seg.zarr", scene)
    assert main(["mesh", str(src), "--out", str(tmp_path / "m2"), "--objects", "3"]) == 2
    assert "error: seg: object(s) [3] are not in the labels" in capsys.readouterr().err
    assert not (tmp_path / "m2").exists()


def test_a_failure_mid_export_leaves_nothing_half_written(tmp_path, scene, monkeypatch):
    from napari_scroll_sam.io import mesh

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    real, calls = mesh.write_mesh, []

    def fail_second(path, parts):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, parts)

    monkeypatch.setattr(mesh, "write_mesh", fail_second)
    with pytest.raises(OSError):
        export_meshes(scene, out, name="scan")
    assert os.listdir(out) == ["keep.txt"]  # neither mesh moved in, no temporary left
