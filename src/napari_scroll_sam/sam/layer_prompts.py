"""napari layer contents → SAM prompts on one slice, and masks → a labels volume.

Plain numpy: nothing here imports Qt or napari, so scripts and tests use it the
same way the Segment widget does.

``prompts_on_slice(points, positive, boxes, z, image_shape)``
    the prompts of ONE object on slice ``z`` from the contents of a Points layer
    (``(M, 3)`` (z, y, x) coordinates with a boolean ``positive`` feature) and a
    Shapes layer of rectangles (``(4, 3)`` vertex arrays with z in column 0), all
    in the *image's data coordinates* (convert napari world coordinates first).
``paste_mask(labels, z, mask, object_id, overwrite=False)``
    write one object's mask into slice ``z`` of a labels volume (numpy or zarr).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .predictor import PromptError

__all__ = ["on_slice", "prompts_on_slice", "paste_mask"]


def on_slice(zc, z: int) -> np.ndarray:
    """Whether z coordinates ``zc`` fall on slice ``z``: the nearest slice, halves rounded up
    (``floor(zc + 0.5) == z``), so a point at z = 2.9999 (a world → data round trip) is on 3."""
    return np.floor(np.asarray(zc, dtype=np.float64) + 0.5) == int(z)


def _slices_text(zs) -> str:
    zs = sorted({int(v) for v in zs})
    few = ", ".join(map(str, zs[:8])) + (", …" if len(zs) > 8 else "")
    return few


def _box_yx(vertices: np.ndarray, z: int) -> np.ndarray | None:
    """(y0, x0, y1, x1) of a rectangle's vertices when it lies on slice ``z`` (a 2D one
    lies on every slice), else None."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] not in (2, 3) or len(v) < 2:
        raise PromptError(f"a box must be given by its vertices as a (4, 3) or (4, 2) array, got shape {v.shape}")
    if v.shape[1] == 3:
        if not np.all(on_slice(v[:, 0], z)):
            return None
        v = v[:, 1:]
    (y0, x0), (y1, x1) = v.min(axis=0), v.max(axis=0)
    return np.array([y0, x0, y1, x1])


def prompts_on_slice(points=None, positive=None, boxes: Sequence | None = None, z: int = 0,
                     image_shape=None) -> dict:
    """The prompts of one object on slice ``z``, ready for ``segment_slice``.

    Parameters
    ----------
    points : (M, 3) array of (z, y, x), or None
        Point prompts in the image's data coordinates (a napari Points layer's data
        mapped from world to the image's data coordinates). Points whose z rounds to
        ``z`` (``floor(pz + 0.5) == z``) are kept. A (M, 2) array of (y, x) is taken as
        lying on every slice.
    positive : (M,) bool, or None
        True for a positive (foreground) point, False for a negative one; None: all
        positive.
    boxes : list of (4, 3) or (4, 2) vertex arrays, or None
        Rectangles (a napari Shapes layer's ``data``): a 3D rectangle carries z in
        column 0 and is kept when all its vertices lie on slice ``z``; a 2D rectangle
        lies on every slice. A rectangle's box is the bounding box of its vertices.
    z : int
        The slice.
    image_shape : (H, W) or (Z, H, W), optional
        When given, points outside the slice raise ``PromptError`` and boxes are clipped
        to the slice (a box entirely outside raises).

    Returns
    -------
    dict
        ``{"points": (N, K, 2) (y, x), "labels": (N, K) with 1 = positive, 0 = negative,
        "box": (N, 4) (y0, x0, y1, x1) or None}``. Without a box, or with one box, N = 1:
        one prompt (the points plus at most one box). With several boxes on the slice,
        N = the number of boxes: one prompt per box, each carrying *all* the points of the
        slice; ``segment_slice`` then gives one mask per box, and the Segment widget pastes
        their union as the object. K may be 0 (a box alone).

    Raises
    ------
    PromptError
        No point and no box on slice ``z`` (the message names the slices that do have
        prompts), only negative points and no box, a point outside the slice, a box
        outside the slice, or badly shaped input.
    """
    z = int(z)
    pts = np.zeros((0, 3)) if points is None else np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or (len(pts) and pts.shape[1] not in (2, 3)):
        raise PromptError(f"points must be an (M, 3) array of (z, y, x), got shape {pts.shape}")
    if pts.size == 0:
        pts = np.zeros((0, 3))
    if positive is None:
        pos = np.ones(len(pts), bool)
    else:
        pos = np.asarray(positive).reshape(-1)
        if len(pos) != len(pts):
            raise PromptError(f"{len(pts)} points but {len(pos)} positive flags")
        pos = pos.astype(bool)
    if pts.shape[1] == 3:
        keep = on_slice(pts[:, 0], z)
        yx, lab = pts[keep, 1:], pos[keep]
        point_slices = np.floor(pts[:, 0] + 0.5)
    else:
        yx, lab = pts, pos
        point_slices = np.zeros(0)

    all_boxes = [] if boxes is None else list(boxes)
    kept, box_slices = [], []
    for b in all_boxes:
        got = _box_yx(b, z)
        if got is not None:
            kept.append(got)
        else:
            box_slices.append(np.floor(np.asarray(b, dtype=np.float64)[:, 0].mean() + 0.5))

    if len(yx) == 0 and not kept:
        where = []
        if len(point_slices):
            where.append(f"points are on slice(s) {_slices_text(point_slices)}")
        if box_slices:
            where.append(f"boxes are on slice(s) {_slices_text(box_slices)}")
        raise PromptError(f"no point or box on slice {z}: "
                          + ("; ".join(where) if where else "add a point (or draw a box) on this slice"))
    if not kept and not lab.any():
        raise PromptError(f"only negative points on slice {z}: add a positive point or a box")

    if image_shape is not None:
        h, w = (int(s) for s in tuple(image_shape)[-2:])
        outside = (yx[:, 0] < -0.5) | (yx[:, 0] > h - 0.5) | (yx[:, 1] < -0.5) | (yx[:, 1] > w - 0.5)
        if outside.any():
            y, x = yx[outside][0]
            raise PromptError(f"a point on slice {z} at (y={y:.1f}, x={x:.1f}) is outside the image "
                              f"({h} x {w} pixels)")
        clipped = []
        for b in kept:
            y0, x0, y1, x1 = b
            if y1 < 0 or x1 < 0 or y0 > h - 1 or x0 > w - 1:
                raise PromptError(f"a box on slice {z} (y {y0:.1f}–{y1:.1f}, x {x0:.1f}–{x1:.1f}) is outside "
                                  f"the image ({h} x {w} pixels)")
            clipped.append(np.array([max(y0, 0.0), max(x0, 0.0), min(y1, h - 1.0), min(x1, w - 1.0)]))
        kept = clipped

    n = max(len(kept), 1)
    points_out = np.repeat(yx[None].astype(np.float64), n, axis=0).reshape(n, len(yx), 2)
    labels_out = np.repeat(lab[None].astype(np.int64), n, axis=0).reshape(n, len(yx))
    box_out = np.stack(kept).astype(np.float64) if kept else None
    return {"points": points_out, "labels": labels_out, "box": box_out}


def paste_mask(labels, z: int, mask, object_id: int, overwrite: bool = False) -> int:
    """Write object ``object_id`` into slice ``z`` of ``labels`` where ``mask`` is True.

    The rule: first this object's old pixels on slice ``z`` are cleared (set to 0), so
    the slice holds exactly the new mask (re-segmenting replaces, never accumulates);
    then ``object_id`` is written where ``mask`` is True and the voxel is background (0)
    — another object's voxels are kept unless ``overwrite=True``. Other slices are never
    touched. The new slice is computed whole and assigned once (``labels[z] = …``), so a
    failure leaves the slice as it was; ``labels`` may be a numpy array or a zarr array
    (only slice ``z`` is read and written).

    Returns the number of voxels that now hold ``object_id`` on slice ``z`` (i.e. written).
    """
    object_id = int(object_id)
    if object_id <= 0:
        raise ValueError(f"object id must be a positive integer (0 is background), got {object_id}")
    shape = tuple(labels.shape)
    if len(shape) != 3:
        raise ValueError(f"labels must be a 3D (z, y, x) array, got shape {shape}")
    z = int(z)
    if not 0 <= z < shape[0]:
        raise ValueError(f"slice {z} is outside the labels (slices 0..{shape[0] - 1})")
    mask = np.asarray(mask)
    if mask.shape != shape[1:]:
        raise ValueError(f"mask of shape {mask.shape} does not fit a labels slice of shape {shape[1:]}")
    dtype = np.dtype(labels.dtype)
    if dtype.kind in "iu" and object_id > np.iinfo(dtype).max:
        raise ValueError(f"object id {object_id} does not fit the labels' dtype {dtype}")
    mask = mask.astype(bool)
    current = np.array(labels[z])  # a copy: nothing is written until the end
    current[current == object_id] = 0
    target = mask if overwrite else mask & (current == 0)
    current[target] = object_id
    labels[z] = current
    return int(target.sum())
