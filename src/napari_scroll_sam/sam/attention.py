"""Faster attention for SAM's image encoder, same results.

SAM's ViT adds a decomposed relative-position bias to every attention score.
The stock code builds the (tokens x tokens) score matrix, adds the bias, and
runs softmax and the value product as separate steps. Two replacements:

- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` with the bias
  as ``attn_mask``: one fused kernel (memory-efficient attention on CUDA);
- ``"flex"``: FlexAttention with a ``score_mod`` that adds the two bias terms
  inside the kernel, so the (tokens x tokens) bias is never built (best under
  ``torch.compile`` on CUDA; eager mode works everywhere but is slower).

``patch_attention(sam, kind)`` swaps the forward of every encoder attention
block; ``"stock"`` restores it. Results match the stock encoder (float32 on
CPU: tested to 1e-4; bf16 on CUDA within bf16 tolerance). On the CPU, a forward that
trains the relative-position tables (gradient enabled, tables trainable) runs the stock
code: there SDPA's backward through the bias is the slower one.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

KINDS = ("stock", "sdpa", "flex")


def _rel_terms(attn, q, h, w):
    """The decomposed relative-position terms rel_h (B', N, h) and rel_w (B', N, w)."""
    from segment_anything.modeling.image_encoder import get_rel_pos

    rh = get_rel_pos(h, h, attn.rel_pos_h)
    rw = get_rel_pos(w, w, attn.rel_pos_w)
    bsz, _, dim = q.shape
    r_q = q.reshape(bsz, h, w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh).reshape(bsz, h * w, h)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw).reshape(bsz, h * w, w)
    return rel_h, rel_w


def _forward_sdpa(self, x: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu" and self.use_rel_pos and torch.is_grad_enabled() and self.rel_pos_h.requires_grad:
        # training on the CPU: SDPA's backward through a bias whose gradient is wanted is
        # slower than the stock code's (one attention block, 1024 tokens, 1 thread: 76-80 vs
        # 39-50 ms forward + backward; a small_hr training step 5.1 instead of 6.5-7.2 s)
        return type(self).forward(self, x)
    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, N, d)
    bias = None
    if self.use_rel_pos:
        rel_h, rel_w = _rel_terms(self, q.reshape(b * self.num_heads, h * w, -1), h, w)
        bias = (rel_h[:, :, :, None] + rel_w[:, :, None, :]).reshape(b, self.num_heads, h * w, h * w)
        bias = bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def _forward_flex(self, x: torch.Tensor) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    if not self.use_rel_pos:
        out = flex_attention(q, k, v)
    else:
        rel_h, rel_w = _rel_terms(self, q.reshape(b * self.num_heads, h * w, -1), h, w)
        rel_h = rel_h.reshape(b, self.num_heads, h * w, h).to(q.dtype)
        rel_w = rel_w.reshape(b, self.num_heads, h * w, w).to(q.dtype)

        def score_mod(score, bi, hi, qi, ki):
            return score + rel_h[bi, hi, qi, ki // w] + rel_w[bi, hi, qi, ki % w]

        out = flex_attention(q, k, v, score_mod=score_mod)
    out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def patch_attention(sam, kind: str = "sdpa"):
    """Use ``kind`` attention in every block of ``sam.image_encoder``; returns ``sam``."""
    if kind not in KINDS:
        raise ValueError(f"attention must be one of {', '.join(KINDS)}; got {kind!r}")
    encoder = getattr(sam, "image_encoder", sam)
    for block in encoder.blocks:
        attn = block.attn
        if kind == "stock":
            attn.__dict__.pop("forward", None)
        else:
            fn = _forward_sdpa if kind == "sdpa" else _forward_flex
            attn.forward = types.MethodType(fn, attn)
    encoder._nss_attention = kind
    return sam


def attention_kind(sam) -> str:
    return getattr(getattr(sam, "image_encoder", sam), "_nss_attention", "stock")
