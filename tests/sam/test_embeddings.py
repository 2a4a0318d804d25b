"""Batched, cached embeddings: no encoder call for a cached slice, never a stale one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam.embeddings import EmbeddingError, SliceEmbedder
from napari_scroll_sam.sam.predictor import Predictor
from napari_scroll_sam.sam.preprocess import preprocess
from napari_scroll_sam.sampling import EverySlice, RandomTuples, SamplingError, Tuples, sample_raw
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=1)


@pytest.fixture
def volume():
    image, _, _ = scroll_phantom((10, 96, 96), seed=2)
    return Volume(levels=[image], contrast_limits=(7000, 40000), name="phantom")


def test_second_request_runs_no_encoder(model, volume, tmp_path):
    emb = SliceEmbedder(model, volume, cache=tmp_path, batch_size=4)
    reports = list(emb.embed(range(6)))
    assert [r.z for r in reports] == list(range(6)) and not any(r.cached for r in reports)
    assert emb.encoder_calls == 2 and emb.encoded_images == 6  # batches of 4 + 2
    again = SliceEmbedder(model, volume, cache=tmp_path, batch_size=4)  # a new session, same cache
    reports = list(again.embed(range(6)))
    assert all(r.cached for r in reports) and again.encoder_calls == 0
    np.testing.assert_allclose(again.get(3).tensor.numpy(), emb.get(3).tensor.numpy(), atol=2e-2, rtol=1e-2)
    assert again.encoder_calls == 0


def test_cached_embedding_equals_direct_encoding(model, volume, tmp_path):
    from napari_scroll_sam.sam.precision import bf16_autocast

    emb = SliceEmbedder(model, volume, mode=Tuples(d=2), cache=tmp_path)
    got = emb.get(5).tensor[0]
    raw = sample_raw(volume, [5], Tuples(d=2))
    x, _ = preprocess(raw, volume.contrast_limits, model.img_size)
    with torch.no_grad(), bf16_autocast(model.device):  # the embedder's precision (sam/precision.py)
        want = model.sam.image_encoder(x)[0].float()
    torch.testing.assert_close(got, want, atol=5e-3 * float(want.abs().max()), rtol=1e-2)  # float16 rounding
    fresh = SliceEmbedder(model, volume, mode=Tuples(d=2), cache=tmp_path).get(5).tensor[0]
    torch.testing.assert_close(fresh, got, atol=0, rtol=0)  # from disk: exactly what was used when encoded
    memory_only = SliceEmbedder(model, volume, mode=Tuples(d=2), cache=False).get(5).tensor[0]
    torch.testing.assert_close(memory_only, want, atol=1e-5, rtol=1e-5)  # no cache: float32 as encoded


def test_every_key_part_changes_the_store(model, volume, tmp_path):
    base = SliceEmbedder(model, volume, cache=tmp_path)
    list(base.embed([0]))
    other_mode = SliceEmbedder(model, volume, mode=RandomTuples(window=2, seed=1), cache=tmp_path)
    other_window = SliceEmbedder(model, Volume(levels=[volume.data], contrast_limits=(0, 50000), name="phantom"),
                                 cache=tmp_path)
    other_model = SliceEmbedder(tiny_model(seed=2), volume, cache=tmp_path)
    crop = volume.crop(y=(0, 64))
    other_volume = SliceEmbedder(model, crop, cache=tmp_path)
    for e in (other_mode, other_window, other_model, other_volume):
        assert e.store.path != base.store.path
        assert not e.is_cached(0)
        r, = list(e.embed([0]))
        assert not r.cached and e.encoder_calls == 1
    assert len({e.key.digest() for e in (base, other_mode, other_window, other_model, other_volume)}) == 5


def test_interrupted_run_resumes(model, volume, tmp_path):
    emb = SliceEmbedder(model, volume, cache=tmp_path, batch_size=2)
    gen = emb.embed(range(8))
    for r in gen:
        if r.done == 3:
            break
    gen.close()  # cancel
    assert emb.store.cached() == [0, 1, 2, 3]  # the whole second batch was written
    resumed = SliceEmbedder(model, volume, cache=tmp_path, batch_size=2)
    reports = list(resumed.embed(range(8)))
    assert [r.cached for r in reports] == [True] * 4 + [False] * 4
    assert resumed.encoded_images == 4


def test_memory_only_and_bad_slice(model, volume):
    emb = SliceEmbedder(model, volume, cache=False)
    assert emb.store is None
    emb.get(2)
    emb.get(2)
    assert emb.encoder_calls == 1
    with pytest.raises(SamplingError, match="slice 10 is outside"):
        emb.get(10)


def test_out_of_memory_retries_with_smaller_batches(model, volume, monkeypatch):
    emb = SliceEmbedder(model, volume, cache=False, batch_size=8)
    real = emb._encode_batch
    sizes = []

    def fake(raw):
        sizes.append(len(raw))
        if len(raw) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(raw)

    monkeypatch.setattr(emb, "_encode_batch", fake)
    list(emb.embed(range(8)))
    assert sizes[:3] == [8, 4, 2] and emb.batch_size == 2 and emb.encoded_images == 8

    def always(raw):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    emb2 = SliceEmbedder(model, volume, cache=False, batch_size=2)
    monkeypatch.setattr(emb2, "_encode_batch", always)
    with pytest.raises(EmbeddingError, match="out of GPU memory encoding one image"):
        list(emb2.embed([0]))


def test_predict_from_cached_embedding(model, volume, tmp_path):
    emb = SliceEmbedder(model, volume, cache=tmp_path)
    e = emb.get(4)
    pred = Predictor(model).predict(e.tensor[0], e.original_size, points=[[48.0, 48.0]], point_labels=[1])
    assert pred.masks.shape == (1, 96, 96) and pred.masks.dtype == bool and np.isfinite(pred.iou).all()


def test_every_slice_mode_default(model, volume):
    emb = SliceEmbedder(model, volume, mode=EverySlice(stride=3), cache=False)
    assert [r.z for r in emb.embed()] == [0, 3, 6, 9]
