"""Surfaces out: the objects of a labels volume as triangle meshes (``.ply`` / ``.obj``).

One pass over the labels, chunk by chunk, finds each object's bounding box; then each
object is meshed from its own box only (plus a one-voxel margin), with scikit-image's
marching cubes, so a large labels volume is never loaded whole. The box is padded with
background, so every mesh is closed (watertight) even where an object touches the edge.

Vertices are in physical units: voxel size and translate applied (napari's world
coordinates). Files list them as ``x y z`` (the usual order of mesh tools); the arrays
returned by ``mesh_object`` are napari-ordered ``(z, y, x)``, ready for a Surface layer.
``smooth`` (voxels) is a Gaussian on the object's mask before meshing; ``step`` > 1 is
decimation by marching on a coarser grid (``step_size``: fewer, larger triangles,
still closed).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..errors import ScrollSamError


class MeshError(ScrollSamError, ValueError):
    """Meshes cannot be made or written; names the labels / folder / object and what is wrong."""


FORMATS = ("ply", "obj")


def bounding_boxes(labels) -> dict:
    """``{object id: (slice z, slice y, slice x)}`` of every non-zero label, chunk by chunk."""
    import dask.array as da
    from scipy import ndimage

    arr = labels if isinstance(labels, da.Array) else da.asarray(labels)
    boxes: dict = {}
    starts = [np.cumsum((0,) + c)[:-1] for c in arr.chunks]
    for index in np.ndindex(*arr.numblocks):
        block = np.asarray(arr.blocks[index].compute())
        ids = np.unique(block)
        ids = ids[ids > 0]
        if not ids.size:
            continue
        # relabel to 1..n so find_objects stays small whatever the ids
        lookup = np.searchsorted(ids, block) + 1
        lookup[block == 0] = 0
        offset = [int(s[i]) for s, i in zip(starts, index)]
        for obj, sl in zip(ids, ndimage.find_objects(lookup)):
            lo = [s.start + o for s, o in zip(sl, offset)]
            hi = [s.stop + o for s, o in zip(sl, offset)]
            if int(obj) in boxes:
                old = boxes[int(obj)]
                lo = [min(a, s.start) for a, s in zip(lo, old)]
                hi = [max(b, s.stop) for b, s in zip(hi, old)]
            boxes[int(obj)] = tuple(slice(a, b) for a, b in zip(lo, hi))
    return boxes


def mesh_object(labels, obj: int, box, *, voxel_size=(1.0, 1.0, 1.0), translate=(0.0, 0.0, 0.0),
                smooth: float = 0.0, step: int = 1):
    """``(vertices (z, y, x) physical, faces, normals)`` of one object, read from its box only."""
    from scipy import ndimage
    from skimage.measure import marching_cubes

    shape = labels.shape
    grown = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(box, shape))
    sub = np.asarray(labels[grown].compute() if hasattr(labels[grown], "compute") else labels[grown]) == obj
    mask = np.pad(sub, 1 + int(np.ceil(3 * smooth))).astype(np.float32)
    if smooth > 0:
        mask = ndimage.gaussian_filter(mask, smooth)
    if mask.max() <= 0.5:
        raise MeshError(f"object {obj}: nothing left to mesh after smoothing {smooth} (too thin)")
    spacing = tuple(float(v) for v in voxel_size)
    verts, faces, normals, _ = marching_cubes(mask, level=0.5, spacing=spacing, step_size=int(step),
                                              allow_degenerate=False)
    pad = 1 + int(np.ceil(3 * smooth))
    origin = np.array([t + (g.start - pad) * v for t, g, v in zip(translate, grown, spacing)])
    return verts + origin, faces.astype(np.int64), normals


def write_mesh(path: Path, parts) -> None:
    """Write ``[(name, vertices zyx, faces, normals), …]`` to one ``.ply`` (binary) or ``.obj``."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        with open(path, "w") as fh:
            fh.write("# napari-scroll-sam mesh: vertices x y z in physical units\n")
            base = 1
            for name, v, f, n in parts:
                fh.write(f"o {name}\n")
                np.savetxt(fh, v[:, ::-1], fmt="v %.6f %.6f %.6f")
                np.savetxt(fh, n[:, ::-1], fmt="vn %.6f %.6f %.6f")
                ff = f + base
                np.savetxt(fh, np.repeat(ff, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
                base += len(v)
        return
    verts = np.concatenate([p[1] for p in parts])[:, ::-1].astype("<f4")
    normals = np.concatenate([p[3] for p in parts])[:, ::-1].astype("<f4")
    offsets = np.cumsum([0] + [len(p[1]) for p in parts])[:-1]
    faces = np.concatenate([p[2] + o for p, o in zip(parts, offsets)]).astype("<i4")
    header = (f"ply\nformat binary_little_endian 1.0\ncomment napari-scroll-sam mesh, physical units\n"
              f"element vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n"
              f"property float nx\nproperty float ny\nproperty float nz\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    vrec = np.concatenate([verts, normals], axis=1)
    frec = np.empty(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    frec["n"], frec["i"] = 3, faces
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vrec.tobytes())
        fh.write(frec.tobytes())


def read_mesh(path) -> tuple:
    """``(vertices (z, y, x), faces)`` of a ``.obj`` or a ``.ply`` (ascii or binary little-endian)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".obj":
            v, f = [], []
            with open(path) as fh:
                for line in fh:
                    if line.startswith("v "):
                        v.append([float(t) for t in line.split()[1:4]])
                    elif line.startswith("f "):
                        idx = [int(t.split("/")[0]) for t in line.split()[1:]]
                        f.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1))
            verts, faces = np.asarray(v, float).reshape(-1, 3), np.asarray(f, np.int64).reshape(-1, 3) - 1
        else:
            verts, faces = _read_ply(path)
    except MeshError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken mesh file
        raise MeshError(f"{path}: not a readable mesh ({type(exc).__name__}: {exc})") from exc
    return verts[:, ::-1].copy(), faces


def _read_ply(path: Path):
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head = data[:end].decode("ascii").splitlines()
    n_v = next(int(line.split()[2]) for line in head if line.startswith("element vertex"))
    n_f = next(int(line.split()[2]) for line in head if line.startswith("element face"))
    props = [line.split()[-1] for line in head if line.startswith("property float")]
    if "format ascii" in head[1]:
        rows = data[end:].decode("ascii").split("\n")
        verts = np.array([[float(t) for t in r.split()[:3]] for r in rows[:n_v]])
        faces = np.array([[int(t) for t in r.split()[1:4]] for r in rows[n_v:n_v + n_f]], np.int64)
        return verts, faces
    if "binary_little_endian" not in head[1]:
        raise MeshError(f"{path}: PLY format {head[1]!r} is not read here (ascii or binary_little_endian)")
    vrec = np.frombuffer(data, "<f4", count=n_v * len(props), offset=end).reshape(n_v, len(props))
    frec = np.frombuffer(data, [("n", "u1"), ("i", "<i4", (3,))], count=n_f, offset=end + vrec.nbytes)
    return vrec[:, :3].astype(float), frec["i"].astype(np.int64)


def export_meshes(labels, out_dir, *, objects=None, voxel_size=(1.0, 1.0, 1.0), translate=(0.0, 0.0, 0.0),
                  fmt: str = "ply", scene: bool = False, smooth: float = 0.0, step: int = 1,
                  name: str = "labels", on_object=None) -> list[Path]:
    """Mesh ``objects`` (default: all) of ``labels`` into ``out_dir``: ``{name}_{id}.{fmt}`` each,
    or one ``{name}.{fmt}`` with ``scene=True``. Everything is written into a temporary
    folder and moved into place at the end; bad input raises before anything is written."""
    out = Path(out_dir)
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise MeshError(f"{out}: mesh format {fmt!r} unknown; use one of {FORMATS}")
    if int(step) < 1 or smooth < 0:
        raise MeshError(f"{out}: step {step} must be ≥ 1 and smooth {smooth} ≥ 0")
    if out.exists() and not out.is_dir():
        raise MeshError(f"{out}: exists and is not a folder")
    parent = out if out.is_dir() else out.parent
    if not parent.is_dir():
        raise MeshError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise MeshError(f"{out}: folder {parent} is not writable")
    if labels.ndim != 3 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise MeshError(f"{name}: labels must be 3D integers, got {labels.dtype} of shape {tuple(labels.shape)}")
    boxes = bounding_boxes(labels)
    wanted = sorted(boxes) if objects is None else [int(o) for o in objects]
    missing = [o for o in wanted if o not in boxes]
    if missing:
        raise MeshError(f"{name}: object(s) {missing} are not in the labels (it has {sorted(boxes)[:20]}"
                        + ("…" if len(boxes) > 20 else "") + ")")
    if not wanted:
        raise MeshError(f"{name}: no objects (the labels are all 0)")
    parts = []
    for obj in wanted:
        v, f, n = mesh_object(labels, obj, boxes[obj], voxel_size=voxel_size, translate=translate,
                              smooth=smooth, step=step)
        parts.append((f"object_{obj}", v, f, n))
        if on_object is not None:
            on_object(obj, len(v), len(f))
    out.mkdir(exist_ok=True)
    tmp = out / f".meshes-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        groups = [(f"{name}.{fmt}", parts)] if scene else [(f"{name}_{p[0][7:]}.{fmt}", [p]) for p in parts]
        for fname, group in groups:
            write_mesh(tmp / fname, group)
        written = []
        for fname, _ in groups:
            os.replace(tmp / fname, out / fname)
            written.append(out / fname)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def write_scene(path, labels, *, voxel_size=(1.0, 1.0, 1.0), translate=(0.0, 0.0, 0.0), objects=None,
                smooth: float = 0.0, step: int = 1) -> Path:
    """All (or ``objects``) of ``labels`` as one mesh file ``path`` (.ply / .obj), atomically."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    written = export_meshes(labels, path.parent, objects=objects, voxel_size=voxel_size, translate=translate,
                            fmt=fmt, scene=True, smooth=smooth, step=step, name=path.stem)
    return written[0]


def open_labels(path):
    """``(labels array, voxel size, translate, name)`` of a labels file: the plugin's labels
    (NGFF image-label, marked zarr, OME-TIFF) with their placement, else any volume."""
    from .labels import labels_info
    from .open import open_volume

    info = labels_info(path)
    if info is not None:
        return info.levels[0], info.scale, info.translate, Path(path).name.split(".")[0]
    vol = open_volume(path)
    return vol.data, vol.voxel_size, vol.translate, (vol.name or "labels").split(".")[0]


def surface_layer(path) -> list:
    """napari layer data: a mesh file as a Surface layer (vertices in world units)."""
    verts, faces = read_mesh(path)
    return [((verts, faces), {"name": Path(path).name}, "surface")]
