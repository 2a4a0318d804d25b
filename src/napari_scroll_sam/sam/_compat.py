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
    carry ``__napari_scroll_sam_stub__ = True`` and stay reachable in :data:`STUBS`
    (the functions themselves: ``_standins.py``).

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
import torch

# the stand-ins (re-exported: ``_compat.nms`` … are what the stub modules hold)
from ._standins import _qnms, batched_nms, box_area, nms, resize, to_pil_image  # noqa: F401

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
