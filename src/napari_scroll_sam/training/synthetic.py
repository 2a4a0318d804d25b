"""Domain-randomised training slices: random label maps, each rendered with a random look.

The idea behind SynthSeg: a model that only ever sees one appearance learns that
appearance; one trained on label maps whose every label gets a random intensity,
texture, blur, noise, bias field, gamma, contrast inversion, anisotropic resampling and
CT-like streak / ring artefacts has to learn *shape and boundary*, which is what a
prompted segmenter needs on a scan nobody generated.

A slice is one of three scenes, each an instance label map:

- ``scatter``: blobs (with holes), ellipses, thin curved sheets, tube sections and
  capsules, rings with an object nested inside, painted over each other (touching and
  occluding objects);
- ``cells``: a Voronoi tessellation with membranes between the cells (EM-like);
- ``spiral``: the turns of a spiral sheet as separate objects, all of one material and
  separated only by a thin gap (a rolled scroll's wraps).

``synthetic_slice(cfg, rng)`` gives one (uint8 image, uint16 labels) pair;
``synthetic_pairs(cfg, n, slices, seed)`` gives ``TrainingPair`` s for the trainer.
``rerendered_pairs(label_slices, cfg, n, slices, seed)`` does the same with *real* label maps
(the training slices of a labelled volume, cropped at random): real shapes, a random look.
A configuration that cannot make an object (no shape, an empty size range …) is refused
with a :class:`SyntheticConfigError` before anything is generated.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..errors import ScrollSamError

SHAPES = ("blob", "ellipse", "sheet", "tube", "ring")
SCENES = ("scatter", "cells", "spiral")


class SyntheticConfigError(ScrollSamError, ValueError):
    """A synthetic-data configuration that cannot make training data (says which field)."""


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    size: int = 256  # slice side, px
    scenes: tuple = (("scatter", 0.5), ("cells", 0.25), ("spiral", 0.25))  # (name, weight)
    shapes: tuple = SHAPES  # what a scatter scene draws from
    n_objects: tuple = (3, 12)  # objects per scatter scene, inclusive
    object_size: tuple = (12, 110)  # object diameter (sheet: length), px
    thickness: tuple = (2.0, 9.0)  # sheets, spiral wraps, membranes, px
    n_cells: tuple = (12, 60)
    wraps: tuple = (3, 9)
    blur: tuple = (0.0, 1.6)  # Gaussian sigma, px
    noise: tuple = (0.0, 0.18)  # Gaussian noise sigma, fraction of the intensity range
    bias: float = 0.5  # strength of the multiplicative low-frequency bias field
    gamma: tuple = (0.6, 1.7)
    p_invert: float = 0.3
    p_anisotropic: float = 0.25
    p_artefacts: float = 0.3
    min_area: int = 16

    def __post_init__(self):
        p = []
        scenes = [s for s in self.scenes]
        bad = [s for s, _ in scenes if s not in SCENES]
        if bad:
            p.append(f"unknown scenes {bad} (known: {', '.join(SCENES)})")
        if not scenes or sum(max(0.0, float(w)) for _, w in scenes) <= 0:
            p.append("no scene with a positive weight: nothing can be drawn")
        if any(float(w) < 0 for _, w in scenes):
            p.append("scene weights must be >= 0")
        if any(s == "scatter" and w > 0 for s, w in scenes):
            if not self.shapes:
                p.append("shapes is empty: a scatter scene cannot make an object")
            unknown = [s for s in self.shapes if s not in SHAPES]
            if unknown:
                p.append(f"unknown shapes {unknown} (known: {', '.join(SHAPES)})")
        for name, lo_min in (("n_objects", 1), ("object_size", 2), ("n_cells", 2), ("wraps", 1),
                             ("thickness", 1), ("gamma", 1e-3)):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                p.append(f"{name} range {lo}..{hi} is empty")
            elif lo < lo_min:
                p.append(f"{name} must be >= {lo_min}, got {lo}")
        for name in ("blur", "noise"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                p.append(f"{name} range {lo}..{hi} must be non-negative and non-empty")
        for name in ("p_invert", "p_anisotropic", "p_artefacts"):
            if not 0 <= getattr(self, name) <= 1:
                p.append(f"{name} must be a probability in 0..1, got {getattr(self, name)}")
        if self.bias < 0:
            p.append(f"bias must be >= 0, got {self.bias}")
        if self.size < 32:
            p.append(f"size must be >= 32 px, got {self.size}")
        elif self.object_size[0] > self.size:
            p.append(f"object_size {self.object_size} does not fit a {self.size}-px slice")
        if self.min_area < 1:
            p.append("min_area must be >= 1")
        elif self.min_area > np.pi / 4 * self.object_size[1] ** 2:
            p.append(f"min_area {self.min_area} is larger than the largest object_size can cover")
        if p:
            raise SyntheticConfigError("invalid synthetic-data configuration: " + "; ".join(p))


# --- label maps ----------------------------------------------------------------------

def _grid(n):
    return np.mgrid[0:n, 0:n].astype(np.float32)


def _frame(yy, xx, rng, n, size):
    """Coordinates in a random rotated frame centred somewhere on the slice."""
    cy, cx = rng.uniform(0.1 * n, 0.9 * n, 2)
    a = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    return np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy


def _wobble(theta, rng, amp=0.25):
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += rng.uniform(0, amp / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return r


def _shape(kind, yy, xx, rng, cfg) -> list[np.ndarray]:
    """Masks of one drawn shape (a ring with a nested object gives two)."""
    n = cfg.size
    d = rng.uniform(*cfg.object_size)
    u, v = _frame(yy, xx, rng, n, d)
    if kind in ("blob", "ellipse", "ring"):
        aspect = rng.uniform(1.0, 1.3) if kind != "ellipse" else rng.uniform(1.5, 4.0)
        uu, vv = u / np.sqrt(aspect), v * np.sqrt(aspect)
        rad, th = np.hypot(uu, vv), np.arctan2(vv, uu)
        outer = d / 2 * _wobble(th, rng, 0.3 if kind == "blob" else 0.1)
        m = rad < outer
        if kind == "ring":
            inner = outer * rng.uniform(0.45, 0.8)
            return [m & (rad >= inner), rad < inner * rng.uniform(0.4, 0.85)]
        if kind == "blob" and rng.random() < 0.25:  # a hole
            m &= ~(np.hypot(uu - rng.uniform(-.2, .2) * d, vv) < outer * rng.uniform(0.15, 0.4))
        return [m]
    if kind == "sheet":
        amp, freq = rng.uniform(0, 0.25) * d, rng.uniform(0.5, 2.5) * np.pi / d
        ph, t = rng.uniform(0, 2 * np.pi), rng.uniform(*cfg.thickness)
        f = amp * np.sin(freq * u + ph) + rng.uniform(-0.3, 0.3) * u ** 2 / d
        slope = np.hypot(1, amp * freq * np.cos(freq * u + ph))
        return [(np.abs(v - f) / slope < t / 2) & (np.abs(u) < d / 2)]
    # tube: a cross-section (small disc) or a capsule lying in the slice
    r = max(cfg.thickness[0], rng.uniform(0.05, 0.2) * d)
    if rng.random() < 0.5:
        return [np.hypot(u, v) < r]
    half = d / 2
    du = np.clip(u, -half, half)
    return [np.hypot(u - du, v) < r]


def _scatter(cfg, rng, yy, xx):
    lab = np.zeros((cfg.size,) * 2, np.uint16)
    k = 0
    for _ in range(int(rng.integers(cfg.n_objects[0], cfg.n_objects[1] + 1))):
        for m in _shape(cfg.shapes[int(rng.integers(len(cfg.shapes)))], yy, xx, rng, cfg):
            k += 1
            lab[m] = k
    return lab, 0


def _cells(cfg, rng, yy, xx):
    from scipy.spatial import cKDTree

    n = cfg.size
    seeds = rng.uniform(0, n, (int(rng.integers(cfg.n_cells[0], cfg.n_cells[1] + 1)), 2))
    # anisotropic metric: elongated cells
    s = np.array([1.0, rng.uniform(0.5, 2.0)])
    dist, idx = cKDTree(seeds * s).query(np.stack([yy.ravel(), xx.ravel()], 1) * s, k=2)
    gap = (dist[:, 1] - dist[:, 0]).reshape(n, n)
    lab = (idx[:, 0].reshape(n, n) + 1).astype(np.uint16)
    membrane = gap < rng.uniform(*cfg.thickness) / 2
    lab[membrane] = 0
    return lab, membrane


def _spiral(cfg, rng, yy, xx):
    n = cfg.size
    wraps = int(rng.integers(cfg.wraps[0], cfg.wraps[1] + 1))
    cy, cx = rng.uniform(0.35 * n, 0.65 * n, 2)
    squash = rng.uniform(0.7, 1.0)
    r0, r1 = rng.uniform(0.03, 0.1) * n, rng.uniform(0.35, 0.6) * n
    pitch = (r1 - r0) / wraps
    t = min(rng.uniform(*cfg.thickness), 0.8 * pitch)
    dy, dx = (yy - cy) / squash, xx - cx
    r, th = np.hypot(dy, dx), np.mod(np.arctan2(dy, dx), 2 * np.pi)
    r = r * (1 + 0.05 * np.sin(3 * th + rng.uniform(0, 6.3)))
    turn = (r - r0 - pitch * th / (2 * np.pi)) / pitch
    k = np.round(turn)
    sheet = (np.abs(turn - k) * pitch < t / 2) & (k >= 0) & (k < wraps)
    lab = np.where(sheet, k + 1, 0).astype(np.uint16)
    return lab, 0


# --- rendering -----------------------------------------------------------------------

def _smooth_noise(rng, n, scale):
    return ndimage.gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), scale, mode="wrap")


def _render(lab, membrane, cfg, rng, yy, xx) -> np.ndarray:
    n = cfg.size
    ids = np.unique(lab)
    ids = ids[ids > 0]
    shared = rng.random() < 0.4  # objects of one material: only gaps and edges separate them
    base = rng.uniform(0, 1)
    lut = np.full(int(lab.max()) + 1, rng.uniform(0, 1), np.float32)  # background
    for i in ids:
        lut[i] = base + rng.normal(0, 0.05) if shared else rng.uniform(0, 1)
    img = lut[lab]
    if isinstance(membrane, np.ndarray):
        img[membrane] = rng.uniform(0, 1)
    for _ in range(int(rng.integers(0, 3))):  # textures at random scales
        img += rng.uniform(0, 0.2) * _smooth_noise(rng, n, rng.uniform(0.7, 8)) * rng.uniform(0.5, 2)
    if rng.random() < 0.3:  # edges brighter or darker than the interiors (staining, phase contrast)
        edge = ndimage.morphological_gradient(lab, size=3) > 0
        img[edge] += rng.uniform(-0.4, 0.4)
    img = ndimage.gaussian_filter(img, rng.uniform(*cfg.blur))  # partial volume, PSF
    if rng.random() < cfg.p_anisotropic:  # thick sections / anisotropic voxels
        axis, f = int(rng.integers(2)), rng.uniform(1.5, 3.5)
        zoom = [1.0, 1.0]
        zoom[axis] = 1 / f
        small = ndimage.zoom(img, zoom, order=1)
        img = ndimage.zoom(small, [n / s for s in small.shape], order=1)[:n, :n]
    if rng.random() < cfg.p_artefacts:
        cy, cx = rng.uniform(0, n, 2)
        r, th = np.hypot(yy - cy, xx - cx), np.arctan2(yy - cy, xx - cx)
        if rng.random() < 0.5:  # rings around the rotation axis
            img += rng.uniform(0.02, 0.15) * np.sin(2 * np.pi * r / rng.uniform(3, 12))
        else:  # streaks from a dense spot
            img += rng.uniform(0.02, 0.2) * np.cos(int(rng.integers(4, 24)) * th) * np.exp(-r / (0.5 * n))
    img = img * np.exp(cfg.bias * rng.uniform(0, 1) * _smooth_noise(rng, n, n / 4) * 8)
    lo, hi = np.percentile(img, [0.5, 99.5])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    img = np.clip(img + rng.normal(0, rng.uniform(*cfg.noise), img.shape), 0, 1)
    img = img ** rng.uniform(*cfg.gamma)
    if rng.random() < cfg.p_invert:
        img = 1 - img
    lo, hi = rng.uniform(0, 0.15), rng.uniform(0.85, 1.0)  # the window a user would set
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)


def _relabel(lab, min_area):
    """Drop objects under ``min_area`` and number the rest 1..K."""
    counts = np.bincount(lab.ravel())
    keep = np.nonzero(counts >= min_area)[0]
    keep = keep[keep > 0]
    lut = np.zeros(len(counts), np.uint16)
    lut[keep] = np.arange(1, len(keep) + 1)
    return lut[lab]


def synthetic_slice(cfg: SyntheticConfig | None = None, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 image, uint16 instance labels) slice of ``cfg.size``² (at least one object)."""
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(rng)
    yy, xx = _grid(cfg.size)
    names = [s for s, _ in cfg.scenes]
    w = np.array([max(0.0, float(x)) for _, x in cfg.scenes])
    for _ in range(20):
        scene = names[int(rng.choice(len(names), p=w / w.sum()))]
        lab, membrane = {"scatter": _scatter, "cells": _cells, "spiral": _spiral}[scene](cfg, rng, yy, xx)
        lab = _relabel(lab, cfg.min_area)
        if lab.max():
            return _render(lab, membrane, cfg, rng, yy, xx), lab
    raise SyntheticConfigError(f"20 scenes in a row held no object of at least {cfg.min_area} px: "
                               "raise object_size or lower min_area")


def synthetic_volume(cfg: SyntheticConfig | None = None, slices: int = 8, seed: int = 0):
    """(Volume, labels) of ``slices`` independent synthetic slices (uint8, window 0..255)."""
    from ..io.volume import Volume

    cfg = cfg or SyntheticConfig()
    if slices < 1:
        raise SyntheticConfigError(f"slices must be >= 1, got {slices}")
    rng = np.random.default_rng([seed, 0x5eed])
    imgs, labs = zip(*(synthetic_slice(cfg, rng) for _ in range(slices)))
    vol = Volume(levels=[np.stack(imgs)], contrast_limits=(0.0, 255.0), name=f"synthetic-{seed}")
    return vol, np.stack(labs)


def synthetic_pairs(cfg: SyntheticConfig | None = None, n: int = 1, slices: int = 8, seed: int = 0):
    """``n`` ``TrainingPair`` s of domain-randomised slices (seeds ``seed .. seed + n - 1``)."""
    from .data import TrainingPair

    out = []
    for i in range(n):
        vol, lab = synthetic_volume(cfg, slices, seed + i)
        out.append(TrainingPair(vol, lab, name=vol.name))
    return out


def rerendered_slice(labels, cfg: SyntheticConfig | None = None, rng=None, membrane=None):
    """A real label map (H, W >= ``cfg.size``; 0 background) cropped at random to
    ``cfg.size``² and rendered with a random look (as ``synthetic_slice`` renders its own):
    the shapes of a real volume without its appearance. ``membrane`` (H, W bool): pixels
    drawn as one more material (an EM stack's membranes). (uint8 image, uint16 labels); a
    crop with no object of ``min_area`` px is drawn again (20 tries)."""
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(rng)
    labels = np.asarray(labels)
    n = cfg.size
    if labels.ndim != 2 or min(labels.shape) < n:
        raise SyntheticConfigError(f"a label map to re-render must be 2D and at least {n} px a side, "
                                   f"got shape {labels.shape}")
    yy, xx = _grid(n)
    for _ in range(20):
        y0, x0 = (int(rng.integers(0, s - n + 1)) for s in labels.shape)
        lab = _relabel(labels[y0:y0 + n, x0:x0 + n].astype(np.int64), cfg.min_area)
        if lab.max():
            mem = 0 if membrane is None else np.asarray(membrane, bool)[y0:y0 + n, x0:x0 + n]
            return _render(lab, mem, cfg, rng, yy, xx), lab
    raise SyntheticConfigError(f"20 random {n}² crops held no object of at least {cfg.min_area} px")


def rerendered_pairs(label_slices, cfg: SyntheticConfig | None = None, n: int = 1, slices: int = 8, seed: int = 0,
                     name: str = "rerendered"):
    """``n`` ``TrainingPair`` s of ``slices`` slices each, every slice a random crop of one of
    ``label_slices`` ([(labels (H, W), membrane (H, W) or None)]) with a random look."""
    from ..io.volume import Volume
    from .data import TrainingPair

    cfg = cfg or SyntheticConfig()
    if not label_slices:
        raise SyntheticConfigError("no label map to re-render")
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed + i, 0x4e4d])
        picks = rng.integers(0, len(label_slices), slices)
        imgs, labs = zip(*(rerendered_slice(label_slices[int(k)][0], cfg, rng, label_slices[int(k)][1])
                           for k in picks))
        vol = Volume(levels=[np.stack(imgs)], contrast_limits=(0.0, 255.0), name=f"{name}-{seed + i}")
        out.append(TrainingPair(vol, np.stack(labs), name=vol.name))
    return out
