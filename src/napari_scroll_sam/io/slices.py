"""The numbered slice files of a folder: their suffixes and natural order."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from .checks import VolumeError

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SLICE_SUFFIXES = TIFF_SUFFIXES + (".png", ".jpg", ".jpeg", ".bmp")


def _kind(name: str) -> str:
    ext = Path(name).suffix.lower()
    return "TIFF" if ext in TIFF_SUFFIXES else {".jpg": "JPEG", ".jpeg": "JPEG"}.get(ext, ext[1:].upper())


def list_slices(folder: Path, suffixes: Sequence[str] = SLICE_SUFFIXES) -> list[Path]:
    """Image files of a folder in natural order (``2.tif`` before ``10.tif``).

    A folder holding two kinds (TIFF and PNG, say) is refused, naming both and their counts.
    """
    files = [e for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(suffixes)
             and not e.name.startswith(".")]
    kinds: dict[str, list] = {}
    for e in files:
        kinds.setdefault(_kind(e.name), []).append(e)
    if len(kinds) > 1:
        counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -len(kv[1])))
        raise VolumeError(f"{folder}: holds slices of several kinds ({counts}); which are the volume is "
                          f"not guessed: move the other kind to another folder")
    def key(name):
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]

    return [Path(e.path) for e in sorted(files, key=lambda e: key(e.name))]
