"""Checkpoint files: read any SAM checkpoint safely (``weights_only``), write this project's
format atomically (``{"format": "napari-scroll-sam/1", "config": …, "model": …, **extras}``)."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch

from ._compat import ensure_segment_anything

ensure_segment_anything()

from segment_anything.modeling import Sam  # noqa: E402

from .config import CONFIGS, ModelError, SamConfig, _check_fits, _config, _looks_like, infer_config  # noqa: E402

log = logging.getLogger(__name__)

FORMAT = "napari-scroll-sam/1"
_MB = 1 << 20



# --------------------------------------------------------------------------- checkpoints

def _torch_load(path: Path) -> Any:
    if not path.exists():
        raise ModelError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip, or a legacy pickle
        raise ModelError(f"{path} is not a readable checkpoint: not a PyTorch file (it starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            why = next((line.split("error:", 1)[1].strip() for line in str(exc).splitlines()
                        if "WeightsUnpickler error:" in line), "")
            raise ModelError(
                f"{path} holds Python objects besides tensors and plain values; it was refused "
                f"unread (torch.load weights_only=True) because unpickling them can run code"
                f"{f' ({why})' if why else ''}. If you trust it, re-save its state dict alone."
            ) from None
        raise ModelError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 — zip reader, EOF, magic number …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                         f"{type(exc).__name__}: {first}") from None


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file safely.

    Returns ``{"format": FORMAT or None, "config": SamConfig, "model": state dict,
    "extra": {…}}``; for a plain state dict (Meta's) the configuration is inferred.
    """
    path = Path(path).expanduser()
    obj = _torch_load(path)
    if isinstance(obj, Mapping) and "format" in obj:
        if obj["format"] != FORMAT:
            raise ModelError(f"{path}: checkpoint format {obj['format']!r} is not one this "
                             f"version reads ({FORMAT!r})")
        if "config" not in obj or not _is_state_dict(obj.get("model")):
            raise ModelError(f"{path}: a {FORMAT} checkpoint needs 'config' and 'model' entries")
        try:
            cfg = SamConfig.from_dict(obj["config"])
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None
        extra = {k: v for k, v in obj.items() if k not in ("format", "config", "model")}
        return {"format": FORMAT, "config": cfg, "model": dict(obj["model"]), "extra": extra}
    sd = obj
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        sd = next((obj[k] for k in ("model", "state_dict", "model_state_dict")
                   if _is_state_dict(obj.get(k))), obj)
    if not _is_state_dict(sd):
        raise ModelError(f"{path} is not a SAM checkpoint: it holds a {type(obj).__name__}, "
                         f"not a state dict (names → tensors) or a {FORMAT} checkpoint")
    if all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    try:
        cfg = infer_config(sd)
    except ModelError as exc:
        raise ModelError(f"{path} does not fit any SAM: {exc}; {_looks_like(sd)}") from None
    return {"format": None, "config": cfg, "model": dict(sd), "extra": {}}


def _fingerprint(path: Path) -> str:
    """Cheap identity of a file: first and last MB (a zip's end lists every entry's
    CRC-32), size and modification time."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(_MB))
        if st.st_size > _MB:
            f.seek(max(_MB, st.st_size - _MB))
            h.update(f.read())
    return h.hexdigest()[:12]


def _plain(value: Any, where: str) -> Any:
    """``value`` as something ``torch.load(weights_only=True)`` reads back (or an error)."""
    import numpy as np

    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or type(value) in (bool, int, float, complex, str, bytes, torch.dtype,
                                        torch.Size, torch.device):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach() if isinstance(value, torch.nn.Parameter) else value
    for base in (bool, int, float, str):  # enums and other subclasses: their plain value
        if isinstance(value, base):
            return base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, Mapping):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise ModelError(f"checkpoint extra {where!r} has a key of type {type(k).__name__}")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise ModelError(f"checkpoint extra {where!r} is a {type(value).__name__}: checkpoints hold "
                     f"only tensors and plain Python values (they are read with weights_only=True)")


def save_checkpoint(path: str | os.PathLike, model, /,
                    config: SamConfig | str | None = None, *, dtype: torch.dtype | None = None,
                    **extra: Any) -> Path:
    """Write ``model`` as a napari-scroll-sam checkpoint, atomically; return its path.

    ``extra`` (optimizer state, step, best score, sampling, window …) is stored beside the
    weights; ``dtype=torch.float16`` halves the file (it loads back as float32).
    """
    path = Path(path).expanduser()
    if _is_loaded_model(model):
        sam, cfg = model.sam, _config(config) if config is not None else model.config
    elif isinstance(model, Sam):
        sam = model
        if config is None:
            cfg = infer_config(sam.state_dict())
            if cfg.name not in CONFIGS:
                raise ModelError("save_checkpoint needs the config of a Sam that is not one of "
                                 f"{', '.join(CONFIGS)} (decoder heads do not show in its weights)")
        else:
            cfg = _config(config)
    else:
        raise ModelError(f"save_checkpoint takes a SamModel or a Sam, not {type(model).__name__}")
    clash = sorted({"format", "config", "model"} & set(extra))
    if clash:
        raise ModelError(f"checkpoint extras may not be named {clash}")
    extra = {k: _plain(v, k) for k, v in extra.items()}
    sd = {k: v.detach().to("cpu", dtype=dtype if dtype is not None and v.is_floating_point() else None)
          for k, v in sam.state_dict().items()}
    _check_fits(sd, cfg, f"the model saved to {path}")
    payload = {"format": FORMAT, "config": cfg.to_dict(), "model": sd, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path




def _is_loaded_model(obj) -> bool:
    """A ``SamModel`` (duck-typed: a module and its configuration)."""
    return hasattr(obj, "sam") and isinstance(getattr(obj, "config", None), SamConfig)
