"""Synthetic carbonized-scroll CT phantom, generated lazily chunk by chunk.

Geometry (each z slice is a cross-section in (y, x)): a papyrus sheet rolled
into an Archimedean spiral around a centre ``c(z)``.  In polar coordinates
``(r, theta)`` about the centre, the deformed radius
``r' = r / (b(z) * (1 + e(theta)))`` (``b``: slow radial "breathing", ``e``: a
fixed 2- and 3-fold squash) gives the spiral coordinate
``v = (r' - r0) / pitch - (theta - phi(z)) / 2pi``.  Wrap ``k = floor(v)``
(label ``k + 1``) holds the voxels with depth ``u = frac(v) * pitch`` below the
local thickness ``th(t, z)``, ``t`` being the unrolled angle; the rest of the
pitch is the air gap to the next wrap.  Centre, phase ``phi`` and breathing vary
smoothly with z, so sheets move a fraction of a pixel per slice.

Texture lives in the unrolled sheet coordinates (arc length ``s``, ``z``): an
inner layer of fibres along the arc, an outer layer of fibres along z, a slow
density variation, and a few small cracks (holes through the sheet).  Ink is
Greek-capital-like glyphs laid out in text columns in (s, z), occupying a thin
layer at the sheet's outer surface, slightly brighter than papyrus.

Every value is a pure function of ``(seed, z, y, x)`` (integer hashing for
noise) and of a few parameters drawn once from ``default_rng(seed)``, so a
voxel never depends on the chunking, and nothing is computed until asked.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple

import dask.array as da
import numpy as np

AIR, PAPER, FIBRE, DENSITY, INK, NOISE = 10000.0, 31000.0, 2500.0, 1500.0, 3500.0, 1500.0
CONTRAST_LIMITS = (AIR - 2 * NOISE, PAPER + FIBRE + INK + 2 * NOISE)
_TAU = 2 * np.pi
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_PRIMES = tuple(np.uint64(p) for p in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9))


class ScrollPhantom(NamedTuple):
    """Lazy phantom volumes, all (z, y, x) dask arrays."""

    image: da.Array  #: uint16 CT intensities
    sheets: da.Array  #: uint32 wrap labels 1..n_wraps, 0 for air
    ink: da.Array  #: bool ink voxels (always inside a sheet)


class _Params(NamedTuple):
    """Hashable geometry of one phantom (the block cache key)."""

    shape: tuple
    seed: int
    n: int  # wraps
    r0: float  # inner radius of the spiral
    pitch: float  # sheet + gap per wrap
    centre: tuple  # (y, x) at rest
    phi0: float  # phase of the spiral's start
    squash: tuple  # (amplitude, angle) of the 2-fold and 3-fold deformations
    tph: float  # thickness phase
    zper: tuple  # periods of centre y, x, phase, breathing, in units of the depth
    zph: tuple  # their phases
    text: tuple  # offsets of the text grid (along arc, along z), in cells


# Glyph strokes in a unit box (x along the arc, y along z), padded with far-away dummies.
_GLYPHS = [
    [(0, 1, .5, 0), (.5, 0, 1, 1), (.25, .55, .75, .55)],  # A
    [(.5, 0, .5, 1)],  # I
    [(0, 0, 1, 0), (.5, 0, .5, 1)],  # T
    [(0, 1, 0, 0), (0, 0, 1, 1), (1, 1, 1, 0)],  # N
    [(.5, 0, 1, .3), (1, .3, 1, .7), (1, .7, .5, 1), (.5, 1, 0, .7), (0, .7, 0, .3), (0, .3, .5, 0)],  # O
    [(0, 0, 0, 1), (0, 0, 1, 0), (0, .5, .7, .5), (0, 1, 1, 1)],  # E
    [(0, 0, 1, 1), (0, 1, 1, 0)],  # X
    [(0, 1, 0, 0), (0, 0, 1, 0), (1, 0, 1, 1)],  # Pi
    [(1, .1, .4, 0), (.4, 0, 0, .5), (0, .5, .4, 1), (.4, 1, 1, .9)],  # C
    [(1, 0, 0, 0), (0, 0, .5, .5), (.5, .5, 0, 1), (0, 1, 1, 1)],  # Sigma
]
_SEGS = np.array([g + [(9, 9, 9, 9)] * (6 - len(g)) for g in _GLYPHS], dtype=np.float64)


def _hash(key, *coords):
    """uint64 hash of integer coordinate arrays (broadcast) under an integer key (splitmix64)."""
    h = np.uint64((int(key) * int(_M2)) % 2**64)
    for c, p in zip(coords, _PRIMES):
        h = h + np.asarray(c).astype(np.int64).astype(np.uint64) * p
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def _unit(h):
    """Map uint64 hashes to floats in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _vnoise(a, b, key):
    """Smooth 2-D value noise in [-1, 1] on the integer lattice of (a, b)."""
    ia, ib = np.floor(a), np.floor(b)
    fa, fb = a - ia, b - ib
    fa, fb = fa * fa * (3 - 2 * fa), fb * fb * (3 - 2 * fb)
    v = [_unit(_hash(key, ia + i, ib + j)) for i in (0, 1) for j in (0, 1)]
    return 2 * ((v[0] * (1 - fb) + v[1] * fb) * (1 - fa) + (v[2] * (1 - fb) + v[3] * fb) * fa) - 1


def _block(z0, z1, y0, y1, x0, x1, p):
    """Compute ``(image, sheets, ink)`` for the box ``[z0:z1, y0:y1, x0:x1]``."""
    Z, Y, X = p.shape
    S = min(Y, X)
    (cy0, cx0), (e2, a2, e3, a3), tph, ws, ph = p.centre, p.squash, p.tph, p.zper, p.zph
    z = np.arange(z0, z1, dtype=np.float64)[:, None, None]
    zw = _TAU * z / max(Z, 64)
    cy = cy0 + 0.01 * S * np.sin(zw / ws[0] + ph[0])
    cx = cx0 + 0.01 * S * np.sin(zw / ws[1] + ph[1])
    phi = p.phi0 + 0.5 * np.sin(zw / ws[2] + ph[2])
    breathe = 1 + 0.015 * np.sin(zw / ws[3] + ph[3])
    f4 = np.float32  # full-block geometry in float32 (fast); sheet-local maths in float64
    dy = (np.arange(y0, y1)[None, :, None] - cy).astype(f4)
    dx = (np.arange(x0, x1)[None, None, :] - cx).astype(f4)
    r2 = np.maximum(dy * dy + dx * dx, f4(1e-12))
    r = np.sqrt(r2)
    cos2, sin2 = (dx * dx - dy * dy) / r2, 2 * dx * dy / r2
    cos3, sin3 = (dx / r) * (2 * cos2 - 1), (dy / r) * (2 * cos2 + 1)
    squash = 1 + f4(e2 * np.cos(2 * a2)) * cos2 + f4(e2 * np.sin(2 * a2)) * sin2
    squash += f4(e3 * np.cos(3 * a3)) * cos3 + f4(e3 * np.sin(3 * a3)) * sin3
    cp, sp = np.cos(phi).astype(f4), np.sin(phi).astype(f4)  # theta: angle from the spiral's start
    theta = np.arctan2(sp * dx - cp * dy, -cp * dx - sp * dy) + f4(np.pi)
    v = (r / (breathe.astype(f4) * squash) - f4(p.r0)) * f4(1 / p.pitch) - theta * f4(1 / _TAU)
    k = np.floor(v)
    u = (v - k) * f4(p.pitch)
    cand = (k >= 0) & (k < p.n)  # within the rolled region: thickness only needed there
    t = theta[cand].astype(np.float64) + _TAU * k[cand]  # unrolled angle
    zc = np.broadcast_to(z, cand.shape)[cand]
    zth = np.broadcast_to(0.08 * np.sin(zw + tph), cand.shape)[cand]
    th = 0.47 * p.pitch * (1 + 0.18 * np.sin(0.9 * t + tph) + zth)  # local sheet thickness
    on = u[cand] < th
    sheet = np.zeros(cand.shape, bool)
    sheet[cand] = on
    # everything below is evaluated on sheet voxels only, in unrolled (s, z) coordinates
    zi, t, u, th = zc[on], t[on], u[cand][on], th[on]
    arc = p.r0 * t + p.pitch / _TAU * t * t / 2  # arc length along the reference spiral
    P, key = p.pitch, p.seed * 16
    hole = _vnoise(arc / (1.5 * P), zi / (4 * P), key + 1) > 0.95
    inner = u < th / 2
    fib = np.empty_like(arc)
    fib[inner] = _vnoise(arc[inner] / (4 * P), zi[inner] / 2.5, key + 2)
    fib[~inner] = _vnoise(arc[~inner] / 2.5, zi[~inner] / (4 * P), key + 3)
    val = PAPER + FIBRE * fib + DENSITY * _vnoise(arc / (6 * P), zi / (6 * P), key + 4)
    val = AIR + (val - AIR) * np.clip(np.minimum(u, th - u) + 0.5, 0, 1)
    ink = (u >= th - np.maximum(1.0, 0.3 * th)) & ~hole  # thin layer at the outer surface
    ink[ink] = _inked(arc[ink], zi[ink], p)
    val[ink] += INK
    sheet[sheet] = ~hole
    labels, inkv, img = np.zeros(sheet.shape, np.uint32), np.zeros(sheet.shape, bool), np.full(sheet.shape, AIR)
    labels[sheet], inkv[sheet], img[sheet] = k[sheet] + 1, ink[~hole], val[~hole]
    # noise: sum of the four 16-bit words of a per-voxel hash (Irwin-Hall, ~Gaussian)
    h = _hash(key + 5, np.arange(z0, z1)[:, None, None], np.arange(y0, y1)[:, None], np.arange(x0, x1))
    m, b16 = np.uint64(0xFFFF), np.uint64(16)
    g = (h & m) + ((h >> b16) & m) + ((h >> (2 * b16)) & m) + (h >> (3 * b16))
    img += NOISE * np.sqrt(3.0) * (g.astype(np.float64) / 65536.0 - 2.0)
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16), labels, inkv


def _inked(arc, z, p):
    """Whether points at arc length ``arc`` and slice ``z`` lie on a glyph stroke."""
    P, key = p.pitch, p.seed * 16
    cw, ch = 1.3 * P, 2.2 * P  # letter cell (along arc, along z)
    lw, lh, width = 0.9 * P, 1.5 * P, max(1.5, 0.22 * P)
    a, b = arc - p.text[0] * cw, z + p.text[1] * ch
    i, j = np.floor(a / cw), np.floor(b / ch)
    col, slot = np.floor(i / 14), np.mod(i, 14)
    hc, hl = _hash(key + 6, col), _hash(key + 7, i, j)
    on = (_unit(hc) < 0.5) & (slot < 12) & (_unit(hl) < 0.8)
    gx = (a[on] - i[on] * cw - (cw - lw) / 2) / lw
    gy = (b[on] - j[on] * ch - (ch - lh) / 2) / lh
    seg = _SEGS[(hl[on] >> np.uint64(40)) % np.uint64(len(_GLYPHS))]  # (n, 6, 4)
    p0x, p0y, ddx, ddy = seg[..., 0], seg[..., 1], seg[..., 2] - seg[..., 0], seg[..., 3] - seg[..., 1]
    qx, qy = (gx[:, None] - p0x) * lw, (gy[:, None] - p0y) * lh
    ddx, ddy = ddx * lw, ddy * lh
    tt = np.clip((qx * ddx + qy * ddy) / np.maximum(ddx * ddx + ddy * ddy, 1e-12), 0, 1)
    d2 = (qx - tt * ddx) ** 2 + (qy - tt * ddy) ** 2
    out = np.zeros(arc.shape, bool)
    out[on] = d2.min(axis=1) < (width / 2) ** 2
    return out


@lru_cache(maxsize=4)
def _packed(p, z0, z1, y0, y1, x0, x1):
    """One block packed into uint64 (image | sheets << 16 | ink << 48), cached for reuse."""
    img, lab, ink = _block(z0, z1, y0, y1, x0, x1, p)
    u8 = np.uint64
    out = img.astype(u8) | (lab.astype(u8) << u8(16)) | (ink.astype(u8) << u8(48))
    out.flags.writeable = False
    return out


def _packed_block(p, zb, yb, xb):
    """map_blocks kernel: the blocks of the three coordinate ramps give the block's box."""
    z0, y0, x0 = int(zb.flat[0]), int(yb.flat[0]), int(xb.flat[0])
    return _packed(p, z0, z0 + zb.shape[0], y0, y0 + yb.shape[1], x0, x0 + xb.shape[2])


def scroll_phantom(shape=(64, 256, 256), seed=0, wraps=None, chunks=None) -> ScrollPhantom:
    """Lazily generated synthetic CT volume of a rolled, inked papyrus scroll.

    Parameters
    ----------
    shape : tuple of 3 int
        ``(z, y, x)`` size.  The spiral fills about 80 % of ``min(y, x)``.
    seed : int
        Seeds the geometry (centre, squash, drift, phase, ...), the texture, the
        cracks, the ink text and the noise.  Same seed, same volume.
    wraps : int, optional
        Number of wraps of the sheet (labels ``1..wraps``), spread over radii
        10 %-40 % of ``min(y, x)``.  Default: from the size, for a pitch
        (sheet + gap) near ``max(7, 9.5 * sqrt(min(y, x) / 256))`` px: 8 wraps
        of ~4.5 px sheets (+-25 %) and ~5 px gaps at 256 px, 45 at 8000 px.
    chunks : tuple or str, optional
        Dask chunks; default ``(16, min(y, 512), min(x, 512))``.  Voxel values do
        not depend on the chunking.  The last 4 computed blocks are cached, so
        the three layers and neighbouring slices of one block reuse it.

    Returns
    -------
    ScrollPhantom
        ``(image, sheets, ink)``: uint16 intensities (air ~10k, papyrus ~31k,
        ink +3.5k, noise sigma 1.5k), uint32 wrap labels (wrap ``k`` is
        ``k + 1``, 0 is air) and the bool ink mask.  Nothing is computed until
        a region is; the three share one computation per block.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive ints, got {shape}")
    Z, Y, X = shape
    S = min(Y, X)
    r0, r_out = 0.10 * S, 0.40 * S
    if wraps is None:
        pitch = max(7.0, 9.5 * np.sqrt(S / 256))
        wraps = max(1, int((r_out - r0) // pitch))
    elif int(wraps) < 1:
        raise ValueError("wraps must be >= 1")
    wraps = int(wraps)
    pitch = (r_out - r0) / wraps
    rng = np.random.default_rng(seed)
    u = rng.uniform
    p = _Params(
        shape, int(seed), wraps, r0, float(pitch),
        centre=(Y / 2 + u(-0.02, 0.02) * S, X / 2 + u(-0.02, 0.02) * S),
        phi0=u(0, _TAU),
        squash=(u(0.03, 0.07), u(0, np.pi), u(0.0, 0.02), u(0, _TAU)),
        tph=u(0, _TAU),
        zper=tuple(float(w) for w in u(1.0, 2.0, 4)),
        zph=tuple(float(w) for w in u(0, _TAU, 4)),
        text=(u(0, 20), u(0, 1)),
    )
    chunks = da.core.normalize_chunks(chunks or (16, min(Y, 512), min(X, 512)), shape, dtype=np.uint64)
    # coordinate ramps as inputs keep the graph a single blockwise layer (no per-block metadata)
    ramps = [da.arange(n, chunks=c).reshape([-1 if i == j else 1 for j in range(3)])
             for i, (n, c) in enumerate(zip(shape, chunks))]
    packed = da.map_blocks(partial(_packed_block, p), *ramps, chunks=chunks, dtype=np.uint64,
                           meta=np.empty((0, 0, 0), np.uint64))
    return ScrollPhantom(
        (packed & np.uint64(0xFFFF)).astype(np.uint16),
        ((packed >> np.uint64(16)) & np.uint64(0xFFFFFFFF)).astype(np.uint32),
        (packed >> np.uint64(48)).astype(bool),
    )


def sample_scroll(shape=(64, 256, 256), seed=0, phantom: ScrollPhantom | None = None):
    """napari sample data: a phantom (default (64, 256, 256), seed 0) as image + sheets + ink layers
    (the ground truth, hidden: the scroll is what one segments; show them to compare)."""
    image, sheets, ink = phantom if phantom is not None else scroll_phantom(shape, seed=seed)
    meta = {"phantom": {"shape": image.shape, "seed": seed}}
    return [
        (image, {"name": "scroll", "contrast_limits": list(CONTRAST_LIMITS), "metadata": meta}, "image"),
        (sheets, {"name": "sheets", "opacity": 0.5, "visible": False}, "labels"),
        (ink.astype(np.uint8), {"name": "ink", "visible": False}, "labels"),
    ]
