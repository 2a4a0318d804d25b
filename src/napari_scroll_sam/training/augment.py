"""Training-time augmentation of one sample: a windowed image tile and its object masks.

Geometric (applied to image and masks alike): flips, 90-degree rotations, a small
affine (rotation, scale, shear) or elastic warp, a random crop (which the encoder's
resize turns into a zoom). Intensity (image only): gamma, contrast and brightness
jitter, Gaussian noise, blur. The image is the windowed slice (0..255, three channels,
as SAM sees it); masks are (K, h, w) bool. Out-of-range parameters are refused with an
:class:`AugmentError` when the configuration is made, before any training.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..errors import ScrollSamError


class AugmentError(ScrollSamError, ValueError):
    """Augmentation parameters out of range (names the field and its allowed range)."""


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    p: float = 0.8  # probability that a sample is augmented at all
    flips: bool = True
    rot90: bool = True
    rotate: float = 15.0  # max degrees of the small affine
    scale: tuple = (0.85, 1.2)
    shear: float = 0.1
    p_affine: float = 0.5
    p_elastic: float = 0.2
    elastic: float = 4.0  # displacement amplitude, px
    crop: tuple = (0.6, 1.0)  # side of a random crop, fraction of the tile (1, 1: no crop)
    p_crop: float = 0.3
    gamma: tuple = (0.7, 1.5)
    contrast: tuple = (0.7, 1.3)
    brightness: float = 25.0  # max shift, grey levels of 0..255
    noise: tuple = (0.0, 12.0)  # Gaussian sigma, grey levels
    blur: tuple = (0.0, 1.0)  # Gaussian sigma, px
    p_intensity: float = 0.8

    def __post_init__(self):
        p = []

        def rng_(name, low, high):
            v = getattr(self, name)
            try:
                a, b = (float(x) for x in v)
            except (TypeError, ValueError):
                p.append(f"{name} must be a (low, high) pair of numbers, got {v!r}")
                return
            if not a <= b:
                p.append(f"{name} range {a}..{b} is empty")
            elif a < low or b > high:
                p.append(f"{name} {a}..{b} must lie in {low}..{high}")

        for name in ("p", "p_affine", "p_elastic", "p_crop", "p_intensity"):
            if not 0 <= getattr(self, name) <= 1:
                p.append(f"{name} must be a probability in 0..1, got {getattr(self, name)}")
        if not 0 <= self.rotate <= 180:
            p.append(f"rotate must be 0..180 degrees, got {self.rotate}")
        if not 0 <= self.shear <= 1:
            p.append(f"shear must be 0..1, got {self.shear}")
        if not 0 <= self.elastic <= 32:
            p.append(f"elastic must be 0..32 px, got {self.elastic}")
        if not 0 <= self.brightness <= 255:
            p.append(f"brightness must be 0..255, got {self.brightness}")
        rng_("scale", 0.25, 4.0)
        rng_("crop", 0.1, 1.0)
        rng_("gamma", 0.1, 10.0)
        rng_("contrast", 0.0, 10.0)
        rng_("noise", 0.0, 128.0)
        rng_("blur", 0.0, 16.0)
        if p:
            raise AugmentError("invalid augmentation: " + "; ".join(p))


def _affine(shape, rng, cfg):
    """Matrix and offset mapping output to input coordinates (about the centre)."""
    a = np.deg2rad(rng.uniform(-cfg.rotate, cfg.rotate))
    s = rng.uniform(*cfg.scale)
    sh = rng.uniform(-cfg.shear, cfg.shear)
    m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[1, sh], [0, 1]]) / s
    c = (np.array(shape) - 1) / 2
    return m, c - m @ c


def augment(image: np.ndarray, masks: np.ndarray, rng, cfg: AugmentConfig | None = None):
    """(image (C, h, w) float 0..255, masks (K, h, w) bool) → augmented copies (same C, K).

    The output may have another (h, w) (a 90-degree turn of a non-square tile, a crop);
    objects a crop or warp removed come back as empty masks: the caller drops them.
    """
    cfg = cfg or AugmentConfig()
    img, m = np.asarray(image, np.float32), np.asarray(masks, bool)
    if rng.random() >= cfg.p:
        return img, m
    if cfg.flips:
        if rng.random() < 0.5:
            img, m = img[..., ::-1], m[..., ::-1]
        if rng.random() < 0.5:
            img, m = img[..., ::-1, :], m[..., ::-1, :]
    if cfg.rot90:
        k = int(rng.integers(4))
        img, m = np.rot90(img, k, (1, 2)), np.rot90(m, k, (1, 2))
    h, w = img.shape[1:]
    if rng.random() < cfg.p_crop and cfg.crop[0] < 1:
        f = rng.uniform(*cfg.crop)
        ch, cw = max(8, int(h * f)), max(8, int(w * f))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img, m = img[:, y0:y0 + ch, x0:x0 + cw], m[:, y0:y0 + ch, x0:x0 + cw]
        h, w = ch, cw
    coords = None
    if rng.random() < cfg.p_affine:
        mat, off = _affine((h, w), rng, cfg)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        coords = np.einsum("ij,jhw->ihw", mat, np.stack([yy, xx])) + off[:, None, None]
    if rng.random() < cfg.p_elastic and cfg.elastic > 0:
        if coords is None:
            coords = np.mgrid[0:h, 0:w].astype(np.float32)
        for i in range(2):
            d = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 8)
            coords[i] += d / (np.abs(d).max() + 1e-6) * cfg.elastic
    if coords is not None:
        img = np.stack([ndimage.map_coordinates(c, coords, order=1, mode="nearest") for c in img])
        m = np.stack([ndimage.map_coordinates(k.astype(np.uint8), coords, order=0, mode="nearest") > 0
                      for k in m]) if len(m) else m
    img = np.ascontiguousarray(img)
    if rng.random() < cfg.p_intensity:
        x = img / 255.0
        x = np.clip(x, 0, 1) ** rng.uniform(*cfg.gamma)
        mean = x.mean()
        x = (x - mean) * rng.uniform(*cfg.contrast) + mean + rng.uniform(-cfg.brightness, cfg.brightness) / 255
        sigma = rng.uniform(*cfg.blur)
        if sigma > 0.05:
            x = ndimage.gaussian_filter(x, (0, sigma, sigma))
        x = x + rng.normal(0, rng.uniform(*cfg.noise) / 255, x.shape[1:])[None]  # same noise in every channel
        img = (np.clip(x, 0, 1) * 255).round().astype(np.float32)
    return img, np.ascontiguousarray(m)
