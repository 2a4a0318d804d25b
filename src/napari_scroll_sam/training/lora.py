"""Low-rank adapters (LoRA, Hu et al. 2021) on the image encoder's attention.

``add_lora(sam, rank)`` wraps the ``qkv`` and ``proj`` linear layers of every attention
block of ``sam.image_encoder`` in a :class:`LoRALinear`: the frozen weight ``W`` plus a
trainable low-rank update ``(alpha / rank) * B @ A`` (``A`` small random, ``B`` zero, so
the model starts exactly as it was). Only ``A`` and ``B`` train: for the built-in
``small`` model at rank 4 that is 16 k parameters against 1.1 M in the encoder.

``merged_copy(sam)`` gives a plain copy (every adapter folded into its weight) whose
state dict has the keys of the original architecture, which is what a checkpoint holds;
``merge_lora(sam)`` folds the adapters in place and removes them.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + scale * x @ A.T @ B.T`` with ``base`` frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for p in base.parameters():
            p.requires_grad = False
        self.rank = int(rank)
        self.scale = float(alpha if alpha is not None else rank) / self.rank
        w = base.weight
        a = torch.empty(self.rank, base.in_features)  # drawn on the CPU: the generator's device
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        self.A = nn.Parameter(a.to(device=w.device, dtype=w.dtype))
        self.B = nn.Parameter(torch.zeros(base.out_features, self.rank, device=w.device, dtype=w.dtype))

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x):
        return self.base(x) + (x @ self.A.t() @ self.B.t()) * self.scale

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the update folded in."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.base.weight + self.scale * (self.B @ self.A))
            if self.base.bias is not None:
                lin.bias.copy_(self.base.bias)
        return lin.requires_grad_(self.base.weight.requires_grad)


TARGETS = ("qkv", "proj")


def add_lora(sam, rank: int = 4, alpha: float | None = None, targets=TARGETS, seed: int = 0) -> list[LoRALinear]:
    """Wrap the attention ``targets`` of every block of ``sam.image_encoder``; returns the adapters
    (``A`` drawn from ``seed``: the same seed, the same run)."""
    gen = torch.Generator().manual_seed(seed)
    added = []
    for blk in sam.image_encoder.blocks:
        for name in targets:
            lin = getattr(blk.attn, name)
            if isinstance(lin, LoRALinear):
                raise ValueError("the encoder already carries LoRA adapters")
            wrapped = LoRALinear(lin, rank, alpha, gen)
            setattr(blk.attn, name, wrapped)
            added.append(wrapped)
    return added


def has_lora(sam) -> bool:
    return any(isinstance(m, LoRALinear) for m in sam.modules())


def merge_lora(sam):
    """Fold every adapter into its weight, in place; returns ``sam`` (plain again)."""
    for blk in sam.image_encoder.blocks:
        for name, child in list(blk.attn.named_children()):
            if isinstance(child, LoRALinear):
                setattr(blk.attn, name, child.merged())
    return sam


def merged_copy(sam):
    """A deep copy of ``sam`` with the adapters folded in (``sam`` is left as it is)."""
    return merge_lora(copy.deepcopy(sam)) if has_lora(sam) else sam


def lora_state(sam) -> dict:
    """The adapters' tensors {module path: {"A", "B"}} (what resuming needs besides the merged weights)."""
    return {n: {"A": m.A.detach().cpu(), "B": m.B.detach().cpu()} for n, m in sam.named_modules()
            if isinstance(m, LoRALinear)}


def load_lora_state(sam, state: dict, merged_weights: bool = True):
    """Put saved adapters back. With ``merged_weights`` the base weights just loaded hold the
    update already (a checkpoint stores merged weights): it is taken out of them again."""
    mods = dict(sam.named_modules())
    for name, t in state.items():
        m = mods.get(name)
        if not isinstance(m, LoRALinear):
            raise ValueError(f"no LoRA adapter named {name!r} in this model")
        with torch.no_grad():
            m.A.copy_(t["A"])
            m.B.copy_(t["B"])
            if merged_weights:
                m.base.weight -= m.scale * (m.B @ m.A)


def load_plain_state(sam, sd: dict):
    """Load a state dict of the plain architecture (a checkpoint's) into ``sam`` that carries
    adapters: ``…qkv.weight`` goes to ``…qkv.base.weight``; the adapters are left as they are."""
    names = {n for n, m in sam.named_modules() if isinstance(m, LoRALinear)}
    out = {}
    for k, v in sd.items():
        mod, _, leaf = k.rpartition(".")
        out[f"{mod}.base.{leaf}" if mod in names else k] = v
    own = sam.state_dict()
    out.update({k: v for k, v in own.items() if k.endswith((".A", ".B")) and k not in out})
    sam.load_state_dict(out)
