"""The encoder's precision: bfloat16 on CUDA and AMX CPUs, float32 elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sam import precision
from napari_scroll_sam.sam.embeddings import SliceEmbedder
from tests.helpers import tiny_model


def test_the_cpu_flags_or_the_environment_decide(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: frozenset({"sse2", "avx512f"}))
    assert not precision.cpu_bf16() and precision.compute_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert not precision.cpu_bf16()  # AVX-512 BF16 without AMX: float32 measured faster
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert precision.cpu_bf16() and precision.compute_dtype(torch.device("cpu")) == torch.bfloat16
    monkeypatch.setenv(precision.ENV, "0")
    assert not precision.cpu_bf16()
    monkeypatch.setenv(precision.ENV, "1")
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: frozenset())
    assert precision.cpu_bf16()
    assert precision.compute_dtype(torch.device("cuda")) == torch.bfloat16


def test_bf16_embeddings_are_float32_tensors_close_to_the_float32_ones(monkeypatch, tmp_path):
    model = tiny_model()
    vol = Volume(levels=[np.random.default_rng(0).integers(0, 255, (2, 64, 64)).astype(np.uint8)],
                 contrast_limits=(0, 255), name="noise")
    got = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(precision.ENV, flag)
        emb = SliceEmbedder(model, vol, cache=False)
        for _ in emb.embed([0, 1]):
            pass
        got[flag] = emb.get(1).tensor
    assert got["1"].dtype == got["0"].dtype == torch.float32
    assert not torch.equal(got["0"], got["1"])  # the two paths did differ
    rel = float((got["1"] - got["0"]).norm() / got["0"].norm())
    assert rel < 0.03, rel
