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


def test_unknown_kind():
    with pytest.raises(ValueError, match="stock, sdpa, flex"):
        patch_attention(tiny_model().sam, "fast")
