"""Outputs that are replaced only by a complete result: the one place for that rule.

``atomic_output(path)`` hands out a temporary path beside ``path`` (same folder, so
same file system: the final rename is atomic). When the block ends normally the
temporary result replaces ``path`` (a file or a folder); when it raises, or is
interrupted, ``path`` is left exactly as it was and the temporary result is removed
(or, with ``keep_partial`` on a Ctrl-C, renamed to a name that says it is partial).

``check_output(path, protected, ...)`` refuses, before any work, an output that is
one of the inputs, lies inside one or contains one, an existing path that is not
something we wrote (not a zarr store / not a file of the output's kind), a folder
that is not writable, and a disk without the space the output is known to need.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from ..errors import ScrollSamError


class WriteError(ScrollSamError, ValueError):
    """An output cannot be written where asked; names the path and why."""


#: errnos that mean "this disk / folder cannot take the write"
DISK_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError: 'read-only file system', 'no space left on device'…"""
    return exc.strerror.lower() if getattr(exc, "strerror", None) else str(exc)


def tmp_beside(path: Path, tag: str = "tmp") -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def partial_name(path: Path) -> Path:
    """Where a cancelled run's partial result goes: ``labels.partial.zarr`` for ``labels.zarr``."""
    path = Path(path)
    suffix = "".join(path.suffixes[-1:])
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    return path.with_name(f"{stem}.partial{suffix}")


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``; a previous ``path`` (file or folder) is replaced.

    A folder cannot be renamed over a non-empty folder, so the old one is first moved
    aside; if the second rename fails the old one is put back."""
    tmp, path = Path(tmp), Path(path)
    if path.is_dir() and not path.is_symlink():
        old = tmp_beside(path, "old")
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _resolved(p) -> Path:
    return Path(p).expanduser().resolve()


def _overlap(out: Path, other: Path) -> str | None:
    if out == other:
        return "is"
    if other in out.parents:
        return "is inside"
    if out in other.parents:
        return "contains"
    return None


def is_zarr_store(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in ("zarr.json", ".zarray", ".zgroup"))


def check_output(path, protected: dict | None = None, *, kind: str = "zarr", need_bytes: int = 0) -> Path:
    """Refuse an output path before any work (see the module doc). ``protected`` maps a
    word ("the input volume", "the prompts file", "the cache") to a path. Returns the path."""
    path = Path(path).expanduser()
    out = _resolved(path)
    for what, other in (protected or {}).items():
        if other is None:
            continue
        rel = _overlap(out, _resolved(other))
        if rel:
            raise WriteError(f"{path}: the output {rel} {what} ({other}); writing it would destroy "
                              f"that data. Choose an output outside it")
    if path.exists() or path.is_symlink():
        ours = is_zarr_store(path) if kind == "zarr" else path.is_file()
        if not ours:
            what = "a folder" if path.is_dir() else "a file"
            raise WriteError(f"{path}: exists and is {what} that is not a {kind} output; it is not replaced. "
                              f"Choose another output path or remove it yourself")
    folder = path.parent
    if not folder.is_dir():
        raise WriteError(f"{path}: folder {folder} does not exist")
    check_writable(folder, f"{path}: folder {folder}")
    if need_bytes:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise WriteError(f"{path}: only {free / 2**20:.1f} MiB free on the disk of {folder}; "
                              f"the output needs at least {need_bytes / 2**20:.1f} MiB")
    return path


def check_writable(folder: Path, where: str) -> None:
    """Create and remove a probe file: the only reliable test (root ignores mode bits,
    a read-only mount is only seen by trying)."""
    probe = tmp_beside(Path(folder) / "probe", "write-test")
    try:
        with open(probe, "wb") as fh:
            fh.write(b"0")
    except OSError as exc:
        raise WriteError(f"{where} is not writable ({describe_os_error(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


@contextlib.contextmanager
def atomic_output(path, *, keep_partial: bool = False, on_partial=None):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On an exception ``path`` is untouched and the temporary result is removed; on
    ``KeyboardInterrupt`` with ``keep_partial`` it is renamed to ``partial_name(path)``
    (replacing an older partial) and ``on_partial(that path)`` is called. OSErrors of a
    full or read-only disk become ``WriteError`` naming ``path``.
    """
    path = Path(path)
    tmp = tmp_beside(path)
    try:
        yield tmp
    except KeyboardInterrupt:
        if keep_partial and tmp.exists():
            part = partial_name(path)
            try:
                remove(part)
                os.replace(tmp, part)
            except OSError:
                remove(tmp)
            else:
                if on_partial is not None:
                    on_partial(part)
        else:
            remove(tmp)
        raise
    except OSError as exc:
        remove(tmp)
        if exc.errno in DISK_ERRNOS:
            raise WriteError(f"{path}: not written ({describe_os_error(exc)}); "
                              f"{'the earlier ' + path.name + ' is untouched' if path.exists() else 'nothing was left'}"
                              ) from exc
        raise
    except BaseException:
        remove(tmp)
        raise
    try:
        replace(tmp, path)
    except OSError as exc:
        remove(tmp)
        raise WriteError(f"{path}: cannot move the finished result into place ({describe_os_error(exc)})") from exc
