"""Faster attention for SAM's image encoder, same results.

SAM's ViT adds a decomposed relative-position bias to every attention score.
The stock code builds the (tokens x tokens) score matrix, adds the bias, and
runs softmax and the value product as separate steps. Two replacements:

- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` with the bias
  as ``attn_mask``: one fused kernel (memory-efficient attention on CUDA); in bf16 / fp16
  (autocast) the bias is folded into the dot product instead (``_folded``: no
  (tokens x tokens) bias is built and the kernel runs without a mask);
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
    if not self.use_rel_pos:
        out = F.scaled_dot_product_attention(q, k, v)
    else:
        rel_h, rel_w = _rel_terms(self, q.reshape(b * self.num_heads, h * w, -1), h, w)
        rel_h = rel_h.reshape(b, self.num_heads, h * w, h)
        rel_w = rel_w.reshape(b, self.num_heads, h * w, w)
        if q.dtype in (torch.bfloat16, torch.float16):
            out = _folded(q, k, v, rel_h, rel_w, h, w)
        else:
            bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, self.num_heads, h * w, h * w)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
    out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def _folded(q, k, v, rel_h, rel_w, h, w):
    """Attention with the decomposed bias folded into the dot product, no (N x N) bias built:
    q' = [q, rel_h / s, rel_w / s], k' = [k, onehot(row), onehot(col)] give
    s q'.k' = s q.k + rel_h[row of key] + rel_w[col of key] (s the softmax scale); v is padded
    with zeros to the same width (the fused kernels want one head size) and cut back after.
    Measured in bf16 on one CPU thread: one global block of small_hr 9.9 -> 6.5 ms, of vit_b
    117 -> 72 ms; the whole small_hr encoder (its windowed blocks folded too) 28 -> 24 ms a
    slice. In float32 it is slower for vit_b (249 -> 334 ms a block): float32 keeps the bias."""
    d = q.shape[-1]
    scale = d ** -0.5
    n = h * w
    idx = torch.arange(n, device=q.device)
    onehot = torch.cat([F.one_hot(idx // w, h), F.one_hot(idx % w, w)], 1).to(q.dtype)
    q2 = torch.cat([q, (rel_h / scale).to(q.dtype), (rel_w / scale).to(q.dtype)], -1)
    k2 = torch.cat([k, onehot.expand(*k.shape[:2], n, h + w)], -1)
    v2 = torch.cat([v, v.new_zeros(*v.shape[:3], h + w)], -1)
    return F.scaled_dot_product_attention(q2, k2, v2, scale=scale)[..., :d]


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
