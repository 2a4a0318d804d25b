"""Warm-starting small_hr (8-px patches) from small (16-px patches): sam.transfer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_scroll_sam.sam.config import CONFIGS, build_sam
from napari_scroll_sam.sam.transfer import transfer_state_dict


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    src = build_sam("small")
    dst = build_sam("small_hr")
    summary = transfer_state_dict(src.state_dict(), dst)
    return src, dst, summary


def test_every_tensor_lands_and_grid_tables_are_resized(pair):
    src, dst, summary = pair
    assert summary["skipped"] == []
    assert sorted(summary["resized"]) == sorted(
        ["image_encoder.pos_embed", "image_encoder.patch_embed.proj.weight"]
        + [f"image_encoder.blocks.{i}.attn.rel_pos_{a}" for i in CONFIGS["small"].encoder_global_attn_indexes
           for a in "hw"])
    sd = dst.state_dict()
    assert sd["image_encoder.pos_embed"].shape == (1, 32, 32, 128)
    assert sd["image_encoder.blocks.1.attn.rel_pos_h"].shape == (63, 32)
    # a tensor that does not follow the grid is copied as it is
    for k in ("image_encoder.blocks.0.mlp.lin1.weight", "mask_decoder.iou_token.weight",
              "image_encoder.blocks.0.attn.rel_pos_h"):
        assert torch.equal(sd[k], src.state_dict()[k])


def test_small_patches_see_the_image_as_the_large_ones_saw_it_enlarged(pair):
    """The 8-px kernel on an image = the 16-px kernel on that image enlarged twice."""
    src, dst, _ = pair
    x = torch.rand(1, 3, 64, 64)
    small_patch = dst.image_encoder.patch_embed(x)
    big_patch = src.image_encoder.patch_embed(F.interpolate(x, scale_factor=2, mode="nearest"))
    assert small_patch.shape == big_patch.shape == (1, 8, 8, 128)
    np.testing.assert_allclose(small_patch.detach().numpy(), big_patch.detach().numpy(), atol=1e-4)


def test_transferred_model_makes_masks_at_half_the_input(pair):
    _, dst, _ = pair
    with torch.inference_mode():
        emb = dst.image_encoder(torch.rand(1, 3, 256, 256))
        sp, de = dst.prompt_encoder(points=None, boxes=torch.tensor([[40.0, 40, 120, 120]]), masks=None)
        masks, iou = dst.mask_decoder(image_embeddings=emb, image_pe=dst.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sp, dense_prompt_embeddings=de,
                                      multimask_output=True)
    assert emb.shape == (1, 128, 32, 32)
    assert masks.shape == (1, 3, 128, 128)
    assert torch.isfinite(masks).all() and torch.isfinite(iou).all()


def test_a_different_width_is_left_at_its_initial_values():
    torch.manual_seed(0)
    dst = build_sam("small")
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    foreign = {"image_encoder.blocks.0.mlp.lin1.weight": torch.zeros(7, 7),
               "not.a.sam.tensor": torch.zeros(1)}
    summary = transfer_state_dict(foreign, dst)
    assert sorted(summary["skipped"]) == sorted(foreign)
    assert summary["same"] == 0 and summary["resized"] == []
    assert torch.equal(dst.state_dict()["image_encoder.blocks.0.mlp.lin1.weight"],
                       before["image_encoder.blocks.0.mlp.lin1.weight"])
