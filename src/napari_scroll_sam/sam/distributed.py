"""Precompute a volume's embeddings, locally or over a dask.distributed cluster.

Encoding is independent per slice, so slices are split into batches and each
batch runs on a worker that loads the model once (kept per worker process),
opens the volume by path and writes into the same zarr store as everyone else
(one chunk per slice and tile: writers never touch the same file).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from .embeddings import EmbedReport, SliceEmbedder

_WORKER_MODELS: dict = {}


@dataclasses.dataclass(frozen=True)
class EmbedJob:
    """What a worker needs to rebuild the embedder: plain, picklable values."""

    volume_path: str
    model: str
    device: str
    mode: object
    cache: str | None
    batch_size: int | None = None
    volume: str | None = None  # which volume of a volpkg
    channel: int = 0


def _embedder_for(job: EmbedJob) -> SliceEmbedder:
    from ..io.open import open_volume
    from .models import load_model

    key = (job.model, job.device)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = load_model(job.model, device=job.device)
    vol = open_volume(job.volume_path, volume=job.volume, channel=job.channel)
    return SliceEmbedder(_WORKER_MODELS[key], vol, job.mode, cache=job.cache, batch_size=job.batch_size)


def embed_batch(job: EmbedJob, zs: list) -> list:
    """Worker task: embed slices ``zs``; returns [(z, cached)]."""
    emb = _embedder_for(job)
    return [(r.z, r.cached) for r in emb.embed(zs)]


def embed_volume(job: EmbedJob, zs=None, scheduler: str | None = None, client=None,
                 slices_per_task: int = 8) -> Iterator[EmbedReport]:
    """Embed slices ``zs`` (default: those the mode selects) of ``job``'s volume.

    Without a scheduler it runs here, in batches. With ``scheduler`` (an address
    such as ``tcp://10.0.0.5:8786``) or a dask ``client``, slices not yet cached
    are spread over the cluster's workers. Yields one report per slice.
    """
    local = _embedder_for(job)  # creates the store before any worker writes into it
    if zs is None:
        zs = local.mode.slices(local.volume)
    zs = [int(z) for z in zs]
    if scheduler is None and client is None:
        yield from local.embed(zs)
        return
    from distributed import Client, as_completed

    own = client is None
    client = client or Client(scheduler)
    try:
        done = 0
        todo = []
        for z in zs:
            if local.is_cached(z):
                done += 1
                yield EmbedReport(z, True, done, len(zs))
            else:
                todo.append(z)
        batches = [todo[i:i + slices_per_task] for i in range(0, len(todo), slices_per_task)]
        futures = [client.submit(embed_batch, job, b, pure=False) for b in batches]
        try:
            for fut in as_completed(futures):
                for z, cached in fut.result():
                    done += 1
                    yield EmbedReport(z, cached, done, len(zs))
        finally:
            for f in futures:
                f.cancel()
    finally:
        if own:
            client.close()
