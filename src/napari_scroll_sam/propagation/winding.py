"""Wraps of a rolled sheet told apart by their winding around the scroll's centre.

One click on each wrap of a scroll, all at once: the model's masks merge into one sheet (the
wraps touch), and that sheet must be shared out. A scroll's wraps are its turns around the
centre (the umbilicus): a wrap is the sheet between two crossings of one ray from the centre,
and the first turn starts at the sheet's inner end. ``winding_labels`` cuts the merged sheet
along the ray through that end (``inner_end_angle``: where the innermost crossing's radius
jumps by a turn going round), or the nearest ray that leaves each object's clicks on pieces
of their own; each piece goes to the object whose click it holds, a piece without a click
(a crack, a gap in the model's mask) by the order of the turns along the rays, a piece
holding two objects' clicks (the mask bridges two turns) is shared between those clicks
along the sheet. With no inner end to see (the innermost crossing never jumps) the ray is
the one farthest from every click. Measured with the *true* sheet of the File-menu scroll's
middle slice, one click at each wrap's deepest point (phantom seeds 0 / 1 / 2 / 3): 0.993 /
0.991 / 0.985 / 0.989 per wrap; the geodesic split midway between the clicks
(``engine.split_seeds(winding=False)``) 0.653 / 0.691 / 0.559 / 0.649.

A sheet that does not wind (cells, tumours, any union that some ray from its centre crosses
fewer than ``MIN_CROSSINGS`` times) is not split here (None), nor is a connected part of it
that holds one object's clicks only: the caller's geodesic split decides there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MIN_CROSSINGS = 3  # a sheet winds when every ray from its centre crosses it at least so often
SPREAD = 0.4  # how unevenly the rays may cross a sheet that winds (of the median count)
STEP_DEG = 2  # the angles tried for the cut
CUT_HALF_WIDTH = 1.0  # px each side of the ray
MIN_END_JUMP = 3.0  # px: the innermost crossing's jump that marks the sheet's inner end
SNAP_PX = 2  # a click this close to its own mask counts as on it
MAX_SIDE = 1024  # the ray is searched on the union pooled to at most this many px a side


def union_in_box(masks):
    """(union of ``masks`` in its box grown by 1 px, that box (y0, x0, y1, x1)), or
    (None, None) when every mask is empty."""
    from .prior import grow_box, mask_box

    full = np.logical_or.reduce([np.asarray(m, bool) for m in masks])
    if not full.any():
        return None, None
    y0, x0, y1, x1 = box = grow_box(mask_box(full), 1, full.shape)
    return full[y0:y1, x0:x1], box


def pooled(union, max_side: int = MAX_SIDE):
    """(f, the union pooled by f (any) to at most ``max_side`` px a side; itself when f = 1)."""
    from skimage.measure import block_reduce

    f = int(np.ceil(max(union.shape) / max_side))
    return f, (union if f == 1 else block_reduce(union, (f, f), np.any))


def union_winds(masks, max_side: int = MAX_SIDE) -> bool:
    """Whether the union of ``masks`` winds around its centre (a scroll's sheet), tested as
    ``winding_labels`` and ``recut`` test it."""
    union, _ = union_in_box(masks)
    if union is None:
        return False
    small = pooled(union, max_side)[1]
    return winds(small, sheet_centre(small))


def sheet_centre(union) -> np.ndarray:
    """(y, x) of the rolled sheet's centre: the centroid of the sheet with its gaps closed."""
    closed = ndimage.binary_fill_holes(ndimage.binary_closing(union, iterations=6, border_value=0) | union)
    return np.array(ndimage.center_of_mass(closed))


def offsets(shape, centre):
    """Every pixel's (dy, dx) from ``centre``, as a column and a row that broadcast (an 8k²
    slice's full pair would be 0.5 GB)."""
    dy = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(centre[0])
    dx = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(centre[1])
    return dy, dx


def crossings(union, centre, alpha) -> int:
    """How many times the ray from ``centre`` at ``alpha`` (radians; 0 along +x, pi/2
    along +y) enters the sheet."""
    on = _sample_rays(union, centre, np.array([alpha]))[1][:, 0].astype(np.int8)
    return int(np.sum(np.diff(on, prepend=0) == 1))


def winds(union, centre) -> bool:
    """Whether the sheet turns around ``centre``: every ray (every 15°) crosses it at least
    ``MIN_CROSSINGS`` times, and about as often as every other ray (the counts spread by at
    most ``max(2, SPREAD * median)``: a scroll's turns; a field of scattered blobs crosses
    some rays far more often than others). Measured: the model's masks of one click per
    wrap on phantom scrolls cross 6–8 times (8 wraps, spread ≤ 2); smoothed-noise fields
    (σ 2–5 px, 30–50 % foreground, 480 of them) pass the first test 263 times, both 0 times;
    the touching 14-wrap phantom's patchy masks (7–14) do not pass."""
    counts = np.array([crossings(union, centre, a) for a in np.deg2rad(np.arange(0, 360, 15))])
    return bool(counts.min() >= MIN_CROSSINGS and np.ptp(counts) <= max(2.0, SPREAD * np.median(counts)))


def cut_pieces(union, dy, dx, alpha):
    """The union cut along the ray at ``alpha`` (``dy``, ``dx``: ``offsets``), labelled
    (0: the cut, ``CUT_HALF_WIDTH`` px each side of the ray, and outside)."""
    ux, uy = np.cos(alpha), np.sin(alpha)
    cut = (dx * ux + dy * uy > 0) & (np.abs(dy * ux - dx * uy) <= CUT_HALF_WIDTH)
    return ndimage.label(union & ~cut)[0]


def _points(clicks, shape, on=None) -> list:
    """Per object, its clicks as (y, x) int pairs inside ``shape`` (and on the mask ``on``)."""
    out = []
    for pts in clicks:
        pts = np.floor(np.asarray(pts, float).reshape(-1, 2)).astype(int)
        keep = [(y, x) for y, x in pts if 0 <= y < shape[0] and 0 <= x < shape[1]]
        out.append([(y, x) for y, x in keep if on is None or on[y, x]])
    return out


def _separates(lab, points) -> bool:
    """Every click (on the union) on a piece, not on the cut, and no piece holding two
    objects' clicks."""
    owner = {}
    for k, pts in enumerate(points):
        for y, x in pts:
            i = lab[y, x]
            if i == 0 or owner.setdefault(i, k) != k:
                return False
    return True


def _sample_rays(image, centre, angles):
    """``image`` sampled every 0.5 px along rays from ``centre`` at ``angles`` (radians; 0
    along +x, pi/2 along +y): (radii, values [radius, angle]; 0 outside the image)."""
    r = np.arange(0.0, float(np.hypot(*image.shape)), 0.5)
    y = np.round(centre[0] + r[:, None] * np.sin(angles)).astype(int)
    x = np.round(centre[1] + r[:, None] * np.cos(angles)).astype(int)
    inside = (y >= 0) & (y < image.shape[0]) & (x >= 0) & (x < image.shape[1])
    vals = image[np.clip(y, 0, image.shape[0] - 1), np.clip(x, 0, image.shape[1] - 1)]
    return r, np.where(inside, vals, 0)


def _polar_image(union, centre, n_angles=720):
    """The union sampled on rays from ``centre``: (radii, angles, bool [radius, angle])."""
    a = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    r, polar = _sample_rays(union, centre, a)
    return r, a, polar.astype(bool)


def inner_end_angle(union, centre) -> float | None:
    """The angle (radians) of the sheet's inner end: where the radius of the innermost
    crossing jumps (by a turn) going round the centre. None when it jumps by under
    ``MIN_END_JUMP`` px (no end to see)."""
    r, a, polar = _polar_image(union, centre)
    hit = polar.any(axis=0)
    if not hit.all():
        return None
    first = ndimage.median_filter(r[np.argmax(polar, axis=0)], 5, mode="wrap")
    jump = np.abs(np.roll(first, -1) - first)
    i = int(np.argmax(jump))
    return None if jump[i] < MIN_END_JUMP else float((a[i] + np.pi / len(a)) % (2 * np.pi))


def cut_angle(union, centre, clicks) -> float | None:
    """The ray's angle (radians): through the sheet's inner end (a scroll's first turn starts
    there), or the nearest angle to it that leaves each object's clicks on pieces of their
    own (``clicks``: per object an (n, 2) array), or the inner end's when none does; with
    no inner end to see, the angle farthest from every click that separates them, or None."""
    dy, dx = offsets(union.shape, centre)
    points = _points(clicks, union.shape, on=union)
    end = inner_end_angle(union, centre)
    if end is not None and _separates(cut_pieces(union, dy, dx, end), points):
        return end  # the usual case: no search of the other angles
    angles = np.arange(0, 360, STEP_DEG)
    ok = np.array([_separates(cut_pieces(union, dy, dx, a), points) for a in np.deg2rad(angles)])
    if end is not None:
        if not ok.any():
            return end  # no ray separates them (the mask bridges two turns): cut at the end anyway
        gap = np.abs(np.angle(np.exp(1j * (np.deg2rad(angles) - end))))
        return float(np.deg2rad(angles[ok][np.argmin(gap[ok])]))
    if not ok.any():
        return None
    if ok.all():
        return 0.0
    start = int(np.argmin(ok))  # a rejected angle: the runs of accepted ones follow it, unbroken
    rolled = np.roll(ok, -start)
    best, run, best_end = 0, 0, 0
    for i, v in enumerate(rolled):
        run = run + 1 if v else 0
        if run > best:
            best, best_end = run, i
    mid = (start + best_end - (best - 1) / 2) % len(angles)
    return float(np.deg2rad(mid * STEP_DEG))


def _runs(lab, centre, n_angles=720):
    """Per ray (``n_angles`` around ``centre``), the pieces it crosses, inside out."""
    _, polar = _sample_rays(lab, centre, np.linspace(0, 2 * np.pi, n_angles, endpoint=False))
    out = []
    for col in polar.T:
        seq = col[col > 0]
        if len(seq):
            out.append(seq[np.r_[True, seq[1:] != seq[:-1]]])
    return out


def _by_turn_order(lab, owner: dict, centre) -> dict:
    """Pieces without a click (the sheet broken by a crack, a gap in the model's mask) given
    to an object by the order of the turns: the clicked pieces say which object's turn lies
    just outside which (counted along rays from the centre); a piece whose inner neighbour
    is object a's turn belongs to a's successor, one whose outer neighbour is b's to b's
    predecessor (majority of the rays through it). Pieces no ray decides are left out."""
    runs = _runs(lab, centre)
    n = max(owner.values(), default=0) + 1
    nxt = np.zeros((n, n), int)
    for seq in runs:
        ks = [owner.get(int(i), 0) for i in seq]
        for a, b in zip(ks[:-1], ks[1:]):
            if a and b and a != b:
                nxt[a, b] += 1
    succ = {a: int(np.argmax(nxt[a])) for a in range(1, n) if nxt[a].max() > 0}
    pred = {b: int(np.argmax(nxt[:, b])) for b in range(1, n) if nxt[:, b].max() > 0}
    votes: dict = {}
    for seq in runs:
        for j, piece in enumerate(seq):
            if int(piece) in owner:
                continue
            inner = owner.get(int(seq[j - 1]), 0) if j > 0 else 0
            outer = owner.get(int(seq[j + 1]), 0) if j + 1 < len(seq) else 0
            for k in (succ.get(inner), pred.get(outer)):
                if k:
                    v = votes.setdefault(int(piece), np.zeros(n, int))
                    v[k] += 1
    return {piece: int(np.argmax(v)) for piece, v in votes.items()}


def _turn_markers(union, centre, clicks, found=None):
    """The union's pieces (cut along the chosen ray) labelled with their object (0: the cut,
    pieces no one owns); a piece holding several objects' clicks (turns the mask bridges),
    and a click on the cut, keep only the clicks as markers, for the caller's watershed to
    share them out along the sheet. None when the union does not wind or no ray is found."""
    if not winds(union, centre):
        return None
    alpha = cut_angle(union, centre, clicks)
    if alpha is None:
        return None
    dy, dx = offsets(union.shape, centre)
    lab = cut_pieces(union, dy, dx, alpha)
    points = _points(clicks, union.shape, on=union)
    holders: dict = {}
    for k, pts in enumerate(points, start=1):
        for y, x in pts:
            holders.setdefault(int(lab[y, x]), set()).add(k)
    owner = {p: next(iter(ks)) for p, ks in holders.items() if p and len(ks) == 1}
    shared = {p for p, ks in holders.items() if p and len(ks) > 1}
    owner.update({p: k for p, k in _by_turn_order(lab, owner, centre).items() if p not in shared})
    lut = np.zeros(lab.max() + 1, np.int32)
    for piece, k in owner.items():
        lut[piece] = k
    markers = lut[lab]
    if found is not None:  # a completed sheet: what the image added to a turn the masks hold little of goes
        from .sheet import weak_pieces  # (sheet.py builds on this module's pooling)

        markers[weak_pieces(lab, found, holders) & ~found] = -1
    for k, pts in enumerate(points, start=1):
        for y, x in pts:
            if lab[y, x] == 0 or int(lab[y, x]) in shared:
                markers[y, x] = k
    return markers


def _snap(mask, clicks, radius: int = SNAP_PX) -> np.ndarray:
    """Clicks just off their own mask (a thin sheet's mask a pixel beside the click) moved to
    its nearest pixel within ``radius`` px; the others as they are."""
    out = np.asarray(clicks, float).reshape(-1, 2).copy()
    for i, (y, x) in enumerate(np.floor(out).astype(int)):
        if not (0 <= y < mask.shape[0] and 0 <= x < mask.shape[1]) or mask[y, x]:
            continue
        ya, xa = max(0, y - radius), max(0, x - radius)
        win = mask[ya:y + radius + 1, xa:x + radius + 1]
        if win.any():
            yy, xx = np.nonzero(win)
            j = int(np.argmin((yy + ya - y) ** 2 + (xx + xa - x) ** 2))
            if (yy[j] + ya - y) ** 2 + (xx[j] + xa - x) ** 2 <= radius ** 2:
                out[i] = (yy[j] + ya, xx[j] + xa)
    return out


def _keep_apart(markers) -> np.ndarray:
    """Pooled markers with the pixels next to another object's marker cleared (upsampled,
    the full-resolution watershed decides there)."""
    big = np.iinfo(np.int32).max
    hi = ndimage.maximum_filter(markers, 3)
    lo = ndimage.minimum_filter(np.where(markers > 0, markers, big), 3)
    return np.where((markers > 0) & ((hi != markers) | (lo != markers)), 0, markers)


def winding_labels(masks, clicks, centre=None, max_side: int = MAX_SIDE, grey=None) -> np.ndarray | None:
    """Share the union of ``masks`` out by winding. The union must wind around its centre
    (``centre`` (y, x), default ``sheet_centre``; the model's masks of one scroll slice come
    in 13–28 pieces, the largest 25–57 % of the union, so the union as a whole is the sheet,
    not a part of it). It is cut along one ray from the centre, each piece to the object
    whose click it holds, pieces without a click by the order of the turns
    (``_by_turn_order``), the cut and what is left to the nearest piece along the sheet.
    ``clicks``: per object an (n, 2) array of (y, x) positive points. Computed in the
    union's box, the ray searched at most ``max_side`` px a side (a larger box is pooled: an
    8k² scroll slice by 8). Returns int32 labels (k: the k-th object, 1-based; 0: not
    shared out here: a part holding one object's clicks only), or None when the union does
    not wind or no ray is found. ``grey``: (box, windowed pixels) of the slice covering the
    union's box (or a function giving them, called only when the union winds): the sheet is
    completed from the image first (``complete_sheet``), except on the turns the masks hold
    under half of and no click holds (``weak_pieces``)."""
    from skimage.segmentation import watershed

    from .sheet import complete_sheet, grey_in  # (sheet.py builds on this module's pooling)

    masks = [np.asarray(m, bool) for m in masks]
    union, box = union_in_box(masks)
    if len(masks) < 2 or union is None:
        return None
    clicks = [_snap(m, c) for m, c in zip(masks, clicks)]
    y0, x0, y1, x1 = box
    clicks = [np.asarray(c, float).reshape(-1, 2) - (y0, x0) for c in clicks]
    f, small = pooled(union, max_side)
    given = centre is not None
    centre = (np.asarray(centre, float) - (y0, x0)) / f if given else sheet_centre(small)
    found = None
    image = grey_in(grey() if callable(grey) else grey, (y0, x0, y1, x1)) if grey is not None and winds(
        small, centre) else None
    if image is not None:
        found = small
        union = complete_sheet(union, image)
        small = pooled(union, max_side)[1]
        centre = centre if given else sheet_centre(small)
    small_clicks = [c / f for c in clicks]
    sheet = small
    markers = _turn_markers(sheet, centre, small_clicks, found)
    if markers is None:
        return None
    if found is not None:
        sheet = sheet & (markers >= 0)
        markers = np.maximum(markers, 0)
    if f > 1:
        sheet = np.repeat(np.repeat(sheet, f, 0), f, 1)[: union.shape[0], : union.shape[1]] & union
        markers = np.repeat(np.repeat(_keep_apart(markers), f, 0), f, 1)[: union.shape[0], : union.shape[1]] * sheet
        for k, pts in enumerate(_points(clicks, union.shape, on=sheet), start=1):
            for y, x in pts:  # each click marks its own pixel at full resolution
                markers[y, x] = k
    if found is not None:
        union = sheet
    ws = watershed(np.zeros(union.shape, np.float32), markers, mask=sheet)
    parts, _ = ndimage.label(union, np.ones((3, 3), bool))
    owners: dict = {}
    for k, pts in enumerate(_points(clicks, union.shape, on=union), start=1):
        for y, x in pts:
            owners.setdefault(int(parts[y, x]), set()).add(k)
    lone = [p for p, ks in owners.items() if len(ks) == 1]
    ws[np.isin(parts, lone)] = 0
    out = np.zeros(masks[0].shape, np.int32)
    out[y0:y1, x0:x1] = ws
    return out


def winding_split(masks, clicks, centre=None, max_side: int = MAX_SIDE) -> list | None:
    """``winding_labels`` as one mask per object (None when no part winds)."""
    lab = winding_labels(masks, clicks, centre, max_side)
    return None if lab is None else [lab == k for k in range(1, len(masks) + 1)]

