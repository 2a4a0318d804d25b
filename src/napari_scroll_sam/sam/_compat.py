"""Make ``segment_anything`` importable with or without a working torchvision.

``segment_anything`` 1.0 imports four torchvision functions at import time (even for
``segment_anything.modeling``): ``resize`` and ``to_pil_image`` from
``torchvision.transforms.functional`` and ``batched_nms`` and ``box_area`` from
``torchvision.ops.boxes``. torchvision is not a declared dependency, and PyPI's torchvision
wheels are CUDA builds: next to a CPU torch, ``import torchvision`` fails with
``RuntimeError: operator torchvision::nms does not exist`` (its ``_C.so`` does not load,
yet ``torchvision/_meta_registrations.py`` registers fake kernels for the ``nms`` and
``qnms`` operators unconditionally).

:func:`ensure_segment_anything` takes the first path that works and records it in
:data:`TORCHVISION`:

``"real"``
    ``import torchvision`` works: nothing is changed.
``"patched-ops"``
    torchvision is installed but its compiled operators did not load. The missing
    operator schemas (``torchvision::nms``, ``torchvision::qnms``) are defined with
    ``torch.library`` together with a pure-torch kernel, the half-imported
    ``torchvision*`` modules are dropped and torchvision is imported again. It then
    imports for everybody in the process; ``torchvision.ops.nms`` (which refuses to run
    when ``_C`` did not load) is pointed at the pure-torch operator. Compiled operators
    without a Python fallback (``deform_conv2d`` …) still raise torchvision's own error.
``"stub"``
    torchvision is absent (or still broken): small stand-in modules providing exactly the
    four functions are put into ``sys.modules`` while ``segment_anything`` is imported,
    and removed again afterwards, so other packages still see "no torchvision" (an
    ``import torchvision`` elsewhere raises ``ImportError`` as before). The stand-ins
    carry ``__napari_scroll_sam_stub__ = True`` and stay reachable in :data:`STUBS`.

Read the outcome as ``_compat.TORCHVISION`` (a ``from … import TORCHVISION`` copies the
value at that moment).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import re
import sys
import threading
import types
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

#: which path :func:`ensure_segment_anything` took: "real", "patched-ops" or "stub"
#: (``None`` before it ran)
TORCHVISION: str | None = None
#: why torchvision was not used as is (empty on the "real" path)
TORCHVISION_PROBLEM: str = ""
#: the stand-in modules by name (filled on the "stub" path only)
STUBS: dict[str, types.ModuleType] = {}

_LOCK = threading.RLock()
_LIBRARY: "torch.library.Library | None" = None  # kept alive: the op definitions live with it
_MISSING_OP = re.compile(r"operator torchvision::(\w+) does not exist")
# The schemas torchvision's C++ extension defines for the operators it needs at import.
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


# --------------------------------------------------------------------------- pure torch ops

def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms`` (CPU semantics).

    ``boxes`` (N, 4) in ``(x1, y1, x2, y2)``, ``scores`` (N,). Returns the int64 indices of
    the kept boxes in decreasing score order; a box is dropped when its IoU with a kept,
    higher-scoring box is greater than ``iou_threshold``.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes should be a (N, 4) tensor, got {tuple(boxes.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores should be a ({boxes.shape[0]},) tensor, got {tuple(scores.shape)}")
    device = boxes.device
    n = boxes.shape[0]
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    b = boxes.detach().cpu()
    if not b.is_floating_point() or b.dtype in (torch.float16, torch.bfloat16):
        b = b.float()
    b = b[order].numpy()
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    removed = np.zeros(n, dtype=bool)
    keep = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(n):
            if removed[i]:
                continue
            keep.append(i)
            rest = slice(i + 1, n)
            w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
            h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            removed[rest] |= iou > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.int64)].to(device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each category ``idxs``, as ``torchvision.ops.batched_nms``.

    Returns the int64 indices of the kept boxes in decreasing score order.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    keep_mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for class_id in torch.unique(idxs):
        members = torch.where(idxs == class_id)[0]
        kept = nms(boxes[members], scores[members], iou_threshold)
        keep_mask[members[kept]] = True
    keep = torch.where(keep_mask)[0]
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


def box_area(boxes: torch.Tensor, fmt: str = "xyxy") -> torch.Tensor:
    """Areas of ``(..., 4)`` boxes, as ``torchvision.ops.box_area`` (xyxy, xywh, cxcywh)."""
    if boxes.is_floating_point():
        boxes = boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()
    elif boxes.dtype not in (torch.int32, torch.int64):
        boxes = boxes.int()
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    if fmt in ("xywh", "cxcywh"):
        return boxes[..., 2] * boxes[..., 3]
    raise ValueError(f"box format {fmt!r} is not one of 'xyxy', 'xywh', 'cxcywh'")


def _qnms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return nms(boxes.float(), scores.float(), iou_threshold)


# --------------------------------------------------------------------------- image functions

def to_pil_image(pic, mode: str | None = None):
    """A numpy ``(H, W[, C])`` array or a torch ``(C, H, W)`` tensor → ``PIL.Image``.

    As ``torchvision.transforms.functional.to_pil_image``: floats are taken as 0–1 and
    scaled to uint8 (unless ``mode="F"``); uint8 arrays with 1, 2, 3 or 4 channels become "L", "LA",
    "RGB", "RGBA"; single-channel 16/32-bit integer and float32 arrays keep their values
    (PIL modes "I;16", "I", "F").
    """
    from PIL import Image

    if isinstance(pic, torch.Tensor):
        if pic.dim() not in (2, 3):
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.dim()} dimensions")
        if pic.dim() == 2:
            pic = pic.unsqueeze(0)
        if pic.is_floating_point() and mode != "F":
            pic = pic.mul(255).byte()
        arr = pic.detach().cpu().permute(1, 2, 0).numpy()
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.ndim} dimensions")
        arr = pic[:, :, None] if pic.ndim == 2 else pic
        if np.issubdtype(arr.dtype, np.floating) and mode != "F":
            arr = (arr * 255).astype(np.uint8)
    else:
        raise TypeError(f"pic should be a Tensor or an ndarray, got {type(pic).__name__}")
    channels = arr.shape[2]
    if channels == 1:
        arr = arr[:, :, 0]
        if arr.dtype.type not in (np.uint8, np.int16, np.uint16, np.int32, np.float32):
            raise TypeError(f"input type {arr.dtype} is not supported")
    elif arr.dtype != np.uint8:
        raise TypeError(f"input type {arr.dtype} is not supported for {channels} channels")
    elif channels > 4:
        raise ValueError(f"pic should not have more than 4 channels, got {channels}")
    img = Image.fromarray(np.ascontiguousarray(arr))
    return img.convert(mode) if mode and mode != img.mode else img


def _target_size(h: int, w: int, size, max_size=None) -> tuple[int, int]:
    if isinstance(size, int):
        size = [size]
    size = list(size)
    if len(size) == 2:
        return int(size[0]), int(size[1])
    if len(size) != 1:
        raise ValueError(f"size should be an int or a sequence of one or two ints, got {size}")
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size[0], int(size[0] * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


def resize(img, size: Sequence[int] | int, interpolation=None, max_size=None, antialias=True):
    """Resize a PIL image or a ``(..., H, W)`` tensor to ``size`` = ``[h, w]`` (bilinear).

    As ``torchvision.transforms.functional.resize``: an int (or one-element list) matches
    the shorter edge and keeps the aspect ratio.
    """
    from PIL import Image

    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
        th, tw = _target_size(h, w, size, max_size)
        lead = img.shape[:-2]
        x = img.reshape(-1, 1, h, w)
        dtype = x.dtype
        x = x if x.is_floating_point() else x.float()
        out = torch.nn.functional.interpolate(x, size=(th, tw), mode="bilinear",
                                              align_corners=False, antialias=bool(antialias))
        if not dtype.is_floating_point:
            out = out.round().clamp(torch.iinfo(dtype).min, torch.iinfo(dtype).max)
        return out.to(dtype).reshape(*lead, th, tw)
    if isinstance(img, Image.Image):
        th, tw = _target_size(img.height, img.width, size, max_size)
        resample = Image.BILINEAR if interpolation is None else _pil_interpolation(interpolation)
        return img.resize((tw, th), resample)
    raise TypeError(f"img should be a PIL Image or a Tensor, got {type(img).__name__}")


def _pil_interpolation(interpolation):
    from PIL import Image

    value = getattr(interpolation, "value", interpolation)
    names = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
             "box": Image.BOX, "hamming": Image.HAMMING, "lanczos": Image.LANCZOS}
    if isinstance(value, str) and value in names:
        return names[value]
    return value


# --------------------------------------------------------------------------- the three paths

def _purge(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def _import_torchvision() -> types.ModuleType:
    tv = importlib.import_module("torchvision")
    # the four names segment_anything takes; a half-working install fails here, not later
    from torchvision.ops.boxes import batched_nms as _b, box_area as _a  # noqa: F401
    from torchvision.transforms.functional import resize as _r, to_pil_image as _p  # noqa: F401
    return tv


def _define_ops(names) -> list[str]:
    """Define the torchvision operators ``names`` (that we know) with pure-torch kernels."""
    global _LIBRARY
    defined = []
    for name in names:
        if name not in _SCHEMAS:
            continue
        if hasattr(torch.ops.torchvision, name):
            continue
        if _LIBRARY is None:
            _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
        _LIBRARY.define(_SCHEMAS[name])
        kernel = nms if name == "nms" else _qnms
        # every backend: a CUDA torch with a mismatched torchvision lands here too
        _LIBRARY.impl(name, kernel, "CompositeExplicitAutograd")
        defined.append(name)
    return defined


def _call_nms_op(boxes, scores, iou_threshold):
    if boxes.is_quantized:
        return torch.ops.torchvision.qnms(boxes.int_repr(), scores.int_repr(), iou_threshold)
    return torch.ops.torchvision.nms(boxes, scores, iou_threshold)


def _patch_python_nms(tv: types.ModuleType) -> None:
    """Point ``torchvision.ops.nms`` at the operator when torchvision's own refuses to run.

    torchvision's Python ``nms`` first asserts that ``_C`` loaded; ``batched_nms`` calls
    that module-level ``nms``.
    """
    boxes_mod = sys.modules.get("torchvision.ops.boxes")
    if boxes_mod is None:
        return
    try:
        boxes_mod.nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)
        return
    except Exception:  # noqa: BLE001 — "Couldn't load custom C++ ops"
        pass
    _call_nms_op.__name__ = "nms"
    _call_nms_op.__doc__ = (nms.__doc__ or "") + "\n(napari-scroll-sam: the pure-torch operator)"
    boxes_mod.nms = _call_nms_op
    ops_mod = sys.modules.get("torchvision.ops")
    if ops_mod is not None and hasattr(ops_mod, "nms"):
        ops_mod.nms = _call_nms_op


def _try_patched_ops(first_error: Exception) -> types.ModuleType | None:
    error: Exception = first_error
    for _ in range(len(_SCHEMAS) + 1):
        m = _MISSING_OP.search(str(error))
        if m is None or not _define_ops([m.group(1), *_SCHEMAS]):
            break
        _purge("torchvision")
        try:
            tv = _import_torchvision()
        except RuntimeError as exc:
            error = exc
            continue
        except Exception as exc:  # noqa: BLE001
            error = exc
            break
        _patch_python_nms(tv)
        return tv
    log.info("torchvision still does not import after defining its operators: %s", error)
    _purge("torchvision")
    return None


def _stub_module(name: str, doc: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name, doc)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    mod.__path__ = []
    mod.__napari_scroll_sam_stub__ = True
    for key, value in attrs.items():
        setattr(mod, key, value)

    def __getattr__(attr):
        raise AttributeError(
            f"{name}.{attr} is not available: this {name!r} is napari-scroll-sam's minimal "
            f"stand-in for segment_anything (torchvision is not installed or does not import)")

    mod.__getattr__ = __getattr__
    return mod


def _make_stubs() -> dict[str, types.ModuleType]:
    doc = "napari-scroll-sam stand-in: only what segment_anything imports."
    functional = _stub_module("torchvision.transforms.functional", doc,
                              resize=resize, to_pil_image=to_pil_image)
    transforms = _stub_module("torchvision.transforms", doc, functional=functional)
    boxes = _stub_module("torchvision.ops.boxes", doc, batched_nms=batched_nms,
                         box_area=box_area, nms=nms)
    ops = _stub_module("torchvision.ops", doc, boxes=boxes, batched_nms=batched_nms,
                       box_area=box_area, nms=nms)
    root = _stub_module("torchvision", doc, transforms=transforms, ops=ops,
                        __version__="0+napari-scroll-sam-stub")
    return {m.__name__: m for m in (root, transforms, functional, ops, boxes)}


def _import_segment_anything_with_stubs() -> None:
    stubs = _make_stubs()
    _purge("torchvision")
    sys.modules.update(stubs)
    try:
        importlib.import_module("segment_anything")
    finally:
        for name, mod in stubs.items():
            if sys.modules.get(name) is mod:
                del sys.modules[name]
    STUBS.clear()
    STUBS.update(stubs)


def ensure_segment_anything() -> str:
    """Make ``import segment_anything`` work; return (and set) :data:`TORCHVISION`.

    Idempotent and thread-safe. Imports ``segment_anything`` itself (so its references to
    the torchvision functions are bound to whichever implementation was chosen).
    """
    global TORCHVISION, TORCHVISION_PROBLEM
    with _LOCK:
        if TORCHVISION is not None:
            return TORCHVISION
        path, problem = "real", ""
        try:
            _import_torchvision()
        except RuntimeError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            try:
                patched = _try_patched_ops(exc)
            except Exception as again:  # noqa: BLE001 — e.g. defining the schema failed
                log.info("defining torchvision's operators failed: %s", again)
                patched = None
            path = "patched-ops" if patched is not None else "stub"
        except ImportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            path = "stub"
        except Exception as exc:  # noqa: BLE001 — any other broken install
            problem = f"{type(exc).__name__}: {exc}"
            path = "stub"
        if path == "stub":
            _purge("torchvision")
            _import_segment_anything_with_stubs()
        else:
            importlib.import_module("segment_anything")
        if path != "real":
            log.info("torchvision: %s (%s)", path, problem.splitlines()[0] if problem else "")
        TORCHVISION, TORCHVISION_PROBLEM = path, problem
        return path
