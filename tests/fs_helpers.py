"""Small real file systems for the disk-safety tests: a tmpfs of a few MiB (full disks)
and a read-only one. Mounting needs root (and a kernel that allows it); where it is not
allowed the test is skipped and says why."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


def _run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "2m"):
    """Mount a tmpfs of ``size`` at ``where`` (created); unmounted afterwards."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; not root here")
    res = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


def remount_read_only(where: Path) -> None:
    res = _run("mount", "-o", "remount,ro", str(where))
    if res.returncode != 0:
        pytest.skip(f"cannot remount {where} read-only ({res.stderr.strip()})")


def fill(where: Path, leave: int = 0) -> Path:
    """Fill the file system of ``where`` up to ``leave`` free bytes with one file."""
    import shutil

    filler = Path(where) / "filler.bin"
    with open(filler, "ab") as fh:
        while shutil.disk_usage(where).free > leave:
            try:
                fh.write(b"\0" * min(65536, max(shutil.disk_usage(where).free - leave, 1)))
                fh.flush()
            except OSError:
                break
    return filler


def snapshot(path: Path) -> dict:
    """Every file under ``path`` (or the file itself): relative name -> bytes."""
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
