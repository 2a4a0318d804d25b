"""``napari-scroll-sam mesh``: objects of a labels volume as surface meshes."""

from __future__ import annotations

import sys


def run(args) -> int:
    from ..errors import ScrollSamError
    from ..io.mesh import export_meshes, open_labels

    try:
        labels, voxel, translate, name = open_labels(args.labels)
        if args.voxel_size:
            voxel = tuple(args.voxel_size)
        report = lambda obj, nv, nf: print(f"object {obj}: {nv} vertices, {nf} faces", flush=True)  # noqa: E731
        paths = export_meshes(labels, args.out, objects=args.objects, voxel_size=voxel, translate=translate,
                              fmt=args.format, scene=args.scene, smooth=args.smooth, step=args.step,
                              name=name, on_object=report)
    except ScrollSamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    mesh = command("mesh", help="export objects of a labels volume as surface meshes (.ply / .obj)")
    mesh.add_argument("labels", help="labels: .ome.zarr, .zarr, .tif, .nii.gz, … (any volume of integers)")
    mesh.add_argument("--out", required=True, help="output folder")
    mesh.add_argument("--objects", type=int, nargs="+", default=None, help="object ids (default: all)")
    mesh.add_argument("--format", default="ply", choices=["ply", "obj"])
    mesh.add_argument("--scene", action="store_true", help="one file with every object instead of one each")
    mesh.add_argument("--smooth", type=float, default=0.0, help="Gaussian sigma (voxels) before meshing")
    mesh.add_argument("--step", type=int, default=1, help="decimation: marching-cubes step in voxels")
    mesh.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="override the voxel size")
    mesh.set_defaults(func=run)
