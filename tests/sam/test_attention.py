"""Fused attention (SDPA, FlexAttention) gives the stock encoder's output (float32, CPU)."""

from __future__ import annotations

import pytest
import torch

from napari_scroll_sam.sam.attention import attention_kind, patch_attention
from tests.helpers import tiny_model


@pytest.mark.parametrize("kind", ["sdpa", "flex"])
def test_patched_encoder_matches_stock(kind):
    model = tiny_model(seed=5, img_size=128)  # windowed and global blocks, random rel-pos tables
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.sam.image_encoder(x)
        patch_attention(model.sam, kind)
        assert attention_kind(model.sam) == kind
        out = model.sam.image_encoder(x)
        patch_attention(model.sam, "stock")
        back = model.sam.image_encoder(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(back, ref, atol=0, rtol=0)


def test_patched_forward_is_the_one_that_runs():
    model = tiny_model(seed=5, img_size=128)
    patch_attention(model.sam, "sdpa")
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    try:
        torch.nn.functional.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or real(*a, **k)
        with torch.no_grad():
            model.sam.image_encoder(torch.zeros(1, 3, 128, 128))
    finally:
        torch.nn.functional.scaled_dot_product_attention = real
    assert len(calls) == len(model.sam.image_encoder.blocks)


def test_training_forward_on_cpu_runs_the_stock_code_with_its_gradients():
    """Gradient into trainable rel-pos tables: the stock forward runs (faster backward on the
    CPU than SDPA's), the same loss and gradients as the stock encoder; inference stays SDPA."""
    ref_model, model = tiny_model(seed=5, img_size=128), tiny_model(seed=5, img_size=128)
    patch_attention(model.sam, "sdpa")
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    ref_model.sam.image_encoder(x).square().mean().backward()
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    try:
        torch.nn.functional.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or real(*a, **k)
        model.sam.image_encoder(x).square().mean().backward()
        assert calls == []
        with torch.no_grad():
            model.sam.image_encoder(x)
        assert len(calls) == len(model.sam.image_encoder.blocks)
    finally:
        torch.nn.functional.scaled_dot_product_attention = real
    for (name, a), (_, b) in zip(ref_model.sam.image_encoder.named_parameters(),
                                 model.sam.image_encoder.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_folded_bias_is_the_biased_attention():
    """The decomposed rel-pos bias folded into q / k (no tokens x tokens bias) gives the
    attention with the bias added to the scores (float32, where rounding cannot hide an error)."""
    from napari_scroll_sam.sam.attention import _folded

    g = torch.Generator().manual_seed(3)
    b, heads, h, w, d = 2, 3, 4, 5, 8
    q, k, v = (torch.randn(b, heads, h * w, d, generator=g) for _ in range(3))
    rel_h, rel_w = torch.randn(b, heads, h * w, h, generator=g), torch.randn(b, heads, h * w, w, generator=g)
    bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, h * w, h * w)
    ref = ((q @ k.transpose(-1, -2)) * d ** -0.5 + bias).softmax(-1) @ v
    torch.testing.assert_close(_folded(q, k, v, rel_h, rel_w, h, w), ref, atol=1e-5, rtol=1e-5)


def test_bf16_encoder_runs_the_folded_attention_and_matches_stock():
    model = tiny_model(seed=5, img_size=128)
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = model.sam.image_encoder(x).float()
        patch_attention(model.sam, "sdpa")
        masks = []
        real = torch.nn.functional.scaled_dot_product_attention
        try:
            torch.nn.functional.scaled_dot_product_attention = \
                lambda *a, **k: masks.append(k.get("attn_mask")) or real(*a, **k)
            out = model.sam.image_encoder(x).float()
        finally:
            torch.nn.functional.scaled_dot_product_attention = real
    assert len(masks) == len(model.sam.image_encoder.blocks) and all(m is None for m in masks)
    assert (out - ref).abs().mean() < 0.02 * ref.abs().mean()  # bf16 rounding, not a different answer


def test_unknown_kind():
    with pytest.raises(ValueError, match="stock, sdpa, flex"):
        patch_attention(tiny_model().sam, "fast")
