"""Image embeddings: batched encoding and an on-disk cache per slice.

The image encoder is SAM's cost; everything else (prompts, propagation,
training with a frozen encoder) reuses its output. ``SliceEmbedder`` encodes
the slices a sampling mode makes, in batches, and keeps each slice's embedding
in a zarr store keyed by what determines it: the volume's identity, the sampling
mode and its parameters, the intensity window, the image encoder's weights (a
digest of them: a fine-tune with a frozen encoder shares its base model's store)
and the tiling. Any change of those gives another store.

Within a store each slice carries the signature of the stored bytes it was
computed from (``Volume.slice_signature`` of every slice its channels read: the
slice file's size and mtime, or the zarr chunks' …), taken before the pixels are
read. A slice whose source changed since is encoded again: a stale embedding is
never served.

Layout: ``<cache root>/embeddings/<digest>.zarr``, one float16 array
(z, tile, C, h, w) with one chunk per (slice, tile), and ``signatures/<z>``. zarr
writes each chunk atomically (temporary file, then rename) and the signature is
written last, so a slice counts as cached only when all its tile chunks and its
signature are there: an interrupted run resumes where it stopped. A new store is
built under a temporary name and renamed into place, so two processes starting
on one new cache both end up using the one that won. A cache that cannot be
written (read-only, full) is read where it has the slice, and otherwise left
alone: embeddings stay in memory, with one warning. A non-finite embedding is
never written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .attention import attention_kind, patch_attention
from .cache import CacheKey, EmbeddingError, SliceStore  # noqa: F401 - re-exported
from .precision import bf16_autocast
from .preprocess import preprocess, preprocess_shape
from .tiling import Tile, Tiling, grid_for


log = logging.getLogger(__name__)


_DIGESTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def encoder_digest(sam) -> str:
    """SHA-256 (first 16 hex digits) of the image encoder's weights (names, dtypes, shapes,
    bytes) and input size: what an embedding depends on. Remembered per module until a
    tensor of it changes (in-place updates bump torch's version counters); hashing costs
    about 1 s per GB of encoder weights (vit_b ≈ 0.35 GB, vit_h ≈ 2.5 GB)."""
    enc = sam.image_encoder
    tensors = list(enc.state_dict(keep_vars=True).items())
    stamp = tuple((t.data_ptr(), t._version, t.device.type) for _, t in tensors)
    hit = _DIGESTS.get(enc)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    h = hashlib.sha256(f"img_size={enc.img_size}".encode())
    for name, t in tensors:
        t = t.detach()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest = h.hexdigest()[:16]
    _DIGESTS[enc] = (stamp, digest)
    return digest


def default_cache_root() -> Path:
    env = os.environ.get("NAPARI_SCROLL_SAM_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-scroll-sam"))


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
                            f"encoder:{encoder_digest(self.sam)}", self.tiling.key() if self.tiling else "whole")
        self.store = None
        if cache is not False:
            root = Path(cache) if cache is not None else default_cache_root()
            emb_shape = self._embedding_shape()
            meta = {"volume_name": volume.name, "volume_path": str(volume.path), "img_size": self.img_size,
                    "original_size": list(shape_hw), "tiles": [dataclasses.asdict(t) for t in self.tiles],
                    "model_id": str(model.model_id)}
            path = root / "embeddings" / f"{self.key.digest()}.zarr"
            try:
                self.store = SliceStore(path, self.key, volume.shape[0], len(self.tiles), emb_shape, meta,
                                        signature=self.source_signature)
            except OSError as exc:
                log.warning("embedding cache %s cannot be used (%s): embeddings are kept in memory only",
                            path, exc.strerror or exc)
            else:
                if not self.store.writable:
                    self._read_only(OSError("read-only"))

    def source_signature(self, z: int) -> str:
        """Signature of the stored bytes slice ``z``'s embedding is computed from: those of
        every slice its channels read (``mode.channels``)."""
        n = self.volume.shape[0]
        return "|".join(self.volume.slice_signature(c) for c in sorted(set(self.mode.channels(int(z), n))))

    def _read_only(self, exc):
        if self.store is not None and getattr(self, "_warned", False) is False:
            log.warning("embedding cache %s cannot be written (%s): new embeddings are kept in memory only",
                        self.store.path, getattr(exc, "strerror", None) or exc)
            self._warned = True
        if self.store is not None:
            self.store.writable = False

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
            sigs = [self.source_signature(z) if self.store is not None else "" for z in batch]  # before reading
            embs = self._encode_slices(batch)
            bad = []
            for z, sig, emb in zip(batch, sigs, embs):  # store the whole batch first: a cancel loses no work
                if not torch.isfinite(emb).all():
                    bad.append(z)
                    continue
                if self.store is not None:
                    half = emb.to(torch.float16)
                    if not torch.isfinite(half).all():  # beyond float16's range: memory only, float32
                        log.warning("slice %d: its embedding exceeds float16's range; it is not cached", z)
                    elif self.store.writable:
                        try:
                            self.store.put(z, half.cpu().numpy(), sig)
                        except OSError as exc:
                            self._read_only(exc)
                        emb = half  # use what the cache holds: results never depend on cache state
                    else:
                        emb = half
                self._remember(z, emb.float())
            if bad:
                raise EmbeddingError(
                    f"{self.volume.name}: the image encoder ({self.model.model_id}) returned non-finite values "
                    f"(NaN or inf) for slice(s) {bad}; nothing of them was cached. The weights may be broken")
            for z in batch:
                done += 1
                yield EmbedReport(z, False, done, total, len(batch))
            i += len(batch)

    def _encode_slices(self, zs) -> list[torch.Tensor]:
        """Encode whole slices (all their tiles) in as few encoder calls as fit.

        Tiles are streamed: only one encoder batch of tile crops is copied out of the raw
        slices at a time, and each result goes straight into its slice's output tensor
        (an 8000² slice's 1764 tiles of the built-in model no longer hold every crop and
        every result twice)."""
        from ..sampling import sample_raw

        raw = sample_raw(self.volume, zs, self.mode)  # (B, 3, H, W) raw, one read
        n_t = len(self.tiles)
        # tiles of one slice share a shape except when the slice is smaller than a tile
        groups: dict[tuple, list[int]] = {}
        for i in range(len(zs) * n_t):
            groups.setdefault(self.tiles[i % n_t].shape, []).append(i)
        feats: list = [None] * len(zs)
        for idx in groups.values():
            j = 0
            while j < len(idx):
                part = idx[j:j + max(1, self.batch_size)]
                crops = []
                for i in part:
                    y0, y1, x0, x1 = self.tiles[i % n_t].outer
                    crops.append(raw[i // n_t, :, y0:y1, x0:x1])
                res = self.encode(np.stack(crops))
                for k, i in enumerate(part):
                    b = i // n_t
                    if feats[b] is None:
                        feats[b] = torch.empty((n_t, *res.shape[1:]), dtype=res.dtype, device=res.device)
                    feats[b][i % n_t] = res[k]
                j += len(part)
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
        with bf16_autocast(self.device):  # bf16 on CUDA and on CPUs with native bf16 (precision.py)
            return self.sam.image_encoder(x).float()

    def input_size(self, tile: Tile) -> tuple:
        return preprocess_shape(*tile.shape, self.img_size)
