"""Remote zarr / OME-Zarr volumes over HTTP(S) and S3, through fsspec (the ``http`` / ``s3`` extras).

``open_remote(url)`` reads metadata only (plus the few chunks the window needs) and
gives the same lazy ``Volume`` as a local zarr: the zarr store is fsspec's
(``FsspecStore``), wrapped in ``RemoteStore``, which adds

- retries with exponential backoff (``backoff * 2**attempt`` seconds, capped at
  ``max_backoff``, or the server's ``Retry-After`` when shorter) on HTTP 429 / 5xx,
  connection errors, truncated bodies and timeouts, ``retries`` times at most; then a
  ``VolumeError`` naming the URL and what went wrong. 403 and other 4xx are not retried;
  404 is a missing key (zarr's fill value for a chunk; "not a zarr" for metadata);
- an optional on-disk chunk cache (``chunk_cache=`` or ``$NAPARI_SCROLL_SAM_CHUNK_CACHE``):
  chunks (never metadata documents) are kept under ``<cache>/<hash of url>/<key>``,
  written atomically, so a region read again costs no request. Remote data is taken as
  immutable: delete the cache folder to fetch it again.

S3 is anonymous unless AWS credentials are in the usual environment
(``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``~/.aws/credentials``); ``storage_options``
go to fsspec as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path

from zarr.storage import WrapperStore

from .volume import VolumeError

URL_SCHEMES = ("http://", "https://", "s3://")
CACHE_ENV = "NAPARI_SCROLL_SAM_CHUNK_CACHE"
METADATA_KEYS = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


def is_url(path) -> bool:
    return isinstance(path, str) and path.lower().startswith(URL_SCHEMES)


def _retryable(exc) -> bool:
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError,
                            TimeoutError, ConnectionError))


def _describe(exc) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status} {exc.message}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"truncated answer ({exc})"
    if isinstance(exc, PermissionError):
        return f"access denied ({exc})"
    return f"{type(exc).__name__}: {exc}"


class RemoteStore(WrapperStore):
    """fsspec's zarr store with retries, backoff and an optional on-disk chunk cache."""

    def __init__(self, store, *, url: str, retries: int = 5, backoff: float = 0.5, max_backoff: float = 30.0,
                 cache_dir: Path | None = None):
        super().__init__(store)
        self.url, self.retries, self.backoff, self.max_backoff = url.rstrip("/"), retries, backoff, max_backoff
        self.cache_dir = Path(cache_dir) / hashlib.sha256(self.url.encode()).hexdigest()[:16] if cache_dir else None

    def _with_store(self, store):
        return type(self)(store, url=self.url, retries=self.retries, backoff=self.backoff,
                          max_backoff=self.max_backoff, cache_dir=self.cache_dir and self.cache_dir.parent)

    async def _retry(self, key, call):
        attempt = 0
        while True:
            try:
                return await call()
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _retryable(exc) or attempt >= self.retries:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    raise VolumeError(f"{self.url}/{key}: {_describe(exc)}{tries}") from exc
                delay = min(self.backoff * 2**attempt, self.max_backoff)
                after = getattr(exc, "headers", None) and exc.headers.get("Retry-After")
                if after and str(after).isdigit():
                    delay = min(delay, float(after))
                attempt += 1
                await asyncio.sleep(delay)

    def _cache_file(self, key, byte_range) -> Path | None:
        if self.cache_dir is None or key.rsplit("/", 1)[-1] in METADATA_KEYS:
            return None
        suffix = "" if byte_range is None else "@" + hashlib.sha256(repr(byte_range).encode()).hexdigest()[:12]
        return self.cache_dir / (key + suffix)

    async def get(self, key, prototype, byte_range=None):
        cached = self._cache_file(key, byte_range)
        if cached is not None and cached.is_file():
            return prototype.buffer.from_bytes(cached.read_bytes())
        value = await self._retry(key, lambda: self._store.get(key, prototype, byte_range))
        if value is not None and cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}")
            tmp.write_bytes(value.to_bytes())
            os.replace(tmp, cached)
        return value

    async def get_partial_values(self, prototype, key_ranges):
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key):
        return await self._retry(key, lambda: self._store.exists(key))

    def __repr__(self):
        return f"RemoteStore({self.url!r})"


def _has_aws_credentials() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
                or (Path.home() / ".aws" / "credentials").is_file())


def storage_options_for(url: str, timeout: float, storage_options: dict | None = None) -> dict:
    """fsspec options: a total timeout per request (HTTP), anonymous S3 without credentials."""
    opts = dict(storage_options or {})
    if url.lower().startswith("s3://"):
        opts.setdefault("anon", not _has_aws_credentials())
        opts.setdefault("config_kwargs", {"connect_timeout": timeout, "read_timeout": timeout})
    else:
        import aiohttp

        client = dict(opts.pop("client_kwargs", {}) or {})
        client.setdefault("timeout", aiohttp.ClientTimeout(total=timeout))
        opts["client_kwargs"] = client
    return opts


def remote_store(url: str, *, retries: int = 5, backoff: float = 0.5, timeout: float = 30.0,
                 chunk_cache=None, storage_options: dict | None = None) -> RemoteStore:
    try:
        from zarr.storage import FsspecStore

        inner = FsspecStore.from_url(url, storage_options=storage_options_for(url, timeout, storage_options),
                                     read_only=True)
    except ImportError as exc:
        extra = "s3" if url.lower().startswith("s3://") else "http"
        raise VolumeError(f"{url}: reading it needs {exc.name}: pip install 'napari-scroll-sam[{extra}]'") from exc
    except Exception as exc:  # noqa: BLE001 - fsspec raises several kinds for a bad URL
        raise VolumeError(f"{url}: cannot open ({type(exc).__name__}: {exc})") from exc
    cache = chunk_cache if chunk_cache is not None else os.environ.get(CACHE_ENV) or None
    return RemoteStore(inner, url=url, retries=int(retries), backoff=float(backoff), cache_dir=cache)


def open_remote(url: str, *, channel: int = 0, retries: int = 5, backoff: float = 0.5, timeout: float = 30.0,
                chunk_cache=None, storage_options: dict | None = None):
    """A lazy ``Volume`` of a remote zarr array, group or OME-Zarr pyramid (v2 or v3)."""
    from .zarr import open_zarr

    url = url.rstrip("/")
    store = remote_store(url, retries=retries, backoff=backoff, timeout=timeout, chunk_cache=chunk_cache,
                         storage_options=storage_options)
    vol = open_zarr(url, channel=channel, store=store)
    meta = vol.sources[0].metadata.to_dict() if vol.sources else {"chunks": [c[0] for c in vol.data.chunks]}
    signature = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return dataclasses.replace(vol, path=None, name=url.rsplit("/", 1)[-1],
                               metadata={**vol.metadata, "url": url, "source_id": f"{url}#{signature}",
                                         "chunk_cache": str(store.cache_dir) if store.cache_dir else None})
