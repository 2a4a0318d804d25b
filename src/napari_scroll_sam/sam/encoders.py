"""Encoder stems for the CPU-sized SAMs: what turns the image into the ViT's token grid.

``"patch"`` is SAM's own (one 16 x 16 stride-16 convolution). ``"filters"`` puts a fixed
filter bank first — what ilastik-style tools rely on: at each scale sigma the Gaussian-
smoothed image, its gradient magnitude, the two Hessian eigenvalues and the two
structure-tensor eigenvalues (scale-normalised: derivatives times sigma^order) — then a
few learned convolutions down to the 1/16 grid. The bank has no weights (it is computed
from ``sigmas`` at every call), so a model learns only what to make of these features,
not how to find edges and ridges from scratch on synthetic data.

The stem's output is (B, H/16, W/16, C), as ``PatchEmbed``'s, so the rest of the ViT,
the neck, the prompt encoder and the mask decoder are unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STEMS = ("patch", "filters")
DEFAULT_SIGMAS = (1.0, 2.0, 4.0)


def _gauss_kernels(sigma: float, device, dtype):
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, device=device, dtype=dtype)
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    g1 = -x / sigma ** 2 * g  # d/dx
    g2 = (x ** 2 / sigma ** 4 - 1 / sigma ** 2) * g  # d2/dx2
    return r, g, g1, g2


def _sep(img, ky, kx, r):
    """Separable correlation of (B, 1, H, W) with ky along y and kx along x (reflect pad)."""
    img = F.pad(img, (r, r, r, r), mode="reflect")
    img = F.conv2d(img, ky.view(1, 1, -1, 1))
    return F.conv2d(img, kx.view(1, 1, 1, -1))


def _eig2(a, b, c):
    """Eigenvalues (larger, smaller) of the symmetric 2x2 [[a, b], [b, c]]."""
    mean = (a + c) / 2
    root = torch.sqrt(((a - c) / 2) ** 2 + b ** 2 + 1e-12)
    return mean + root, mean - root


def filter_bank(gray: torch.Tensor, sigmas=DEFAULT_SIGMAS) -> torch.Tensor:
    """(B, 1, H, W) → (B, 1 + 6 * len(sigmas), H, W): the image, then per scale its smoothed
    value, gradient magnitude, Hessian and structure-tensor eigenvalues."""
    feats = [gray]
    for s in sigmas:
        r, g, g1, g2 = _gauss_kernels(float(s), gray.device, gray.dtype)
        sm = _sep(gray, g, g, r)
        gy, gx = _sep(gray, g1, g, r) * s, _sep(gray, g, g1, r) * s
        hyy, hxx, hxy = _sep(gray, g2, g, r) * s ** 2, _sep(gray, g, g2, r) * s ** 2, _sep(gray, g1, g1, r) * s ** 2
        h1, h2 = _eig2(hyy, hxy, hxx)
        r2, gg, _, _ = _gauss_kernels(2 * float(s), gray.device, gray.dtype)  # structure tensor window
        jyy, jxx, jxy = (_sep(t, gg, gg, r2) for t in (gy * gy, gx * gx, gx * gy))
        t1, t2 = _eig2(jyy, jxy, jxx)
        feats += [sm, torch.sqrt(gy ** 2 + gx ** 2 + 1e-12), h1, h2, torch.sqrt(t1.clamp(min=0) + 1e-12),
                  torch.sqrt(t2.clamp(min=0) + 1e-12)]
    return torch.cat(feats, 1)


class FilterBankStem(nn.Module):
    """A filter-bank pyramid feeding three learned convolutions: (B, 3, H, W) → (B, H/16, W/16, C).

    Level i (i = 0, 1, 2) sees the image average-pooled by 2^i and its bank at
    ``sigmas[i] / 2^i`` (so sigma 1, 2, 4 px of the input cost one small kernel each);
    conv 3x3/2 takes level 0 to 1/2, where level 1's bank joins; conv 3x3/2 to 1/4,
    where level 2's joins; conv 4x4/4 to the 1/16 token grid.
    """

    def __init__(self, embed_dim: int, sigmas=DEFAULT_SIGMAS, width: int = 32):
        super().__init__()
        self.sigmas = tuple(float(s) for s in sigmas)
        if len(self.sigmas) != 3:
            raise ValueError(f"the filters stem takes 3 scales, one per pyramid level, got {self.sigmas}")
        n = 7  # channels of a one-scale bank
        self.stem = nn.ModuleList([
            nn.Sequential(nn.Conv2d(n, width, 3, stride=2, padding=1), nn.GELU()),
            nn.Sequential(nn.Conv2d(width + n, 2 * width, 3, stride=2, padding=1), nn.GELU()),
        ])
        self.proj = nn.Conv2d(2 * width + n, embed_dim, 4, stride=4)
        self.patch_size = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = x.mean(1, keepdim=True)
        h = filter_bank(gray, self.sigmas[:1])
        for i, conv in enumerate(self.stem, start=1):
            gray = F.avg_pool2d(gray, 2)
            h = torch.cat([conv(h), filter_bank(gray, (self.sigmas[i] / 2 ** i,))], 1)
        return self.proj(h).permute(0, 2, 3, 1)
