"""The on-disk embedding store: one zarr array per ``CacheKey``, a signature per slice.

See ``sam.embeddings`` for what the key and the signatures cover.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..errors import ScrollSamError


class EmbeddingError(ScrollSamError, RuntimeError):
    """Encoding failed (e.g. out of GPU memory at batch size 1) or a cache does not fit; says what to do."""


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
    """One zarr array of embeddings (z, tile, C, h, w) for one ``CacheKey``, with each
    slice's source signature; ``signature(z)`` gives the current one (None: not checked).

    Raises OSError when the store can neither be opened nor created (the embedder then
    keeps embeddings in memory); ``writable`` turns False when a write fails."""

    def __init__(self, path: Path, key: CacheKey, n_slices: int, n_tiles: int, emb_shape: tuple, meta: dict,
                 signature=None):
        import zarr

        self.path = Path(path)
        self.key = key
        self.signature = signature
        self.writable = True
        shape = (n_slices, n_tiles, *emb_shape)
        if not (self.path / "zarr.json").is_file():
            self._create(shape, (1, 1, *emb_shape), {"key": dataclasses.asdict(key), **meta})
        try:
            self.array = zarr.open_array(str(self.path), mode="r+", config={"write_empty_chunks": True})
        except OSError:
            self.array = zarr.open_array(str(self.path), mode="r")
            self.writable = False
        if tuple(self.array.shape) != shape:
            raise EmbeddingError(f"{self.path}: cached embeddings have shape {self.array.shape}, expected {shape}")
        self.n_tiles = n_tiles

    def _create(self, shape, chunks, attributes):
        """Build the store under a temporary name and rename it into place: of two processes
        creating one store, the second rename fails and that process uses the first's."""
        import zarr

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            zarr.create_array(
                store=str(tmp), shape=shape, chunks=chunks, dtype="float16", fill_value=0,
                compressors=None,  # float16 embeddings: zstd saved 8 % of the bytes and doubled write / read time
                chunk_key_encoding={"name": "default", "separator": "/"}, zarr_format=3,
                config={"write_empty_chunks": True}, overwrite=False, attributes=attributes,
            )
            (tmp / "signatures").mkdir()
            os.rename(tmp, self.path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (self.path / "zarr.json").is_file():
                raise

    def _chunk_file(self, z: int, t: int) -> Path:
        rest = "/".join("0" for _ in range(self.array.ndim - 2))
        return self.path / "c" / str(z) / str(t) / rest

    def _sig_file(self, z: int) -> Path:
        return self.path / "signatures" / str(z)

    def has(self, z: int, signature: str | None = None) -> bool:
        if not all(self._chunk_file(z, t).is_file() for t in range(self.n_tiles)):
            return False
        if signature is None and self.signature is None:
            return True
        want = signature if signature is not None else self.signature(z)
        try:
            return self._sig_file(z).read_text() == want
        except OSError:
            return False

    def cached(self) -> list[int]:
        return [z for z in range(self.array.shape[0]) if self.has(z)]

    def get(self, z: int) -> np.ndarray:
        return self.array[z]

    def put(self, z: int, emb: np.ndarray, signature: str = "") -> None:
        """Write slice ``z``'s tiles (each chunk atomically), then its signature (atomically)."""
        for t in range(self.n_tiles):
            self.array[z, t] = emb[t]
        sig = self._sig_file(z)
        sig.parent.mkdir(exist_ok=True)
        tmp = sig.with_name(f".{z}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            tmp.write_text(signature)
            os.replace(tmp, sig)
        finally:
            tmp.unlink(missing_ok=True)
