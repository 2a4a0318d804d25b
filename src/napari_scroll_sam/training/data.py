"""Training data: (image, labels) pairs → annotated slices → objects → prompts.

The annotated slices of a pair are those whose labels are not all zero (or a list
the user gives). Objects are the label ids of a slice (``objects="instances"``)
or the connected components of a binary mask such as ink (``"components"``).
A training *sample* is one annotated slice (one tile of it when the slice is
tiled) with its object masks. Train and validation are split by slice.
"""

from __future__ import annotations
from ..errors import ScrollSamError

import dataclasses

import numpy as np
from scipy import ndimage

from .. import prompts as P


class TrainingDataError(ScrollSamError, ValueError):
    """Training data that cannot be used; raised before training starts."""


@dataclasses.dataclass
class TrainingPair:
    """An image volume and its labels (same shape; integer, non-negative)."""

    image: object  # Volume
    labels: object  # array-like (z, y, x)
    name: str = ""
    slices: list | None = None  # annotated slices; default: those with any label
    objects: str = "instances"  # or "components"


@dataclasses.dataclass
class Sample:
    pair: int
    z: int
    tile: int
    masks: np.ndarray  # (K, h, w) bool, the objects in the tile

    def __repr__(self):
        return f"Sample(pair={self.pair}, z={self.z}, tile={self.tile}, objects={len(self.masks)})"


def check_pair(pair: TrainingPair) -> list[int]:
    """Validate a pair; returns its annotated slices. Errors name the pair and what is wrong."""
    name = pair.name or getattr(pair.image, "name", "image")
    shape = tuple(pair.image.shape)
    lshape = tuple(getattr(pair.labels, "shape", ()))
    if lshape != shape:
        raise TrainingDataError(f"{name}: labels of shape {lshape} do not fit the image of shape {shape}")
    dtype = np.dtype(pair.labels.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise TrainingDataError(f"{name}: labels must be integers, got {dtype}")
    if pair.objects not in ("instances", "components"):
        raise TrainingDataError(f"{name}: objects must be 'instances' or 'components', not {pair.objects!r}")
    import dask.array as da

    lab = pair.labels if isinstance(pair.labels, da.Array) else da.from_array(pair.labels, chunks=(1, -1, -1))
    if np.issubdtype(dtype, np.signedinteger) and bool((lab < 0).any().compute()):
        raise TrainingDataError(f"{name}: labels hold negative values")
    if pair.slices is not None:
        slices = sorted(int(z) for z in pair.slices)
        bad = [z for z in slices if not 0 <= z < shape[0]]
        if bad:
            raise TrainingDataError(f"{name}: annotated slices {bad} are outside 0..{shape[0] - 1}")
    else:
        slices = [int(z) for z in np.nonzero(lab.any(axis=(1, 2)).compute())[0]]
    if not slices:
        raise TrainingDataError(f"{name}: no annotated slice (every label is 0)")
    full = [z for z in slices if bool(lab[z].all().compute())]
    if len(full) == len(slices):
        raise TrainingDataError(f"{name}: one class only: every annotated slice is labelled everywhere, "
                                "so there is no background to learn from")
    return slices


def objects_of(labels_2d: np.ndarray, kind: str, min_area: int = 16) -> np.ndarray:
    """(K, h, w) bool object masks of a labels slice (or tile)."""
    lab = np.asarray(labels_2d)
    if kind == "components":
        lab, _ = ndimage.label(lab > 0)
    ids = [i for i in np.unique(lab) if i]
    masks = [lab == i for i in ids]
    masks = [m for m in masks if m.sum() >= min_area]
    return np.stack(masks) if masks else np.zeros((0, *lab.shape), bool)


def build_samples(pairs, embedders, slices_per_pair, min_area: int = 16) -> list[Sample]:
    """One sample per (pair, annotated slice, tile holding an object)."""
    out = []
    for i, (pair, emb, zs) in enumerate(zip(pairs, embedders, slices_per_pair)):
        for z in zs:
            sl = np.asarray(pair.labels[z])
            for t in emb.tiles:
                y0, y1, x0, x1 = t.outer
                masks = objects_of(sl[y0:y1, x0:x1], pair.objects, min_area)
                if len(masks):
                    out.append(Sample(i, z, t.index, masks))
    return out


def split_slices(slices: list[int], val_fraction: float = 0.2, seed: int = 0, val_slices=None):
    """(train, val) slice lists: ``val_slices`` if given, else a seeded fraction (at least one
    slice each when there are two or more). A slice is never in both."""
    slices = sorted(set(int(z) for z in slices))
    if val_slices is not None:
        val = sorted(set(int(z) for z in val_slices) & set(slices))
        missing = sorted(set(int(z) for z in val_slices) - set(slices))
        if missing:
            raise TrainingDataError(f"validation slices {missing} are not annotated")
    elif len(slices) < 2 or val_fraction <= 0:
        val = []
    else:
        rng = np.random.default_rng(seed)
        n = min(len(slices) - 1, max(1, int(round(val_fraction * len(slices)))))
        val = sorted(rng.choice(slices, size=n, replace=False).tolist())
    train = [z for z in slices if z not in val]
    if not train:
        raise TrainingDataError("no slice left for training after the validation split")
    return train, val


# --- prompts for training ------------------------------------------------------------

PROMPT_KINDS = ("point", "box", "points", "background")


def sample_prompt(mask: np.ndarray, rng, kinds=("point", "box"), jitter: float = 0.1,
                  others: np.ndarray | None = None) -> P.Prompt:
    """A random training prompt for one object.

    ``point``: one positive point (random in mask, Gaussian-weighted, centroid, or farthest
    from the boundary); ``box``: the tight box with each side moved by up to ``jitter`` of
    its size; ``points``: 2-4 random positive points (a grid-like spread); ``background``
    adds 1-2 negative points (near other objects when given). Kinds are drawn uniformly
    among ``point``/``box``/``points``; ``background`` is added with probability 1/2.
    """
    main = [k for k in kinds if k != "background"] or ["point"]
    kind = main[int(rng.integers(len(main)))]
    pts, lab, box = [], [], None
    if kind == "point":
        how = int(rng.integers(4))
        p = (P.random_point(mask, rng), P.random_gaussian_point(mask, rng), P.centroid(mask),
             P.farthest_from_boundary(mask))[how]
        pts, lab = [p], [1]
    elif kind == "points":
        n = int(rng.integers(2, 5))
        pts, lab = [P.random_point(mask, rng) for _ in range(n)], [1] * n
    else:
        y0, x0, y1, x1 = P.bbox(mask)
        h, w = y1 - y0 + 1, x1 - x0 + 1
        noise = rng.uniform(-jitter, jitter, 4) * np.array([h, w, h, w])
        box = np.clip(np.array([y0, x0, y1, x1]) + noise, 0, [mask.shape[0] - 1, mask.shape[1] - 1] * 2)
        box[2], box[3] = max(box[2], box[0]), max(box[3], box[1])
    if "background" in kinds and rng.random() < 0.5:
        bg = P.background_points(mask, int(rng.integers(1, 3)), others)
        pts, lab = list(pts) + list(bg), list(lab) + [0] * len(bg)
    return P.Prompt(np.asarray(pts, float).reshape(-1, 2), np.asarray(lab, float), box)


def corrective_points(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A positive point deep in the false-negative region and a negative one deep in the
    false-positive region (those that exist), as an annotator would click."""
    pts, lab = [], []
    for region, label in ((gt & ~pred, 1), (pred & ~gt, 0)):
        if region.any():
            pts.append(P.farthest_from_boundary(region))
            lab.append(label)
    return np.asarray(pts, float).reshape(-1, 2), np.asarray(lab, float)
