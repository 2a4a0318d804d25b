"""Tiles with a halo: grid geometry, prompt routing, seamless stitching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam.embeddings import SliceEmbedder
from napari_scroll_sam.sam.segment import segment_slice
from napari_scroll_sam.sam.tiling import Tiling, grid_for, predict_stitched, tile_of
from tests.helpers import tiny_model


def test_grid_cores_partition_the_slice_and_tiles_have_full_size():
    tiling = Tiling(tile=64, halo=8)
    tiles = tiling.grid((150, 230))
    cover = np.zeros((150, 230), int)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        cover[y0:y1, x0:x1] += 1
        assert t.shape == (64, 64)
        oy0, oy1, ox0, ox1 = t.outer
        assert oy0 <= y0 and y1 <= oy1 and ox0 <= x0 and x1 <= ox1  # the core lies inside its tile
    assert (cover == 1).all()  # cores partition the slice
    assert len(tiles) == 3 * 5  # edge cores 56 px, inner cores 48 px


def test_small_slices_are_one_tile_and_routing():
    assert len(grid_for((90, 90), Tiling(64, 8))) == 1  # < 1.5 x tile: resized whole
    assert len(grid_for((100, 100), Tiling(64, 8))) == 4
    tiles = Tiling(64, 8).grid((200, 200))
    t = tile_of(tiles, 120.0, 10.0)
    assert t.core[0] <= 120 < t.core[1] and t.core[2] <= 10 < t.core[3]


def _oracle(image):
    """A perfect 'SAM' for a tile: the connected component under the positive points,
    seen only through the tile's window (so it is cut at the tile's edges)."""

    def predict_tile(tile, local):
        y0, y1, x0, x1 = tile.outer
        window = image[y0:y1, x0:x1]
        lab, _ = ndimage.label(window)
        out = np.zeros(window.shape, bool)
        for (py, px), l in zip(local["points"], local["labels"]):
            if l > 0 and lab[int(py), int(px)]:
                out |= lab == lab[int(py), int(px)]
        return out

    return predict_tile


def test_stitched_object_across_many_tiles_has_no_seams():
    yy, xx = np.mgrid[:300, :400]
    r = np.hypot(yy - 150, xx - 200)
    ring = (r > 90) & (r < 120)  # spans every tile, and is not convex
    other = np.hypot(yy - 20, xx - 20) < 10
    image = ring | other
    tiles = Tiling(tile=96, halo=12).grid(image.shape)
    assert len(tiles) > 9
    mask = predict_stitched(_oracle(image), tiles, image.shape, {"points": [[150, 85]], "labels": [1]})
    np.testing.assert_array_equal(mask, ring)  # the whole ring, nothing else, no gap at a core border


def test_stitching_from_a_box_prompt():
    image = np.zeros((200, 200), bool)
    image[40:160, 90:110] = True  # a bar across three tile rows
    tiles = Tiling(tile=64, halo=8).grid(image.shape)

    def predict_tile(tile, local):
        if local.get("box") is not None and not len(local["points"]):
            b = local["box"]
            local = {"points": [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]], "labels": [1]}
        return _oracle(image)(tile, local)

    mask = predict_stitched(predict_tile, tiles, image.shape, {"box": [90, 85, 110, 115]})
    np.testing.assert_array_equal(mask, image)


def test_real_model_on_a_slice_several_tiles_wide(tmp_path):
    model = tiny_model(seed=0)  # input 64 px
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (2, 160, 300), dtype=np.uint8)
    vol = Volume(levels=[data], contrast_limits=(0, 255), name="wide")
    emb = SliceEmbedder(model, vol, cache=tmp_path, tiling=Tiling(tile=64, halo=8))
    assert len(emb.tiles) == 3 * 6
    e = emb.get(1)
    assert e.tensor.shape[0] == len(emb.tiles) and emb.encoder_calls == 9  # 18 tiles, batches of 2
    pred = segment_slice(emb, 1, points=[[80.0, 150.0]], labels=[1])
    assert pred.masks.shape == (1, 160, 300)
    with pytest.raises(ValueError, match="mask inputs"):
        segment_slice(emb, 1, points=[[80.0, 150.0]], labels=[1], mask_input=np.zeros((1, 1, 16, 16)))


def test_each_of_the_four_outputs_on_a_tiled_slice(tmp_path):
    """``output`` reaches the tiles' decoder: output 0 is the single mask, the four differ."""
    model = tiny_model(seed=0)  # input 64 px
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (1, 160, 300), dtype=np.uint8)
    emb = SliceEmbedder(model, Volume(levels=[data], contrast_limits=(0, 255), name="wide"), cache=tmp_path,
                        tiling=Tiling(tile=64, halo=8))
    got = [segment_slice(emb, 0, points=[[80.0, 150.0]], labels=[1], output=i, refine=False).masks[0]
           for i in range(4)]
    assert all(m.shape == (160, 300) for m in got)
    single = segment_slice(emb, 0, points=[[80.0, 150.0]], labels=[1], refine=False).masks[0]
    np.testing.assert_array_equal(got[0], single)
    assert len({m.tobytes() for m in got}) > 1  # not the same mask four times
