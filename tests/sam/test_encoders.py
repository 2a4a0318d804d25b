"""The filter-bank stem: its fixed features mean what they say, and a SAM built with it goes
through every SAM path (config inference, checkpoints, embeddings, prompting) unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam import load_model, save_checkpoint
from napari_scroll_sam.sam.config import CONFIGS, ModelError, SamConfig, build_sam, infer_config
from napari_scroll_sam.sam.embeddings import SliceEmbedder
from napari_scroll_sam.sam.encoders import filter_bank
from napari_scroll_sam.sam.models import SamModel
from napari_scroll_sam.sam.segment import segment_slice

TINY = SamConfig(name="tinyfb", img_size=64, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                 encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=2, prompt_embed_dim=32,
                 decoder_mlp_dim=64, decoder_num_heads=2, iou_head_hidden_dim=32, stem="filters",
                 stem_sigmas=(1.0, 2.0, 4.0))


def test_filter_bank_finds_edges_and_ridges():
    img = torch.zeros(1, 1, 32, 32)
    img[..., 16:] = 1.0  # a vertical step edge between x 15 and 16
    f = filter_bank(img, (1.0,))
    assert f.shape == (1, 7, 32, 32)
    grad = f[0, 2, 16]  # gradient magnitude along a row
    assert int(grad.argmax()) in (15, 16) and grad[15] > 5 * grad[5]
    ridge = torch.zeros(1, 1, 32, 32)
    ridge[..., 16] = 1.0  # a bright one-pixel line: a strongly negative Hessian eigenvalue on it
    h_small = filter_bank(ridge, (1.0,))[0, 4, 10]
    assert int(h_small.argmin()) == 16 and h_small[16] < -0.1 and abs(float(h_small[4])) < 1e-3


def test_a_filters_sam_goes_through_every_path(tmp_path):
    torch.manual_seed(0)
    sam = build_sam(TINY)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert sam.image_encoder(x).shape == (2, 32, 4, 4)
    assert infer_config(sam.state_dict()).stem == "filters"
    assert dataclasses.replace(infer_config(build_sam("small_fb").state_dict()), name="small_fb") == CONFIGS["small_fb"]
    model = SamModel(sam, TINY, torch.device("cpu"), "tinyfb:0", "tinyfb")
    path = save_checkpoint(tmp_path / "fb.pt", model, dtype=torch.float16)
    back = load_model(path, device="cpu")
    assert back.config == TINY
    image = np.zeros((2, 64, 64), np.uint8)
    image[:, 10:30, 20:50] = 200
    emb = SliceEmbedder(back, Volume(levels=[image], contrast_limits=(0, 255)), cache=tmp_path / "c")
    assert tuple(emb.get(0).tensor.shape) == (1, 32, 4, 4)
    pred = segment_slice(emb, 0, box=np.array([10, 20, 29, 49.0]))
    assert pred.masks.shape == (1, 64, 64)


@pytest.mark.parametrize("kw, msg", [(dict(stem="wavelets"), "stem 'wavelets'"),
                                     (dict(patch_size=8), "downsamples by 16"),
                                     (dict(stem_sigmas=(1.0, -2.0, 4.0)), "must be > 0")])
def test_bad_stem_configs(kw, msg):
    with pytest.raises(ModelError, match=msg):
        dataclasses.replace(TINY, **kw)
