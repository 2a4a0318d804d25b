"""Prompts made from a mask: how the previous slice's mask prompts the next one.

Each strategy is a small pure function of a 2D bool mask (and a seeded RNG where
it draws), returning (y, x) points or a (y0, x0, y1, x1) box in napari order.
``make_prompt(mask, strategy)`` combines them into a ``Prompt`` for the
predictor. Training samples its prompts with the same functions.

Strategies (names for ``make_prompt`` / ``STRATEGIES``):

========================  ======================================================
``box``                   tight box, grown by ``margin`` px (or a fraction of its size)
``centroid``              centre of mass, snapped into the mask when outside (curved sheets)
``gaussian_centre``       mask pixels weighted by a Gaussian around the box centre, snapped
``random``                a random pixel of the mask
``random_gaussian``       a random pixel, Gaussian-weighted around the box centre
``farthest``              the pixel farthest from the boundary (distance transform)
``skeleton``              ``n_points`` spread along the mask's skeleton (thin, curved sheets)
``box+farthest``          box plus the deepest point (the default for propagation)
``skeleton+background``   skeleton points plus background points at the box corners
``farthest+logits``       the deepest point plus the previous mask's logits as mask input
========================  ======================================================

Any strategy can add background points (``background=n``): the nearest pixel of
another object (``others``) first, then box corners outside the mask.
"""

from __future__ import annotations
from .errors import ScrollSamError

import dataclasses

import numpy as np
from scipy import ndimage


class EmptyMaskError(ScrollSamError, ValueError):
    """A prompt cannot be made from an empty mask."""


@dataclasses.dataclass
class Prompt:
    """Prompts for one object on one slice: points (K, 2) (y, x) with labels (K,)
    (1 foreground, 0 background), an optional box (y0, x0, y1, x1), and whether the
    previous mask's logits go in as mask input."""

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None
    use_logits: bool = False

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and self.box is None


def _check(mask) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a prompt is made from a 2D mask, got shape {m.shape}")
    if not m.any():
        raise EmptyMaskError("the mask is empty: no prompt can be made from it")
    return m


def bbox(mask) -> np.ndarray:
    """Tight box (y0, x0, y1, x1), inclusive pixel coordinates."""
    m = _check(mask)
    ys, xs = np.nonzero(m)
    return np.array([ys.min(), xs.min(), ys.max(), xs.max()], dtype=float)


def box(mask, margin: float = 0) -> np.ndarray:
    """Tight box grown (or shrunk, if negative) by ``margin``: pixels when |margin| >= 1,
    a fraction of the box's height/width when |margin| < 1; clipped to the slice."""
    m = _check(mask)
    y0, x0, y1, x1 = bbox(m)
    if abs(margin) < 1:
        dy, dx = margin * (y1 - y0 + 1), margin * (x1 - x0 + 1)
    else:
        dy = dx = float(margin)
    h, w = m.shape
    out = np.array([y0 - dy, x0 - dx, y1 + dy, x1 + dx])
    out = np.clip(out, 0, [h - 1, w - 1, h - 1, w - 1])
    if out[2] < out[0]:
        out[[0, 2]] = (y0 + y1) / 2
    if out[3] < out[1]:
        out[[1, 3]] = (x0 + x1) / 2
    return out


def snap(mask, point) -> np.ndarray:
    """The mask pixel nearest to ``point`` (the point itself when it is inside)."""
    m = _check(mask)
    y, x = np.round(point).astype(int)
    if 0 <= y < m.shape[0] and 0 <= x < m.shape[1] and m[y, x]:
        return np.array([y, x], dtype=float)
    ys, xs = np.nonzero(m)
    i = int(np.argmin((ys - point[0]) ** 2 + (xs - point[1]) ** 2))
    return np.array([ys[i], xs[i]], dtype=float)


def centroid(mask) -> np.ndarray:
    """Centre of mass, snapped into the mask (for a ring or an arc it falls outside)."""
    m = _check(mask)
    return snap(m, np.array(ndimage.center_of_mass(m)))


def _gaussian_weights(m, sigma_frac):
    y0, x0, y1, x1 = bbox(m)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    sy, sx = max(sigma_frac * (y1 - y0 + 1), 1.0), max(sigma_frac * (x1 - x0 + 1), 1.0)
    ys, xs = np.nonzero(m)
    w = np.exp(-0.5 * (((ys - cy) / sy) ** 2 + ((xs - cx) / sx) ** 2))
    return ys, xs, w


def gaussian_centre(mask, sigma_frac: float = 0.25) -> np.ndarray:
    """Mean of the mask's pixels weighted by a Gaussian around the box centre, snapped."""
    m = _check(mask)
    ys, xs, w = _gaussian_weights(m, sigma_frac)
    if w.sum() <= 0:
        return centroid(m)
    return snap(m, np.array([np.dot(ys, w) / w.sum(), np.dot(xs, w) / w.sum()]))


def random_point(mask, rng=None) -> np.ndarray:
    m = _check(mask)
    rng = np.random.default_rng(rng)
    ys, xs = np.nonzero(m)
    i = int(rng.integers(len(ys)))
    return np.array([ys[i], xs[i]], dtype=float)


def random_gaussian_point(mask, rng=None, sigma_frac: float = 0.25) -> np.ndarray:
    m = _check(mask)
    rng = np.random.default_rng(rng)
    ys, xs, w = _gaussian_weights(m, sigma_frac)
    p = w / w.sum() if w.sum() > 0 else None
    i = int(rng.choice(len(ys), p=p))
    return np.array([ys[i], xs[i]], dtype=float)


def farthest_from_boundary(mask) -> np.ndarray:
    """The pixel deepest inside the mask (largest distance to the background; the slice's
    border counts as background). Computed in the mask's box only, by OpenCV's exact distance
    transform when installed (``propagation.flow.edt``: a 300² box 9 → 1 ms; the same point,
    ties included)."""
    from .propagation.flow import edt  # (not at import: propagation imports this module)

    m = _check(mask)
    ys, xs = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    y0, x0 = ys[0], xs[0]
    dist = edt(np.pad(m[y0:ys[-1] + 1, x0:xs[-1] + 1], 1))[1:-1, 1:-1]
    # the exact squared distance is a whole number of px²: rounded, OpenCV's float32 distances
    # tie where scipy's do (OpenCV 5 differs from them by 1e-7, enough to break a tie elsewhere)
    sq = np.rint(np.square(dist, dtype=np.float64))
    y, x = np.unravel_index(int(np.argmax(sq)), sq.shape)
    return np.array([y + y0, x + x0], dtype=float)


def skeleton_points(mask, n: int = 3) -> np.ndarray:
    """``n`` points spread along the skeleton of the mask's largest component, in
    order along it (for thin curved sheets, where one box covers several wraps)."""
    from skimage.morphology import skeletonize

    m = _check(mask)
    lab, k = ndimage.label(m)
    if k > 1:
        sizes = ndimage.sum(m, lab, range(1, k + 1))
        m = lab == (int(np.argmax(sizes)) + 1)
    skel = skeletonize(m)
    ys, xs = np.nonzero(skel)
    if len(ys) == 0:
        return farthest_from_boundary(m)[None]
    order = _walk_order(ys, xs)
    ys, xs = ys[order], xs[order]
    if n == 1:
        idx = [len(ys) // 2]
    else:  # spread evenly, away from the skeleton's very ends
        idx = np.linspace(0, len(ys) - 1, n + 2)[1:-1].round().astype(int)
    return np.stack([ys[idx], xs[idx]], axis=1).astype(float)


def _walk_order(ys, xs):
    """Order skeleton pixels along the curve: geodesic distance (8-connected steps) from
    one end, found by a double sweep (the pixel farthest from any pixel is an end).
    Vectorised: O(n) graph building and a breadth-first search in scipy."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, shortest_path

    n = len(ys)
    if n <= 2:
        return np.arange(n)
    index = -np.ones((ys.max() + 3, xs.max() + 3), np.int64)
    index[ys + 1, xs + 1] = np.arange(n)
    rows, cols = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        nb = index[ys + 1 + dy, xs + 1 + dx]
        ok = nb >= 0
        rows.append(np.arange(n)[ok])
        cols.append(nb[ok])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    graph = graph + graph.T
    def farthest_from(start):
        d = shortest_path(graph, unweighted=True, indices=start)
        return int(np.argmax(np.where(np.isinf(d), -1, d)))

    end = farthest_from(farthest_from(0))
    dist = shortest_path(graph, unweighted=True, indices=end)
    reach = np.isfinite(dist)
    order = np.argsort(np.where(reach, dist, np.inf), kind="stable")
    return order[: int(reach.sum())] if reach.sum() > 1 else breadth_first_order(graph, end)[0]


def background_points(mask, n: int = 2, others=None) -> np.ndarray:
    """Up to ``n`` background points: the pixel of ``others`` (other objects' mask)
    nearest to this mask first, when given (it tells SAM where this object ends), then
    corners of the box grown by 2 px that lie outside the mask and the other objects."""
    m = _check(mask)
    y0, x0, y1, x1 = box(m, margin=2)
    pts = []
    if others is not None:
        o = np.asarray(others, bool) & ~m
        if o.any():
            dist = ndimage.distance_transform_edt(~m)
            oy, ox = np.nonzero(o)
            i = int(np.argmin(dist[oy, ox]))
            pts.append((oy[i], ox[i]))
    for p in ((y0, x0), (y1, x1), (y0, x1), (y1, x0)):
        yi, xi = int(round(p[0])), int(round(p[1]))
        if not m[yi, xi] and (others is None or not np.asarray(others)[yi, xi]):
            pts.append((yi, xi))
    return np.asarray(pts[:n], dtype=float).reshape(-1, 2)


# --- combining them -------------------------------------------------------------

STRATEGIES = ("box", "centroid", "gaussian_centre", "random", "random_gaussian", "farthest", "skeleton",
              "box+farthest", "skeleton+background", "farthest+logits")


def make_prompt(mask, strategy: str = "box+farthest", *, margin: float = 0.1, n_points: int = 3,
                background: int = 0, others=None, rng=None) -> Prompt:
    """A ``Prompt`` from ``mask`` by ``strategy`` (see the module's table).

    ``strategy`` may join parts with ``+`` ("box+centroid", "skeleton+logits"…);
    ``background`` adds that many background points. Raises ``EmptyMaskError``
    for an empty mask.
    """
    m = _check(mask)
    parts = strategy.split("+")
    unknown = [p for p in parts if p not in _PARTS]
    if unknown or not parts:
        raise ValueError(f"unknown prompt strategy {strategy!r}; use one of: {', '.join(STRATEGIES)} "
                         f"(parts joined by '+': {', '.join(_PARTS)})")
    pts, lab, the_box, logits = [], [], None, False
    for part in parts:
        if part == "box":
            the_box = box(m, margin)
        elif part == "logits":
            logits = True
        elif part == "background":
            bg = background_points(m, max(background, 2), others)
            pts.extend(bg)
            lab.extend([0] * len(bg))
        else:
            p = _PARTS[part](m, n_points=n_points, rng=rng)
            p = np.atleast_2d(p)
            pts.extend(p)
            lab.extend([1] * len(p))
    if background and "background" not in parts:
        bg = background_points(m, background, others)
        pts.extend(bg)
        lab.extend([0] * len(bg))
    return Prompt(np.asarray(pts, float).reshape(-1, 2), np.asarray(lab, float), the_box, logits)


_PARTS = {
    "box": None,
    "logits": None,
    "background": None,
    "centroid": lambda m, **k: centroid(m),
    "gaussian_centre": lambda m, **k: gaussian_centre(m),
    "random": lambda m, rng=None, **k: random_point(m, rng),
    "random_gaussian": lambda m, rng=None, **k: random_gaussian_point(m, rng),
    "farthest": lambda m, **k: farthest_from_boundary(m),
    "skeleton": lambda m, n_points=3, **k: skeleton_points(m, n_points),
}
