"""SAM: configurations (``config``), published weights (``weights``), checkpoint files
(``checkpoint``), loading and devices (``models``), embeddings, tiles, prediction.

Importing this package first makes ``segment_anything`` importable whether or not a
working torchvision is installed (see ``_compat``).
"""

from ._compat import ensure_segment_anything

ensure_segment_anything()

from .models import (  # noqa: E402
    CONFIGS,
    WEIGHTS,
    ModelError,
    SamConfig,
    SamModel,
    build_sam,
    cache_dir,
    download_weights,
    infer_config,
    load_model,
    model_summary,
    read_checkpoint,
    resolve_device,
    save_checkpoint,
)

__all__ = [
    "CONFIGS",
    "WEIGHTS",
    "ModelError",
    "SamConfig",
    "SamModel",
    "build_sam",
    "cache_dir",
    "download_weights",
    "infer_config",
    "ensure_segment_anything",
    "load_model",
    "model_summary",
    "read_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
