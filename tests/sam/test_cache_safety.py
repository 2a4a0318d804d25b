"""The embedding cache never serves a stale slice, survives concurrent creators, a
read-only or full disk, is keyed by the encoder's weights, and never holds NaN."""

from __future__ import annotations

import copy
import logging
import multiprocessing as mp
import os

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_scroll_sam import open_volume
from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam.embeddings import EmbeddingError, SliceEmbedder, SliceStore, encoder_digest
from napari_scroll_sam.sampling import Tuples
from tests.fs_helpers import fill, remount_read_only, tmpfs
from tests.helpers import tiny_model, write_slices


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=1)


def _cube(n=6, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, size, size), dtype=np.uint8)


def _rewrite(path, data):
    """Rewrite a file with new pixels; its mtime moves on by a second (coarse clocks)."""
    st = os.stat(path)
    tifffile.imwrite(path, data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_rewritten_slice_is_encoded_again_untouched_ones_are_not(model, tmp_path):
    data = _cube()
    folder = write_slices(tmp_path / "s", data, meta={"min": 0, "max": 255})  # fixed window: same store
    first = SliceEmbedder(model, open_volume(folder), cache=tmp_path / "c")
    list(first.embed(range(6)))
    new = 255 - data[2]
    _rewrite(folder / "00002.tif", new)
    again = SliceEmbedder(model, open_volume(folder), cache=tmp_path / "c")
    assert again.store.path == first.store.path  # the key did not change: the signature did
    assert [z for z in range(6) if again.is_cached(z)] == [0, 1, 3, 4, 5]
    assert again.encoder_calls == 0  # untouched slices: from the cache, no encoder call
    for z in (0, 3):
        again.get(z)
    assert again.encoder_calls == 0
    got = again.get(2).tensor
    assert again.encoder_calls == 1
    data[2] = new
    fresh = SliceEmbedder(model, Volume(levels=[data], contrast_limits=(0, 255)), cache=False).get(2).tensor
    torch.testing.assert_close(got, fresh.half().float(), atol=0, rtol=0)  # the new pixels' embedding
    third = SliceEmbedder(model, open_volume(folder), cache=tmp_path / "c")
    list(third.embed(range(6)))
    assert third.encoder_calls == 0  # and now that one is cached too


def test_tuples_slice_is_stale_when_a_neighbour_it_reads_changes(model, tmp_path):
    data = _cube()
    folder = write_slices(tmp_path / "s", data, meta={"min": 0, "max": 255})
    list(SliceEmbedder(model, open_volume(folder), mode=Tuples(d=1), cache=tmp_path / "c").embed(range(6)))
    _rewrite(folder / "00003.tif", 255 - data[3])
    again = SliceEmbedder(model, open_volume(folder), mode=Tuples(d=1), cache=tmp_path / "c")
    assert [z for z in range(6) if not again.is_cached(z)] == [2, 3, 4]  # 3 itself and those reading it


def test_rewritten_zarr_chunk_invalidates_only_its_slices(model, tmp_path):
    data = _cube(n=6)
    arr = zarr.create_array(str(tmp_path / "v.zarr"), shape=data.shape, chunks=(2, 32, 32), dtype="uint8")
    arr[:] = data
    arr.attrs["omero"] = {"channels": [{"window": {"start": 0, "end": 255}}]}
    list(SliceEmbedder(model, open_volume(tmp_path / "v.zarr"), cache=tmp_path / "c").embed(range(6)))
    arr[2:4, :32, :32] = 0  # rewrites one chunk: slices 2 and 3
    again = SliceEmbedder(model, open_volume(tmp_path / "v.zarr"), cache=tmp_path / "c")
    assert [z for z in range(6) if not again.is_cached(z)] == [2, 3]
    crop = SliceEmbedder(model, open_volume(tmp_path / "v.zarr").crop(y=(32, 64)), cache=tmp_path / "c")
    list(crop.embed(range(6)))
    arr[0:2, :32, :32] = 1  # outside the crop: its embeddings stay valid
    crop2 = SliceEmbedder(model, open_volume(tmp_path / "v.zarr").crop(y=(32, 64)), cache=tmp_path / "c")
    assert all(crop2.is_cached(z) for z in range(6))


def _create_and_write(path, rounds, barrier, seed, results):
    from napari_scroll_sam.sam.embeddings import CacheKey, SliceStore

    key = CacheKey("v", "every", (0.0, 1.0), "m", "whole")
    done = []
    try:
        for r in range(rounds):
            barrier.wait(timeout=60)
            store = SliceStore(f"{path}/{r}.zarr", key, 4, 1, (2, 4, 4), {})
            store.put(seed, np.full((1, 2, 4, 4), seed, np.float16), f"sig{seed}")
            done.append(r)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put((seed, f"{type(exc).__name__}: {exc}"))
        barrier.abort()
        return
    results.put((seed, done))


def test_two_processes_creating_one_store_both_succeed(tmp_path):
    import queue

    ctx = mp.get_context("spawn")
    rounds = 20  # the old code (check, then create) failed 3 rounds in 12
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_create_and_write, args=(str(tmp_path), rounds, barrier, s, results))
             for s in (1, 2)]
    for p in procs:
        p.start()
    got = {}
    try:
        for _ in procs:
            seed, value = results.get(timeout=300)
            got[seed] = value
    except queue.Empty:
        pytest.fail(f"a store-creating process did not report (exit codes {[p.exitcode for p in procs]})")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    assert got == {1: list(range(rounds)), 2: list(range(rounds))}  # no ContainsArrayError in either
    for r in range(rounds):
        store = zarr.open_array(str(tmp_path / f"{r}.zarr"), mode="r")
        assert store[1].max() == 1 and store[2].max() == 2  # both wrote into the one store
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_read_only_empty_cache_falls_back_to_memory_with_one_warning(model, tmp_path, caplog):
    volume = Volume(levels=[_cube()], contrast_limits=(0, 255))
    with tmpfs(tmp_path / "ro", "1m") as ro:
        remount_read_only(ro)
        with caplog.at_level(logging.WARNING, "napari_scroll_sam.sam.embeddings"):
            emb = SliceEmbedder(model, volume, cache=ro)
            list(emb.embed(range(6)))
        assert emb.store is None and emb.encoded_images == 6
        assert len([r for r in caplog.records if "cannot be used" in r.message]) == 1
        assert "read-only file system" in caplog.text.lower()


def test_read_only_cache_serves_what_it_holds_and_warns_once(model, tmp_path, caplog):
    volume = Volume(levels=[_cube()], contrast_limits=(0, 255))
    with tmpfs(tmp_path / "fs", "2m") as fs:
        list(SliceEmbedder(model, volume, cache=fs).embed([0, 1]))
        remount_read_only(fs)
        with caplog.at_level(logging.WARNING, "napari_scroll_sam.sam.embeddings"):
            emb = SliceEmbedder(model, volume, cache=fs)
            list(emb.embed(range(6)))
        assert emb.encoded_images == 4  # 0 and 1 came from the read-only cache
        assert len([r for r in caplog.records if "cannot be written" in r.message]) == 1


def test_full_cache_disk_keeps_going_in_memory(model, tmp_path, caplog):
    volume = Volume(levels=[_cube()], contrast_limits=(0, 255))
    with tmpfs(tmp_path / "fs", "1m") as fs:
        emb = SliceEmbedder(model, volume, cache=fs, batch_size=1)
        list(emb.embed([0]))
        fill(fs)
        with caplog.at_level(logging.WARNING, "napari_scroll_sam.sam.embeddings"):
            reports = list(emb.embed(range(1, 6)))
        assert len(reports) == 5 and emb.encoded_images == 6
        assert len([r for r in caplog.records if "cannot be written" in r.message]) == 1
        again = SliceEmbedder(model, volume, cache=fs)
        assert [z for z in range(6) if again.is_cached(z)] == [0]  # nothing half-written counts as cached


def test_key_follows_the_encoder_weights_not_the_checkpoint(model, tmp_path):
    from napari_scroll_sam.sam import load_model, save_checkpoint

    volume = Volume(levels=[_cube()], contrast_limits=(0, 255))
    save_checkpoint(tmp_path / "base.pt", model)
    tuned = copy.deepcopy(model)
    with torch.no_grad():  # a fine-tune with the encoder frozen: only the decoder moved
        for p in tuned.sam.mask_decoder.parameters():
            p.add_(0.1)
    save_checkpoint(tmp_path / "tuned.pt", tuned)
    base, ft = load_model(tmp_path / "base.pt", "cpu"), load_model(tmp_path / "tuned.pt", "cpu")
    assert base.model_id != ft.model_id
    list(SliceEmbedder(base, volume, cache=tmp_path / "c").embed(range(3)))
    emb = SliceEmbedder(ft, volume, cache=tmp_path / "c")
    list(emb.embed(range(3)))
    assert emb.encoder_calls == 0  # the base model's embeddings are this one's
    with torch.no_grad():  # an encoder weight changed in place: another key
        next(ft.sam.image_encoder.parameters()).add_(0.01)
    other = SliceEmbedder(ft, volume, cache=tmp_path / "c")
    assert other.key.model != emb.key.model and not other.is_cached(0)
    assert encoder_digest(ft.sam) == encoder_digest(copy.deepcopy(ft).sam)  # the weights, not the object


def test_nan_and_inf_voxels_never_spread(model, tmp_path):
    data = np.random.default_rng(0).uniform(0, 1, (3, 64, 64)).astype(np.float32)
    bad = data.copy()
    bad[1, 10:30, 10:30] = np.nan
    bad[1, 40] = np.inf
    bad[1, 41] = -np.inf
    mapped = data.copy()  # what the documented mapping says the encoder sees
    mapped[1, 10:30, 10:30] = 0.0
    mapped[1, 40] = 1.0
    mapped[1, 41] = 0.0
    got = SliceEmbedder(model, Volume(levels=[bad], contrast_limits=(0, 1)), cache=tmp_path).get(1).tensor
    want = SliceEmbedder(model, Volume(levels=[mapped], contrast_limits=(0, 1)), cache=False).get(1).tensor
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want.half().float(), atol=0, rtol=0)


def test_non_finite_embedding_is_never_cached(model, tmp_path, monkeypatch):
    volume = Volume(levels=[_cube()], contrast_limits=(0, 255))
    emb = SliceEmbedder(model, volume, cache=tmp_path, batch_size=2)
    real = emb._encode_batch
    monkeypatch.setattr(emb, "_encode_batch", lambda raw: real(raw) * float("nan"))
    with pytest.raises(EmbeddingError, match=r"non-finite values .* slice\(s\) \[0, 1\]"):
        list(emb.embed([0, 1]))
    assert not emb.store.has(0) and not emb.store.has(1) and not emb.is_cached(0)


def test_half_written_slice_without_signature_is_not_cached(tmp_path):
    from napari_scroll_sam.sam.embeddings import CacheKey

    store = SliceStore(tmp_path / "s.zarr", CacheKey("v", "m", (0, 1), "e", "whole"), 3, 1, (2, 4, 4), {},
                       signature=lambda z: "now")
    store.array[1, 0] = np.ones((2, 4, 4))  # chunks written, then a crash before the signature
    assert not store.has(1)
    store.put(1, np.ones((1, 2, 4, 4)), "now")
    assert store.has(1) and store.cached() == [1]


def test_tiles_are_streamed_one_batch_at_a_time(model, monkeypatch):
    """A tiled slice: each encoder call gets at most batch_size tiles, and every tile's
    embedding equals that tile encoded alone."""
    from napari_scroll_sam.sam.precision import bf16_autocast, compute_dtype
    from napari_scroll_sam.sam.preprocess import preprocess
    from napari_scroll_sam.sam.tiling import Tiling

    data = np.random.default_rng(3).integers(0, 255, (1, 200, 150), dtype=np.uint8)
    emb = SliceEmbedder(model, Volume(levels=[data], contrast_limits=(0, 255)), cache=False,
                        tiling=Tiling(tile=64, halo=8), batch_size=3)
    sizes = []
    real = emb.encode
    monkeypatch.setattr(emb, "encode", lambda raw: sizes.append(len(raw)) or real(raw))
    got = emb.get(0).tensor
    assert len(emb.tiles) > 3 and max(sizes) <= 3 and sum(sizes) == len(emb.tiles)
    for i, t in enumerate(emb.tiles):
        y0, y1, x0, x1 = t.outer
        x, _ = preprocess(np.repeat(data[:, None, y0:y1, x0:x1], 3, axis=1), (0, 255), model.img_size)
        with torch.no_grad(), bf16_autocast(model.device):  # the embedder's precision (precision.py)
            want = model.sam.image_encoder(x)[0].float()
        tol = 1e-5 if compute_dtype(model.device) == torch.float32 else 2e-2  # bf16 kernels vary by batch
        torch.testing.assert_close(got[i], want, atol=tol, rtol=tol)
