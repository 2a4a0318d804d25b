"""The labelled volumes the benchmarks score on, cut by ``data_split.json``.

``load(name, split="eval") -> Dataset`` gives the (lazy) ``Volume`` of the split and the
ground truth as ``objects``: id -> bool (Z, H, W) mask of one object through the split.

* ``isbi``: the ISBI 2012 EM stack (``isbi2012-em``). Objects are 2D connected components of
  the cell-interior class, linked slice to slice by mutual largest overlap (``link_objects``);
  kept: on >= ``min_slices`` slices with a median area of 1,000..15,000 px, ``max_objects`` of
  them spread over that size range.
* ``chloroplast``: chloroplast EM (``chloroplast-em``), 2341 x 3293 slices (tiles for a 256 px
  model); each id is one object through all 10 slices; kept: objects wholly inside the split.
* ``mri1`` / ``mri2``: brain MRI NRRDs (``brain-mri``), voxel size (6.5, 0.78, 0.78); one object:
  the tumour ROI.
* ``scroll``: the File-menu sample exactly (``sample_scroll``: 64 x 256 x 256, seed 0, 8 wraps);
  each wrap an object.
* ``scroll_touching``: a harder scroll (seed 1, 14 wraps in 256 px: sheets nearly touch).

Every loader skips (returns None, with the reason in ``SKIPPED``) when ``../shared/data`` is absent
(``NAPARI_SCROLL_SAM_DATA`` names another data root: ``scripts/gpu_prepare.sh`` copies one for the GPU machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

try:
    import napari_scroll_sam  # noqa: F401
except ImportError:  # a bare checkout: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_scroll_sam.io.volume import Volume, open_volume  # noqa: E402

HERE = Path(__file__).resolve().parent
# ../shared/data beside the checkout, or NAPARI_SCROLL_SAM_DATA (a copy carried to the GPU machine)
DATA = Path(os.environ.get("NAPARI_SCROLL_SAM_DATA") or HERE.parents[1] / "shared" / "data")
SPLIT = json.loads((HERE / "data_split.json").read_text())
NAMES = ("isbi", "chloroplast", "mri1", "mri2", "scroll", "scroll_touching")
REAL = ("isbi", "chloroplast", "mri1", "mri2")
SKIPPED: dict[str, str] = {}


@dataclasses.dataclass
class Dataset:
    name: str
    volume: Volume
    objects: dict  # id -> bool (Z, H, W)
    source: str

    @property
    def object_slices(self) -> int:
        return int(sum(g.any(axis=(1, 2)).sum() for g in self.objects.values()))


def link_objects(fg, min_overlap=0.2):
    """(Z, H, W) bool -> int32 object ids: 2D connected components per slice, a component
    continuing the one of the slice below with which it has the mutually largest overlap (at
    least ``min_overlap`` of the smaller of the two); other components start new objects."""
    out = np.zeros(fg.shape, np.int32)
    prev, prev_ids, next_id = None, None, 1
    for z in range(fg.shape[0]):
        comp, n = ndimage.label(fg[z])
        ids = np.zeros(n + 1, np.int32)
        if prev is not None and n:
            both = (prev > 0) & (comp > 0)
            pairs, counts = np.unique(prev[both].astype(np.int64) * (n + 1) + comp[both], return_counts=True)
            size_a, size_b = np.bincount(prev.ravel()), np.bincount(comp.ravel(), minlength=n + 1)
            best_a, best_b = {}, {}  # strict '>' keeps the first: deterministic
            for p, c in zip(pairs, counts):
                a, b = divmod(int(p), n + 1)
                if c > best_a.get(a, (0,))[0]:
                    best_a[a] = (c, b)
                if c > best_b.get(b, (0,))[0]:
                    best_b[b] = (c, a)
            for b, (c, a) in best_b.items():
                if best_a[a][1] == b and c >= min_overlap * min(size_a[a], size_b[b]):
                    ids[b] = prev_ids[a]
        for b in range(1, n + 1):
            if not ids[b]:
                ids[b], next_id = next_id, next_id + 1
        out[z] = ids[comp]
        prev, prev_ids = comp, ids
    return out


def load_model(name, device="cpu"):
    """``models.load_model``, except that Meta's weights not downloaded yet (no network here)
    give the seeded random initialisation, with a warning (timings hold, masks mean nothing)."""
    from napari_scroll_sam.sam import models

    dev = models.resolve_device(device)
    if name in models.WEIGHTS and not (models.cache_dir() / models.WEIGHTS[name].filename).is_file():
        print(f"WARNING: {name} weights are not downloaded: random weights (seed {models.RANDOM_SEED}); "
              f"the masks mean nothing", file=sys.stderr)
        cfg = models.CONFIGS[name]
        return models.SamModel(models._random_model(cfg).to(dev).eval(), cfg, dev, f"{name}:random", name)
    return models.load_model(name, dev, progress=False)


def _spread(cands, k):
    cands = sorted(cands)
    if len(cands) <= k:
        return [c[-1] for c in cands]
    return [cands[i][-1] for i in sorted(set(np.linspace(0, len(cands) - 1, k).round().astype(int)))]


def _missing(name, path):
    SKIPPED[name] = f"{path} not found (it lives in ../shared/data beside the repository)"
    return None


def isbi(split="eval", max_objects=8, min_slices=8):
    root = DATA / "isbi2012-em"
    if not (root / "label").is_dir():
        return _missing("isbi", root)
    z0, z1 = SPLIT["isbi2012-em"][split]["z"]
    vol = open_volume(root / "image").crop(z=(z0, z1))
    objs = link_objects(open_volume(root / "label").data[z0:z1].compute() == 255)
    cands = []
    for oid in range(1, int(objs.max()) + 1):
        m = objs == oid
        zs = np.nonzero(m.any(axis=(1, 2)))[0]
        if len(zs) >= min(min_slices, z1 - z0):
            med = float(np.median([m[z].sum() for z in zs]))
            if 1000 <= med <= 15000:
                cands.append((med, oid))
    pick = _spread(cands, max_objects)
    return Dataset("isbi", vol, {i + 1: objs == oid for i, oid in enumerate(pick)},
                   f"isbi2012-em z {z0}..{z1 - 1}")


def chloroplast(split="eval", max_objects=None):
    root = DATA / "chloroplast-em"
    if not (root / "labels.tif").is_file():
        return _missing("chloroplast", root)
    import tifffile

    x0, x1 = SPLIT["chloroplast-em"][split]["x"]
    vol = open_volume(root / "image").crop(x=(x0, x1))
    lab = tifffile.imread(root / "labels.tif")
    inside = lab[:, :, x0:x1]
    objs = {}
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None or sl[2].start < x0 or sl[2].stop > x1:
            continue
        objs[i] = inside == i
    if max_objects:
        keep = _spread([(int(m.sum()), k) for k, m in objs.items()], max_objects)
        objs = {k: objs[k] for k in keep}
    return Dataset("chloroplast", vol, {j + 1: m for j, m in enumerate(objs.values())},
                   f"chloroplast-em x {x0}..{x1 - 1}")


def mri(which):
    root = DATA / "brain-mri"
    name = f"mri{which}"
    if not (root / f"brain{which}_label.nrrd").is_file():
        return _missing(name, root)
    vol = open_volume(root / f"brain{which}_image.nrrd")
    lab = open_volume(root / f"brain{which}_label.nrrd").data.compute() > 0
    return Dataset(name, vol, {1: lab}, f"brain-mri brain{which}")


def scroll(touching=False):
    from napari_scroll_sam.io.phantom import CONTRAST_LIMITS, sample_scroll, scroll_phantom

    if touching:
        image, sheets, _ = scroll_phantom((64, 256, 256), seed=1, wraps=14)
        name = "scroll_touching"
    else:  # exactly the File-menu sample
        (image, _, _), (sheets, _, _), _ = sample_scroll()
        name = "scroll"
    vol = Volume(levels=[image.compute()], contrast_limits=CONTRAST_LIMITS, name=name)
    sheets = sheets.compute()
    return Dataset(name, vol, {int(k): sheets == k for k in np.unique(sheets[sheets > 0])},
                   "sample_scroll() (File menu)" if not touching else "scroll_phantom(seed=1, wraps=14)")


def load(name, split="eval", **kw) -> Dataset | None:
    if name == "isbi":
        return isbi(split, **kw)
    if name == "chloroplast":
        return chloroplast(split, **kw)
    if name in ("mri1", "mri2"):
        if split != "eval":
            raise ValueError("the brain MRI volumes are evaluation only (data_split.json)")
        return mri(int(name[-1]))
    if name in ("scroll", "scroll_touching"):
        return scroll(touching=name == "scroll_touching")
    raise ValueError(f"unknown dataset {name!r}: one of {', '.join(NAMES)}")


if __name__ == "__main__":
    for n in NAMES:
        d = load(n)
        if d is None:
            print(n, "skipped:", SKIPPED[n])
            continue
        print(n, d.volume.shape, d.volume.contrast_limits, len(d.objects), "objects,", d.object_slices,
              "object-slices;", d.source)
