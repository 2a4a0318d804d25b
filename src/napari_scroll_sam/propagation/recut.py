"""The turns of a scroll re-cut on every slice of the walk.

Objects clicked on one slice of a scroll, one per wrap, are cut into turns there along the
ray through the sheet's inner end (``winding.py``). The walk then carries each turn to the
next slice with the motion prior, and the cut goes with it. But a scroll's inner end turns
with depth, and the flow does not follow it: along the sheet the papyrus moves radially,
so a cut carried by the flow stays where it was, and each turn gains a piece of the next
one slice after slice (on the File-menu scroll 3–6 % of each wrap's voxels sat on its
neighbour by the ends of the walk). ``recut`` cuts the objects' union on the new slice along
that slice's inner-end ray, completed from the image (``sheet.complete_sheet``: the gaps
the model's masks leave along the sheet; a turn the masks hold under half of is not
completed: ``sheet.weak_pieces``), and gives each piece to the object holding most of it;
pieces no object holds are left out. Nothing changes when the union does not wind, no inner
end is seen, or an object would lose or gain more than ``MOVE`` of its mask (an end seen in
the wrong place: a gap in the innermost turn).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .sheet import complete_sheet, grey_in, weak_pieces
from .winding import (MAX_SIDE, _polar_image, cut_pieces, inner_end_angle, offsets, pooled, sheet_centre,
                      union_in_box, winds)

MOVE = 0.3  # of an object's mask, the most a re-cut may move or take (8 phantoms: 0.05 0.927, 0.15 0.937, 0.3 0.941, 1.0 0.921)


def _dead_ends(added, union, near: float = 2.0) -> np.ndarray:
    """The image's pixels (``added``) that do not fill a gap: parts reaching more than
    ``near`` px from the masks that touch them in one place only (the sheet running on past a
    turn's end, over a bridge to the next turn: kept, it would creep on slice after slice).
    A gap along the sheet touches the masks at both its ends; a rim along a mask's edge stays
    within ``near`` px of it."""
    from scipy.ndimage import distance_transform_edt

    parts, n = ndimage.label(added)
    if not n:
        return np.zeros_like(added)
    far = np.unique(parts[added & (distance_transform_edt(~union) > near)])
    out = np.zeros_like(added)
    for i in far[far > 0]:
        part = parts == i
        _, touches = ndimage.label(ndimage.binary_dilation(part, np.ones((3, 3), bool)) & union)
        if touches < 2:
            out |= part
    return out


def _turns_beyond(union, sheet, centre) -> tuple[bool, bool]:
    """Whether the image's sheet has turns inside the masks' innermost one, and outside their
    outermost one (wraps left unclicked): along the rays from the centre the sheet's first
    (last) crossing comes more than half a turn's spacing before (after) the masks' (median
    over the rays). Inside: the masks' inner end is where their own innermost turn was cut,
    not the sheet's. Outside: the image's sheet runs on past the outermost turn's end."""
    r, _, polar = _polar_image(union, centre, 180)
    _, _, spolar = _polar_image(sheet, centre, 180)
    hit = polar.any(axis=0) & spolar.any(axis=0)
    if not hit.any():
        return False, False
    last = len(r) - 1
    first_u, first_s = r[np.argmax(polar, axis=0)][hit], r[np.argmax(spolar, axis=0)][hit]
    last_u, last_s = r[last - np.argmax(polar[::-1], axis=0)][hit], r[last - np.argmax(spolar[::-1], axis=0)][hit]
    rises = [r[1:][np.diff(col.astype(np.int8)) == 1] for col in polar.T[hit]]
    spacing = np.median([np.median(np.diff(x)) for x in rises if len(x) > 1] or [np.inf])
    return bool(np.median(first_u - first_s) > 0.5 * spacing), bool(np.median(last_s - last_u) > 0.5 * spacing)


def recut(masks, grey=None, max_side: int = MAX_SIDE, move: float | None = None) -> list:
    """The objects' ``masks`` (H, W) of one slice re-cut into turns along the ray through
    the sheet's inner end (see the module doc). ``grey``: (box, windowed pixels) of the
    slice covering the masks' box, or a function giving them (called only when the union
    winds), for completing the sheet (None: the union as it is).
    ``move``: default ``MOVE``. Returns new masks (the inputs unchanged), or the inputs when
    nothing is re-cut."""
    from skimage.segmentation import watershed

    move = MOVE if move is None else move
    masks = [np.asarray(m, bool) for m in masks]
    if len(masks) < 2:
        return masks
    union, box = union_in_box(masks)
    if union is None:
        return masks
    y0, x0, y1, x1 = box
    f, small = pooled(union, max_side)
    centre = sheet_centre(small)
    if not winds(small, centre):
        return masks
    centre = centre * f + (f - 1) / 2  # the rays are sampled at full resolution: cheap, and the end precise
    end = inner_end_angle(union, centre)
    if end is None:
        return masks
    image = grey_in(grey() if callable(grey) else grey, box)
    sheet = union if image is None else complete_sheet(union, image)
    inside, outside = _turns_beyond(union, sheet, centre) if image is not None else (False, False)
    if inside:
        return masks
    dy, dx = offsets(union.shape, centre)
    lab = cut_pieces(sheet, dy, dx, end)
    if image is not None:  # the image completes only gaps inside the turns the masks hold most of
        added = sheet & ~union
        drop = weak_pieces(lab, union) & added
        if outside:  # unclicked turns beyond the outermost: no creeping onto them over a bridge
            drop |= _dead_ends(added & (lab > 0), union)
        sheet = sheet & ~drop
        lab[~sheet] = 0
    crops = [m[y0:y1, x0:x1] for m in masks]
    votes = np.stack([np.bincount(lab[c], minlength=int(lab.max()) + 1) for c in crops])  # object x piece
    votes[:, 0] = 0
    lut = np.where(votes.max(axis=0) > 0, votes.argmax(axis=0) + 1, -1).astype(np.int32)
    lut[0] = 0  # the cut: to the nearest piece along the sheet
    markers = lut[lab]
    ws = watershed(np.zeros(union.shape, np.float32), np.maximum(markers, 0), mask=sheet & (markers >= 0))
    out = []
    for k, (m, c) in enumerate(zip(masks, crops), start=1):
        new = ws == k
        lost, gained = int((c & ~new).sum()), int((new & ~c).sum())
        if max(lost, gained) > move * c.sum():
            return masks
        o = m.copy()
        o[y0:y1, x0:x1] = new
        out.append(o)
    return out
