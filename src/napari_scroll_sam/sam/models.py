"""SAM models: configurations, published weights, devices, checkpoints.

``load_model`` takes a registry name (``vit_b``, ``vit_l``, ``vit_h``: Meta's weights,
downloaded once into :func:`cache_dir` and checked by SHA256), ``small_hr`` / ``small`` (CPU-sized SAMs
of the same architecture), or the path of a checkpoint: Meta's plain state dict (its
configuration is read off the tensor shapes) or one written by :func:`save_checkpoint`
(``{"format": "napari-scroll-sam/1", "config": …, "model": …, **extras}``), which carries
its configuration. Files are always read with ``torch.load(weights_only=True)``.

Environment: ``NAPARI_SCROLL_SAM_CACHE`` (download folder), ``NAPARI_SCROLL_SAM_WEIGHTS_URL``
(a base URL replacing ``https://dl.fbaipublicfiles.com/segment_anything/``: mirrors, tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ._compat import ensure_segment_anything

ensure_segment_anything()

from segment_anything.modeling import Sam  # noqa: E402

log = logging.getLogger(__name__)

from .checkpoint import FORMAT, _fingerprint, _torch_load, read_checkpoint, save_checkpoint  # noqa: E402,F401
from .config import (  # noqa: E402,F401
    CONFIGS, ModelError, SamConfig, PIXEL_MEAN, PIXEL_STD, _check_fits, _config, build_sam, build_to_load,
    infer_config,
)
from .weights import WEIGHTS, Weights, _is_verified, _known_names, _weights, cache_dir, download_weights, weights_url  # noqa: E402,F401

#: trained weights shipped with the package, ``<name>.pt`` (project format)
PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"
RANDOM_SEED = 0



# --------------------------------------------------------------------------- devices

def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` → cuda, then mps, then cpu; a named device must be available."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or "
                         f"'mps' (available: {', '.join(available_devices())})") from None
    available = ", ".join(available_devices())
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (dev.index is None or dev.index < count):
            return dev
        why = (f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
               else f"torch sees {count} CUDA device(s)")
        raise ModelError(f"device {str(dev)!r} is not available: {why}; available: {available}")
    if dev.type == "mps" and _mps_available():
        return dev
    raise ModelError(f"device {str(dev)!r} is not available; available: {available}")


def _instantiate(cfg: SamConfig, sd: Mapping[str, torch.Tensor], what: str) -> Sam:
    """A Sam holding ``sd`` (cast to float32), built without a throw-away random init."""
    sam = build_to_load(cfg)
    _check_fits(sd, cfg, what, sam)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    sam.load_state_dict(sd, strict=True, assign=True)
    # the two non-persistent buffers are not in any state dict
    sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
    sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
    if any(t.is_meta for t in [*sam.parameters(), *sam.buffers()]):  # a meta build not filled
        raise ModelError(f"{what}: internal error, tensors left unloaded")
    return sam.eval()


@dataclass
class SamModel:
    """A loaded SAM: the module (eval mode, on ``device``) and where it came from.

    ``model_id`` changes whenever the weights change: ``vit_b:<sha256[:12]>`` for a
    download, ``<name>:<file fingerprint>`` for a file, ``<name>:random`` for the seeded
    random initialisation.
    """

    sam: Sam = field(repr=False)
    config: SamConfig
    device: torch.device
    model_id: str
    source: Path | str

    @property
    def img_size(self) -> int:
        return self.config.img_size

    @property
    def name(self) -> str:
        return self.config.name

    def to(self, device: str | torch.device) -> "SamModel":
        """Move the module (in place) and return the model on ``device``."""
        dev = resolve_device(device)
        return dataclasses.replace(self, sam=self.sam.to(dev), device=dev)


def _random_model(cfg: SamConfig) -> Sam:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build_sam(cfg)


def load_model(name_or_path: str | os.PathLike, device: str | torch.device | None = "auto", *,
               config: SamConfig | str | None = None, cache: str | os.PathLike | None = None,
               progress: bool = True) -> SamModel:
    """Load a SAM by registry name (``vit_b``, ``vit_l``, ``vit_h``, ``small``) or file path.

    ``config`` states the architecture the file must have (an error names what it looks like
    otherwise); ``cache`` overrides :func:`cache_dir` for downloads.
    """
    dev = resolve_device(device)  # fail before any download
    expected = _config(config) if config is not None else None
    key = name_or_path if isinstance(name_or_path, str) else None
    model_id = None
    if key is not None and key in WEIGHTS:
        path = download_weights(key, cache, progress)
        expected = expected or CONFIGS.get(key)
        model_id = f"{key}:{_weights(key).sha256[:12]}"
    elif key is not None and key in CONFIGS:
        path = PACKAGED_WEIGHTS / f"{key}.pt"
        if not path.is_file():
            cfg = expected or CONFIGS[key]
            log.warning("no trained weights for %r are packaged: using random weights (seed %d); "
                        "its masks mean nothing until it is fine-tuned", key, RANDOM_SEED)
            return SamModel(_random_model(cfg).to(dev).eval(), cfg, dev, f"{key}:random", key)
        expected = expected or CONFIGS[key]
    elif isinstance(name_or_path, os.PathLike) or (
            key is not None and (os.sep in key or "/" in key or Path(key).suffix or Path(key).exists())):
        path = Path(name_or_path).expanduser()
    else:
        raise ModelError(f"unknown model {name_or_path!r}; known: {_known_names()} "
                         f"(or give the path of a checkpoint file)")

    ckpt = read_checkpoint(path)
    cfg, sd = ckpt["config"], ckpt["model"]
    if expected is not None:
        if ckpt["format"] and dataclasses.replace(ckpt["config"], name=expected.name) != expected:
            raise ModelError(f"{path} does not fit {expected.name} ({expected.describe()}): "
                             f"it holds a {cfg.name} ({cfg.describe()}) configuration")
        cfg = expected
    sam = _instantiate(cfg, sd, str(path))
    if model_id is None:  # Meta's file given by path: the download's id if it was checked
        model_id = next((f"{name}:{Weights(*entry).sha256[:12]}" for name, entry in WEIGHTS.items()
                         if Weights(*entry).filename == path.name
                         and _is_verified(path, Weights(*entry).sha256)),
                        f"{cfg.name}:{_fingerprint(path)}")
    return SamModel(sam.to(dev).eval(), cfg, dev, model_id, path)


def model_summary(model: SamModel | Sam) -> dict[str, Any]:
    """Name, parameter count, input size, device (and id, source) of a model."""
    sam = model.sam if isinstance(model, SamModel) else model
    param = next(sam.parameters())
    out = {
        "name": model.config.name if isinstance(model, SamModel) else "custom",
        "params": sum(p.numel() for p in sam.parameters()),
        "img_size": int(sam.image_encoder.img_size),
        "device": str(model.device if isinstance(model, SamModel) else param.device),
    }
    if isinstance(model, SamModel):
        out.update(model_id=model.model_id, source=str(model.source))
    return out
