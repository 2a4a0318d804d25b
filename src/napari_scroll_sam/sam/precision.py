"""The precision the image encoder (and training) runs in: bfloat16 autocast on CUDA, and on
a CPU with AMX tiles (``amx_bf16``: Intel Sapphire Rapids and newer), where it is faster
than float32 (measured on such a CPU, one thread: `small_hr`'s encoder 2.5x, a training
step's encoder forward + backward 1.8x); float32 on every other CPU. AVX-512 BF16 alone
(``avx512_bf16`` without AMX, e.g. some cloud Xeons and AMD Zen 4) does not pay: measured on
such a 2-core Xeon, `small_hr`'s encoder with the default SDPA attention took 49 ms per 256²
slice in bf16 against 26 ms in float32 (93 vs 51 ms on one thread), and a training step's
forward + backward (batch 4, one thread) 0.88 s against 0.91 s. Inference decodes in float32;
training autocasts the decoder too.

``NAPARI_SCROLL_SAM_CPU_BF16=0`` (or ``1``) overrides the CPU's answer.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

ENV = "NAPARI_SCROLL_SAM_CPU_BF16"
CPU_FLAGS = ("amx_bf16",)  # AVX-512 BF16 alone measured slower (see above)


@functools.lru_cache(maxsize=None)
def _cpuinfo_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16() -> bool:
    """Whether the encoder runs in bfloat16 on this CPU (the environment variable, else the
    CPU's flags; False where they cannot be read, e.g. off Linux)."""
    env = os.environ.get(ENV, "").strip().lower()
    if env in ("0", "1", "false", "true", "no", "yes", "off", "on"):
        return env in ("1", "true", "yes", "on")
    return bool(_cpuinfo_flags() & set(CPU_FLAGS))


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype autocast computes in on ``device`` (bfloat16 where it is native, else float32)."""
    return torch.bfloat16 if device.type == "cuda" or (device.type == "cpu" and cpu_bf16()) else torch.float32


def bf16_autocast(device: torch.device):
    """A context that autocasts to :func:`compute_dtype` (a no-op for float32)."""
    dtype = compute_dtype(device)
    if dtype == torch.float32 or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
