"""Image embeddings: batched encoding and an on-disk cache per slice.

The image encoder is SAM's cost; everything else (prompts, propagation,
training with a frozen encoder) reuses its output. ``SliceEmbedder`` encodes
the slices a sampling mode makes, in batches, and keeps each slice's embedding
in a zarr store keyed by what determines it: the volume's identity, the sampling
mode and its parameters, the intensity window, the model and the tiling. Any
change of those gives another store, so a stale embedding is never served.

Layout: ``<cache root>/embeddings/<digest>.zarr``, one float16 array
(z, tile, C, h, w) with one chunk per (slice, tile). zarr writes each chunk
atomically (temporary file, then rename), and a slice counts as cached only
when all its tile chunks exist, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations
from ..errors import ScrollSamError

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .attention import attention_kind, patch_attention
from .preprocess import preprocess, preprocess_shape
from .tiling import Tile, Tiling, grid_for


class EmbeddingError(ScrollSamError, RuntimeError):
    """Encoding failed (e.g. out of GPU memory at batch size 1); says what to do."""


def default_cache_root() -> Path:
    env = os.environ.get("NAPARI_SCROLL_SAM_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-scroll-sam"))


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """Everything an embedding depends on."""

    volume: str
    mode: str
    window: tuple
    model: str
    tiling: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:20]


class SliceStore:
    """One zarr array of embeddings (z, tile, C, h, w) for one ``CacheKey``."""

    def __init__(self, path: Path, key: CacheKey, n_slices: int, n_tiles: int, emb_shape: tuple, meta: dict):
        import zarr

        self.path = Path(path)
        self.key = key
        shape = (n_slices, n_tiles, *emb_shape)
        chunks = (1, 1, *emb_shape)
        if (self.path / "zarr.json").is_file():
            self.array = zarr.open_array(str(self.path), mode="r+", config={"write_empty_chunks": True})
            if tuple(self.array.shape) != shape:
                raise EmbeddingError(f"{self.path}: cached embeddings have shape {self.array.shape}, expected {shape}")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.array = zarr.create_array(
                store=str(self.path), shape=shape, chunks=chunks, dtype="float16", fill_value=0,
                chunk_key_encoding={"name": "default", "separator": "/"}, zarr_format=3,
                config={"write_empty_chunks": True}, overwrite=False,
                attributes={"key": dataclasses.asdict(key), **meta},
            )
        self.n_tiles = n_tiles

    def _chunk_file(self, z: int, t: int) -> Path:
        rest = "/".join("0" for _ in range(self.array.ndim - 2))
        return self.path / "c" / str(z) / str(t) / rest

    def has(self, z: int) -> bool:
        return all(self._chunk_file(z, t).is_file() for t in range(self.n_tiles))

    def cached(self) -> list[int]:
        return [z for z in range(self.array.shape[0]) if self.has(z)]

    def get(self, z: int) -> np.ndarray:
        return self.array[z]

    def put(self, z: int, emb: np.ndarray) -> None:
        for t in range(self.n_tiles):  # tile by tile: each chunk written atomically
            self.array[z, t] = emb[t]


@dataclasses.dataclass
class SliceEmbedding:
    """A slice's embedding: ``tensor`` (tiles, C, h, w) on the model's device, the
    ``tiles`` it was cut into, and the slice's ``original_size`` (H, W)."""

    z: int
    tensor: torch.Tensor
    tiles: list
    original_size: tuple

    def tile_size(self, tile: Tile) -> tuple:
        return tile.shape


@dataclasses.dataclass
class EmbedReport:
    """One slice done: its index, whether it came from the cache, progress."""

    z: int
    cached: bool
    done: int
    total: int
    batch_size: int = 0


class SliceEmbedder:
    """Embeddings of a volume's slices, as a sampling mode makes them.

    Parameters
    ----------
    model : SamModel (``.sam``, ``.device``, ``.model_id``) — see ``sam.models``
    volume : Volume
    mode : a sampling mode (default: every slice, grey → RGB)
    cache : an ``EmbeddingCache`` root folder, ``None`` for the default root, or
        ``False`` for memory only
    tiling : a ``Tiling``; default ``Tiling.for_model(img_size)`` when a slice is
        more than 1.5 x the model's input, else whole slices
    batch_size : slices per encoder call (default 8 on CUDA, 2 on CPU); halved on
        CUDA out-of-memory until it fits
    attention : "sdpa" (default), "flex" or "stock" — see ``sam.attention``
    """

    def __init__(self, model, volume, mode=None, cache=None, tiling=None, batch_size=None, attention="sdpa",
                 memory_slices: int = 16):
        from ..sampling import EverySlice

        self.model = model
        self.sam = model.sam
        self.device = model.device
        self.volume = volume
        self.mode = mode or EverySlice()
        self.img_size = self.sam.image_encoder.img_size
        shape_hw = tuple(volume.shape[1:])
        if tiling is None:
            tiling = Tiling.for_model(self.img_size)
        self.tiling = tiling if tiling.needed(shape_hw) else None
        self.tiles = grid_for(shape_hw, self.tiling)
        self.original_size = shape_hw
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 2)
        if attention_kind(self.sam) != attention:
            patch_attention(self.sam, attention)
        self.encoder_calls = 0  # encoder forward passes (tests count them)
        self.encoded_images = 0
        self._memory: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._memory_slices = memory_slices
        self.key = CacheKey(volume.identity(), self.mode.key(), tuple(float(v) for v in volume.contrast_limits),
                            str(model.model_id), self.tiling.key() if self.tiling else "whole")
        self.store = None
        if cache is not False:
            root = Path(cache) if cache is not None else default_cache_root()
            emb_shape = self._embedding_shape()
            meta = {"volume_name": volume.name, "volume_path": str(volume.path), "img_size": self.img_size,
                    "original_size": list(shape_hw), "tiles": [dataclasses.asdict(t) for t in self.tiles]}
            self.store = SliceStore(root / "embeddings" / f"{self.key.digest()}.zarr", self.key,
                                    volume.shape[0], len(self.tiles), emb_shape, meta)

    def _embedding_shape(self) -> tuple:
        enc = self.sam.image_encoder
        side = self.img_size // getattr(enc, "patch_size", enc.patch_embed.proj.kernel_size[0])
        return (enc.neck[0].out_channels, side, side)

    # --- reading ------------------------------------------------------------
    def is_cached(self, z: int) -> bool:
        return z in self._memory or (self.store is not None and self.store.has(z))

    def get(self, z: int) -> SliceEmbedding:
        """The embedding of slice ``z``: from memory, the disk cache, or encoded now."""
        self._check_z(z)
        if z not in self._memory:
            for _ in self.embed([z]):
                pass
        self._memory.move_to_end(z)
        return SliceEmbedding(z, self._memory[z], self.tiles, self.original_size)

    def _check_z(self, z):
        n = self.volume.shape[0]
        if not 0 <= int(z) < n:
            from ..sampling import SamplingError

            raise SamplingError(f"slice {z} is outside the volume {self.volume.name!r} (slices 0..{n - 1})")

    def _remember(self, z: int, emb: torch.Tensor):
        self._memory[z] = emb
        self._memory.move_to_end(z)
        while len(self._memory) > self._memory_slices:
            self._memory.popitem(last=False)

    # --- encoding -----------------------------------------------------------
    def embed(self, zs=None) -> Iterator[EmbedReport]:
        """Make sure slices ``zs`` (default: those the mode selects) are embedded.

        A generator: yields an ``EmbedReport`` per slice; close it to cancel (the
        slices written so far stay in the cache).
        """
        if zs is None:
            zs = self.mode.slices(self.volume)
        zs = [int(z) for z in zs]
        for z in zs:
            self._check_z(z)
        total, done = len(zs), 0
        todo = []
        for z in zs:
            if z in self._memory:
                done += 1
                yield EmbedReport(z, True, done, total)
            elif self.store is not None and self.store.has(z):
                self._remember(z, torch.from_numpy(self.store.get(z)).to(self.device, torch.float32))
                done += 1
                yield EmbedReport(z, True, done, total)
            else:
                todo.append(z)
        i = 0
        while i < len(todo):
            batch = todo[i:i + self.batch_size]
            embs = self._encode_slices(batch)
            for z, emb in zip(batch, embs):  # store the whole batch first: a cancel loses no work
                if self.store is not None:
                    half = emb.to(torch.float16)
                    self.store.put(z, half.cpu().numpy())
                    emb = half  # use what the cache holds: results never depend on cache state
                self._remember(z, emb.float())
            for z in batch:
                done += 1
                yield EmbedReport(z, False, done, total, len(batch))
            i += len(batch)

    def _encode_slices(self, zs) -> list[torch.Tensor]:
        """Encode whole slices (all their tiles) in as few encoder calls as fit."""
        from ..sampling import sample_raw

        raw = sample_raw(self.volume, zs, self.mode)  # (B, 3, H, W) raw, one read
        crops = []
        for b in range(len(zs)):
            for t in self.tiles:
                y0, y1, x0, x1 = t.outer
                crops.append(raw[b, :, y0:y1, x0:x1])
        # tiles of one slice share a shape except when the slice is smaller than a tile
        feats = []
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(crops):
            groups.setdefault(c.shape, []).append(i)
        out = [None] * len(crops)
        for shape, idx in groups.items():
            stack = np.stack([crops[i] for i in idx])
            res = self.encode(stack)
            for j, i in enumerate(idx):
                out[i] = res[j]
        n_t = len(self.tiles)
        for b in range(len(zs)):
            feats.append(torch.stack(out[b * n_t:(b + 1) * n_t]))
        return feats

    def encode(self, raw: np.ndarray) -> torch.Tensor:
        """Raw (N, 3, h, w) images → (N, C, h', w') embeddings, batch by batch."""
        results, i, bs = [], 0, max(1, self.batch_size)
        while i < len(raw):
            chunk = raw[i:i + bs]
            try:
                results.append(self._encode_batch(chunk))
                i += len(chunk)
            except torch.cuda.OutOfMemoryError as exc:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if bs == 1:
                    raise EmbeddingError(
                        f"out of GPU memory encoding one image of {tuple(raw.shape[-2:])} px with "
                        f"{self.model.model_id}: use tiles (smaller tile size), a smaller model, or the CPU"
                    ) from exc
                bs = max(1, bs // 2)
                self.batch_size = max(1, min(self.batch_size, bs))
        return torch.cat(results)

    @torch.inference_mode()
    def _encode_batch(self, raw: np.ndarray) -> torch.Tensor:
        x, _ = preprocess(raw, self.volume.contrast_limits, self.img_size, self.device)
        self.encoder_calls += 1
        self.encoded_images += len(x)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.sam.image_encoder(x).float()
        return self.sam.image_encoder(x)

    def input_size(self, tile: Tile) -> tuple:
        return preprocess_shape(*tile.shape, self.img_size)
