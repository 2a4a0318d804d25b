"""Remote zarr / OME-Zarr volumes over HTTP(S) and S3, through fsspec."""

from __future__ import annotations

URL_SCHEMES = ("http://", "https://", "s3://")


def is_url(path) -> bool:
    return isinstance(path, str) and path.lower().startswith(URL_SCHEMES)
