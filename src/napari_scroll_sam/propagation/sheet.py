"""A scroll's sheet completed from what the image shows of it.

The model's masks of one click per wrap leave gaps along the turns; ``complete_sheet`` fills
them with the image's bright pixels inside the scroll's outline that touch the masks, and
``weak_pieces`` marks the pieces of a completed sheet that the masks only touched. Used by the
winding split of the click slice (``winding.winding_labels``) and the per-slice re-cut
(``recut.recut``); ``grey_in`` cuts a windowed slice crop to a box. ``lone_turn`` / ``box_turn``:
the turn one object clicked alone / boxed lies on, read from the image; ``turn_of_prompt`` the
one rule choosing between them for a prompt.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .winding import MAX_SIDE, pooled

FOUND_SHARE = 0.5  # the image completes a turn of the sheet only where the masks hold this much of it
HULL_PX = 3  # the scroll's outline: its sheet's convex hull, so much wider


def weak_pieces(lab, found, keep=()) -> np.ndarray:
    """Pixels of the pieces (``lab``) of a completed sheet that the masks (``found``) cover
    under ``FOUND_SHARE`` of (pieces in ``keep``, e.g. those holding a click, excepted): a
    turn the model's masks only touched. The image's pixels there are not the object's."""
    n = int(lab.max()) + 1
    total = np.bincount(lab.ravel(), minlength=n)
    seen = np.bincount(lab[found], minlength=n)
    weak = seen < FOUND_SHARE * total
    weak[0] = False
    weak[[int(k) for k in keep if 0 < int(k) < n]] = False
    return weak[lab]


def _outline(union, max_side: int = MAX_SIDE) -> np.ndarray:
    """The union's convex hull, ``HULL_PX`` wider; on a large union the hull of the union
    pooled to at most ``max_side`` px a side (its cost grows with the pixels)."""
    from skimage.morphology import convex_hull_image

    f, small = pooled(union, max_side)
    if f == 1:
        return ndimage.binary_dilation(convex_hull_image(union), iterations=HULL_PX)
    small = ndimage.binary_dilation(convex_hull_image(small), iterations=max(1, int(np.ceil(HULL_PX / f))))
    return np.repeat(np.repeat(small, f, 0), f, 1)[: union.shape[0], : union.shape[1]]


def complete_sheet(union, image, min_size: int = 16) -> np.ndarray:
    """The sheet the model's masks found, completed with what the image shows of it: the
    pixels of ``image`` (windowed grey, the union's shape) brighter than Otsu's threshold
    inside the scroll's outline (the union's convex hull, ``HULL_PX`` wider: the outer rim of
    a gap in the outermost turn bulges past the hull's chord), in parts that touch the
    union (bright specks under ``min_size`` px dropped). The model's masks of one click per
    wrap leave gaps along the turns (a tenth of the File-menu scroll's sheet, a whole turn
    near its centre on phantom seed 1); the image shows them."""
    from skimage.filters import threshold_otsu

    disc = _outline(union)
    vals = image[disc]
    if vals.size < 2 or np.ptp(vals) == 0:
        return union
    bright = (image > threshold_otsu(vals)) & disc & ~union
    specks, n = ndimage.label(bright)
    if n:
        bright &= (np.bincount(specks.ravel(), minlength=n + 1) >= min_size)[specks]
    lab, _ = ndimage.label(bright | union)
    keep = np.unique(lab[union])
    return np.isin(lab, keep[keep > 0])


def grey_in(grey, box) -> np.ndarray | None:
    """The windowed slice ``grey`` = (its box, its pixels) inside ``box``; None when ``grey``
    is None or does not cover ``box``."""
    if grey is None:
        return None
    (gy0, gx0, gy1, gx1), arr = grey
    y0, x0, y1, x1 = box
    if not (gy0 <= y0 and gx0 <= x0 and y1 <= gy1 and x1 <= gx1):
        return None
    return np.asarray(arr)[y0 - gy0:y1 - gy0, x0 - gx0:x1 - gx0]


def _cut_sheet(mask, anchors, grey, min_size):
    """The sheet around ``mask`` read from ``grey`` = (box, windowed pixels): its pixels
    brighter than Otsu's threshold (specks under ``min_size`` px dropped) with the mask, cut
    along one ray (``winding.cut_angle``, away from ``anchors``) into turns. Returns (the
    pieces pooled to ``winding.MAX_SIDE``, the pooling factor, the sheet, the crop's box,
    the anchors in pooled crop coordinates) or None when the sheet does not wind around its
    centre or no ray is found."""
    from skimage.filters import threshold_otsu

    from .winding import cut_angle, cut_pieces, offsets, sheet_centre, winds

    (y0, x0, y1, x1), image = grey
    image = np.asarray(image)
    if np.ptp(image) == 0:
        return None
    sheet = image > threshold_otsu(image)
    specks, n = ndimage.label(sheet)
    if n:
        sheet &= (np.bincount(specks.ravel(), minlength=n + 1) >= min_size)[specks]
    sheet |= mask[y0:y1, x0:x1]
    f, small = pooled(sheet, MAX_SIDE)
    centre = sheet_centre(small)
    local = (np.asarray(anchors, float).reshape(-1, 2) - (y0, x0)) / f
    if not winds(small, centre):
        return None
    alpha = cut_angle(small, centre, [local])
    if alpha is None:
        return None
    return cut_pieces(small, *offsets(small.shape, centre), alpha), f, sheet, (y0, x0, y1, x1), local


def _full(pieces, f, sheet):
    """Pooled pieces back at the crop's resolution, on the sheet's pixels."""
    if f > 1:
        pieces = np.repeat(np.repeat(pieces, f, 0), f, 1)[: sheet.shape[0], : sheet.shape[1]] * sheet
    return pieces


def _placed(turn, box, mask):
    """``turn`` (the crop's) in the mask's frame; None when under 0.3 or over 3 times the
    mask's area (turns that touch merge into one piece)."""
    y0, x0, y1, x1 = box
    out = np.zeros(mask.shape, bool)
    out[y0:y1, x0:x1] = turn
    if not 0.3 * mask.sum() <= out.sum() <= 3 * mask.sum():
        return None
    return out


def lone_turn(mask, clicks, grey, min_size: int = 16):
    """The turn of a scroll's sheet that one clicked object lies on, when it was clicked alone:
    the model's mask of one click runs on along the next turn (the File-menu scroll's wraps
    0.15-0.93 IoU on the click slice), and the winding split needs the other wraps' clicks.
    The sheet is read from the image (``grey`` = (box, windowed pixels) around the mask):
    its pixels brighter than Otsu's threshold (specks under ``min_size`` px dropped) with the
    mask; when that sheet winds around its centre (``winding.winds``) it is cut along one ray
    (``winding.cut_angle``, the sheet's inner end first) and the piece holding the click is
    the turn (0.98-0.99 per wrap on the File-menu scroll, 0.26-0.97 on the touching one).
    None (keep the mask) when it does not wind (cells, tumours), when no ray is found, when
    the click falls on the cut, or when the turn is under 0.3 or over 3 times the mask's area
    (turns that touch merge into one piece)."""
    mask = np.asarray(mask, bool)
    pts = np.asarray(clicks, float).reshape(-1, 2)
    if grey is None or not len(pts) or not mask.any():
        return None
    cut = _cut_sheet(mask, pts, grey, min_size)
    if cut is None:
        return None
    pieces, f, sheet, box, local = cut
    yy, xx = np.clip(np.floor(local[0]).astype(int), 0, np.array(pieces.shape) - 1)
    k = pieces[yy, xx]
    if not k:
        return None
    return _placed(_full(pieces == k, f, sheet) > 0, box, mask)


def box_turn(mask, box, grey, min_size: int = 16):
    """The turn of a scroll's sheet a box prompt was drawn around: the sheet is read and cut
    into turns as for ``lone_turn`` (the mask's deepest point kept off the cut), and the turn
    whose bounding box best matches the prompt's (IoU of the two boxes) is the object: the
    user's box says where the turn is, while the model's mask of a box runs over the turns it
    crosses (true box on the File-menu scroll 0.77 -> 0.88, the touching one 0.36 -> 0.75).
    ``box`` = (y0, x0, y1, x1), ends included, in the mask's frame. None as for ``lone_turn``."""
    from ..prompts import farthest_from_boundary

    mask = np.asarray(mask, bool)
    if grey is None or not mask.any():
        return None
    cut = _cut_sheet(mask, farthest_from_boundary(mask)[None], grey, min_size)
    if cut is None:
        return None
    pieces, f, sheet, (y0, x0, y1, x1), _ = cut
    full = _full(pieces, f, sheet)
    by, bx, ey, ex = (float(v) for v in np.asarray(box, float).reshape(4))
    best, best_k = 0.0, 0
    for k, sl in enumerate(ndimage.find_objects(full), start=1):
        if sl is None:
            continue
        py, px, qy, qx = sl[0].start + y0, sl[1].start + x0, sl[0].stop - 1 + y0, sl[1].stop - 1 + x0
        inter = max(0.0, min(qy, ey) - max(py, by)) * max(0.0, min(qx, ex) - max(px, bx))
        union = (qy - py) * (qx - px) + (ey - by) * (ex - bx) - inter
        if union > 0 and inter / union > best:
            best, best_k = inter / union, k
    if not best_k:
        return None
    return _placed(full == best_k, (y0, x0, y1, x1), mask)


def _around(box, shape):
    from .prior import grow_box

    return grow_box(box, max(box[2] - box[0], box[3] - box[1]) + 12, shape)


def turn_around(mask, clicks, read):
    """``lone_turn`` with the slice read around the wrap: its box grown by its own size (the
    scroll's turns around it), ``read(box)`` giving the windowed pixels of a (y0, x0, y1, x1)
    box."""
    from .prior import mask_box

    b = mask_box(mask)
    if b is None or not len(np.asarray(clicks, float).reshape(-1, 2)):
        return None
    box = _around(b, np.shape(mask))
    return lone_turn(mask, clicks, (box, read(box)))


def turn_of_prompt(mask, read, points=None, labels=None, box=None):
    """The one rule for what one object's prompt on a scroll gives (the walk's seeds, the
    Segment widget's S, the benchmark's ceiling as S shows it): with a positive click, the
    turn the first click lies on (``lone_turn``); with a box and no positive click, the turn
    the box was drawn around (``box_turn``); None (keep the model's ``mask``) for anything
    else, or where the sheet does not wind (cells, tumours). ``read(box)`` gives the windowed
    pixels of a (y0, x0, y1, x1) box of the slice."""
    from .prior import mask_box

    pos = np.zeros((0, 2))
    if points is not None and labels is not None and np.size(points):
        pos = np.asarray(points, float).reshape(-1, 2)[np.asarray(labels).reshape(-1) > 0]
    if len(pos):
        return turn_around(mask, pos, read)
    if box is None or np.size(box) != 4:
        return None
    b = mask_box(np.asarray(mask, bool))
    if b is None:
        return None
    by, bx, ey, ex = (int(round(float(v))) for v in np.asarray(box, float).reshape(4))
    h, w = np.shape(mask)
    b = (max(0, min(b[0], by)), max(0, min(b[1], bx)), min(h - 1, max(b[2], ey)), min(w - 1, max(b[3], ex)))
    region = _around(b, (h, w))
    return box_turn(mask, box, (region, read(region)))
