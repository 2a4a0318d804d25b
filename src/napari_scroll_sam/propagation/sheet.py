"""A scroll's sheet completed from what the image shows of it.

The model's masks of one click per wrap leave gaps along the turns; ``complete_sheet`` fills
them with the image's bright pixels inside the scroll's outline that touch the masks, and
``weak_pieces`` marks the pieces of a completed sheet that the masks only touched. Used by the
winding split of the click slice (``winding.winding_labels``) and the per-slice re-cut
(``recut.recut``); ``grey_in`` cuts a windowed slice crop to a box.
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
