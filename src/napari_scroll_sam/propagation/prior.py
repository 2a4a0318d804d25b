"""The motion prior: the last accepted mask carried to the next slice by optical flow.

``MotionField.between(prev, nxt, box)`` estimates the dense displacement from slice ``nxt``
back to slice ``prev`` inside ``box`` (y0, x0, y1, x1) only (``flow``: OpenCV's DIS flow by
default, scikit-image's ILK as the alternative) on the windowed intensities, at a reduced
resolution when the box is large (the flow is smooth, so a coarse field holds: the box is
brought to at most ``max_side`` pixels on its longer side, then the field is scaled back).
``field.warp(mask)`` carries any number of masks with the same field (one flow per slice
and box, shared by every object in it).

Cost grows with the box, not the slice: an 8k² slice costs what its objects' boxes cost
(figures per box size in ``benchmarks/bench_propagate.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from .flow import edt, flow, sample


def window(a, contrast_limits) -> np.ndarray:
    """Intensities → float32 in [0, 1] by the volume's window; non-finite voxels → 0."""
    lo, hi = (float(v) for v in contrast_limits)
    out = (np.asarray(a, np.float32) - lo) / max(hi - lo, 1e-12)
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def grow_box(box, margin, shape) -> tuple:
    y0, x0, y1, x1 = box
    return (max(0, int(y0) - margin), max(0, int(x0) - margin),
            min(shape[0], int(y1) + margin + 1), min(shape[1], int(x1) + margin + 1))


def mask_box(mask) -> tuple | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if not len(ys):
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1])


@dataclasses.dataclass
class MotionField:
    """Displacement (dy, dx) at each pixel of ``box`` of the next slice, pointing to where
    that pixel was on the previous slice."""

    box: tuple  # (y0, x0, y1, x1), half-open
    flow: np.ndarray  # (2, h, w) float32
    shape: tuple  # slice (H, W)

    @classmethod
    def between(cls, prev, nxt, box, shape, radius: int = 7, max_side: int = 256, num_warp: int = 10,
                method: str = "ilk") -> "MotionField":
        """Flow from ``nxt`` back to ``prev`` (both windowed crops of ``box``), by ``flow``."""
        return cls(tuple(box), flow(prev, nxt, method, radius, max_side, num_warp), tuple(shape))

    @classmethod
    def still(cls, box, shape) -> "MotionField":
        y0, x0, y1, x1 = box
        return cls(tuple(box), np.zeros((2, y1 - y0, x1 - x0), np.float32), tuple(shape))

    def warp(self, sdf) -> np.ndarray:
        """A signed distance map (H, W) (``signed_distance``: > 0 inside) on the previous
        slice → its place on the next slice, interpolated linearly. Carrying the distance,
        not a re-thresholded mask, keeps thin sheets from eroding or swelling a little every
        slice (on the File-menu scroll: IoU 0.83 over 32 slices instead of 0.63), and linear
        interpolation of a distance moves its zero line without blurring it. Pixels outside
        the box keep their value (the box covers the mask with a margin)."""
        y0, x0, y1, x1 = self.box
        out = np.array(sdf, np.float32, copy=True)
        crop = out[y0:y1, x0:x1]
        if not (crop > 0).any():
            return out
        gy, gx = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        out[y0:y1, x0:x1] = sample(crop, gy + self.flow[0], gx + self.flow[1])
        return out

    def displacement(self, mask) -> float:
        """How far the mask's pixels move (90th percentile of |flow| on the mask's box), px."""
        y0, x0, y1, x1 = self.box
        crop = mask[y0:y1, x0:x1]
        if not crop.any():
            return 0.0
        mag = np.hypot(self.flow[0][crop], self.flow[1][crop])
        return float(np.percentile(mag, 90))


class Track:
    """A mask carried through the slices by composing motion fields, resampled once.

    Warping a mask (or a distance map) again on every slice blurs or rounds it a little each
    time: a 2 px sheet moving 0.3 px a slice stays put as a bool mask and fades away as a
    distance map. A track instead keeps the source mask's signed distance map and the total
    displacement from each pixel of the current slice back to the source slice (the fields
    composed: ``d_new(p) = u(p) + d_old(p + u(p))``, smooth, so linear interpolation holds);
    the mask on the current slice is the source sampled once through it. Both live in boxes
    around the object only.
    """

    def __init__(self, mask, cap: float = 8.0):
        b = mask_box(mask)
        self.cap = float(cap)
        self.shape = tuple(mask.shape)
        self.src_box = grow_box(b, int(np.ceil(cap)) + 1, mask.shape) if b else (0, 0, 1, 1)
        self.src = signed_distance(mask, cap)[self.src_box[0]:self.src_box[2], self.src_box[1]:self.src_box[3]]
        self.box = self.src_box
        h, w = self.src.shape
        self.disp = np.zeros((2, h, w), np.float32)

    def advance(self, field: "MotionField") -> None:
        """Onto the next slice: the displacement now lives in ``field.box``."""
        y0, x0, y1, x1 = field.box
        by0, bx0 = self.box[:2]
        gy, gy_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        qy, qx = gy + field.flow[0], gy_x + field.flow[1]
        old = [sample(c, qy - by0, qx - bx0, cval=0.0) for c in self.disp]
        self.disp = np.stack([field.flow[0] + old[0], field.flow[1] + old[1]]).astype(np.float32)
        self.box = tuple(field.box)

    def sdf(self) -> np.ndarray:
        """The signed distance on the current slice, full size (outside the box: -cap)."""
        y0, x0, y1, x1 = self.box
        sy0, sx0 = self.src_box[:2]
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        out = np.full(self.shape, -self.cap, np.float32)
        out[y0:y1, x0:x1] = sample(self.src, gy + self.disp[0] - sy0, gx + self.disp[1] - sx0, cval=-self.cap)
        return out


def signed_distance(mask, cap: float = 8.0) -> np.ndarray:
    """float32 (H, W): + distance to the background inside the mask, - distance to the mask
    outside, half a pixel off so that the boundary lies between pixels, clipped to
    +-``cap`` (computed in the mask's box grown by ``cap`` only: cheap on large slices)."""
    out = np.full(mask.shape, -cap, np.float32)
    b = mask_box(mask)
    if b is None:
        return out
    y0, x0, y1, x1 = grow_box(b, int(np.ceil(cap)) + 1, mask.shape)
    m = np.asarray(mask[y0:y1, x0:x1], bool)
    inside = edt(m) - 0.5
    outside = edt(~m) - 0.5
    out[y0:y1, x0:x1] = np.clip(np.where(m, inside, -outside), -cap, cap)
    return out


RELATIVE = 0.5  # reach <= half the object's inradius (touching scroll P1 0.39 -> 0.77; File-menu scroll, EM unchanged)
# A prompted mask (segment_slice, the walk's clicked seeds) is refined in a wider band: inside its
# core (4 px in, at most half its inradius) and beyond 8 px out (at most its inradius, at least
# 2 px; outside the prompt's box too) the model is trusted, between them the image's edges
# decide. Chosen on the TRAIN split (ISBI z 0-9, chloroplast x < 1600, phantoms 1000-1001):
# mean true box 0.628 -> 0.686, one click 0.475 -> 0.510 (benchmarks/refine_calibrate.py).
REFINE_INNER = 4.0
REFINE_OUTER = 8.0


def snap(sdf, image, box, reach: float = 2.0, sigma: float = 1.0, others=None, outer: float | None = None,
         allowed=None) -> np.ndarray:
    """The prior snapped to the image's edges: a watershed of the (Gaussian-smoothed) gradient
    magnitude, grown from the prior's core (distance > ``reach`` px inside, or half the sheet's
    thickness for thin sheets) against its outside (> ``reach`` px out), computed only in the
    band of pixels within ``reach`` + 1 px of the prior's boundary (inside ``box``; the rest
    cannot change), so it costs the boundary's length, not the box's area. ``others`` (H, W):
    pixels the other objects walking on the slice hold; they count as outside, so the
    snapped mask never grows onto a touching neighbour. ``outer``: the outside starts this
    many px out instead (at most the object's inradius, at least 2 px: a wider band for
    the model's masks, ``refine``); ``allowed`` (H, W): pixels the mask may hold at all (the
    rest counts as outside). Returns the mask (H, W)."""
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    out = sdf > 0
    b = mask_box(out)
    if b is None:
        return out
    depth = float(sdf[b[0]:b[2] + 1, b[1]:b[3] + 1].max()) + 0.5  # the object's half thickness (its inradius), px
    far = reach if outer is None else max(2.0, min(float(outer), depth))
    pad = int(np.ceil(max(reach, far) + 4 * sigma)) + 3  # the filters see what they saw in the whole box
    y0, x0, y1, x1 = grow_box(b, pad, sdf.shape)
    y0, x0 = max(y0, box[0]), max(x0, box[1])
    y1, x1 = min(y1, box[2]), min(x1, box[3])
    s = sdf[y0:y1, x0:x1]
    reach = min(reach, RELATIVE * depth)  # thin sheets: a fraction of their own half thickness
    if outer is None:
        far = reach
    inside = s > min(reach, 0.5 * float(s.max()))
    if not inside.any():
        return out
    markers = np.zeros(s.shape, np.int32)
    markers[s < -far] = 1
    if others is not None:
        markers[others[y0:y1, x0:x1] & ~inside] = 1
    if allowed is not None:
        markers[~allowed[y0:y1, x0:x1] & ~inside] = 1
    markers[inside] = 2
    band = (s >= -far - 1) & (s <= reach + 1) | (markers > 0) & ndimage.binary_dilation(markers == 0)
    img = image[y0 - box[0]:y1 - box[0], x0 - box[1]:x1 - box[1]]
    edges = sobel(ndimage.gaussian_filter(img, sigma) if sigma else img)
    ws = watershed(edges, markers, mask=band)
    crop = out[y0:y1, x0:x1]
    crop[band] = ws[band] == 2
    return out


def refine(mask, grey, box=None, inner: float = REFINE_INNER, outer: float = REFINE_OUTER,
           sigma: float = 1.0) -> np.ndarray:
    """A mask the model drew from a prompt, its boundary settled on the image's edges
    (``snap`` in the band from ``inner`` px inside to ``outer`` px outside; see
    ``REFINE_INNER``). ``grey``: (crop box (y0, x0, y1, x1), windowed pixels of the slice
    there) covering the mask's box grown by ``refine_pad``; ``box``: the prompt's box
    (y0, x0, y1, x1), outside which the mask does not grow. The model's mask is returned
    unchanged when it is empty or ``grey`` does not cover it. Costs the crop, not the slice."""
    mask = np.asarray(mask, bool)
    b = mask_box(mask)
    if b is None or grey is None:
        return mask
    (cy0, cx0, cy1, cx1), pixels = grey
    if not (cy0 <= b[0] and cx0 <= b[1] and b[2] < cy1 and b[3] < cx1):
        return mask
    m = mask[cy0:cy1, cx0:cx1]
    allowed = None
    if box is not None:
        y0, x0, y1, x1 = np.round(np.asarray(box, float)).astype(int) - [cy0, cx0, cy0, cx0]
        allowed = np.zeros(m.shape, bool)
        allowed[max(0, y0 - 1):max(0, y1 + 2), max(0, x0 - 1):max(0, x1 + 2)] = True
    sdf = signed_distance(m, cap=outer + 2)
    got = snap(sdf, np.asarray(pixels, np.float32), (0, 0) + m.shape, inner, sigma, outer=outer, allowed=allowed)
    out = mask.copy()
    out[cy0:cy1, cx0:cx1] = got
    return out


def refine_pad(outer: float = REFINE_OUTER, sigma: float = 1.0) -> int:
    """Pixels around a mask's box that ``refine`` reads."""
    return int(np.ceil(outer + 4 * sigma)) + 4


def corridor(prior, reach: float) -> np.ndarray:
    """Pixels within ``reach`` px of the prior (a disc dilation)."""
    r = max(0, int(np.ceil(reach)))
    if r == 0:
        return np.asarray(prior, bool)
    box = mask_box(prior)
    if box is None:
        return np.zeros_like(prior, bool)
    y0, x0, y1, x1 = grow_box(box, r + 1, prior.shape)
    out = np.zeros_like(prior, bool)
    dist = edt(~prior[y0:y1, x0:x1])
    out[y0:y1, x0:x1] = dist <= reach
    return out


def touching(mask, prior) -> np.ndarray:
    """The components of ``mask`` that overlap ``prior`` (others dropped)."""
    if not mask.any():
        return mask
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask if (mask & prior).any() else np.zeros_like(mask)
    keep = np.unique(lab[prior & mask])
    keep = keep[keep > 0]
    return np.isin(lab, keep)
