"""Vesuvius ``*.volpkg`` folders: ``volumes/<id>/`` slice folders (and zarr volumes)."""

from __future__ import annotations

from pathlib import Path

from .volume import Volume, VolumeError


def list_volumes(volpkg: Path) -> list[Path]:
    """The volumes of a volpkg, in name order: ``volumes/<id>/`` and ``volumes_zarr*/<name>.zarr``."""
    from .open import detect_format

    volpkg = Path(volpkg)
    found = []
    for sub in sorted(volpkg.iterdir()):
        if sub.is_dir() and sub.name.startswith("volumes"):
            for v in sorted(sub.iterdir()):
                if v.is_dir() and detect_format(v) in ("slices", "zarr"):
                    found.append(v)
    return found


def open_volpkg(volpkg: Path, *, volume: str | None = None, channel: int = 0, check: str = "auto") -> Volume:
    """Open one volume of a volpkg: ``volume`` by name, else the first; the others
    are listed in ``Volume.choices``."""
    from .open import open_volume

    volpkg = Path(volpkg)
    vols = list_volumes(volpkg)
    if not vols:
        raise VolumeError(f"{volpkg}: volpkg with no volumes (expected volumes/<id>/ folders of slices)")
    names = [v.name for v in vols]
    if volume is None:
        chosen = vols[0]
    else:
        matches = [v for v in vols if v.name == volume or str(v.relative_to(volpkg)) == volume]
        if not matches:
            raise VolumeError(f"{volpkg}: no volume {volume!r}; it holds: {', '.join(names)}")
        chosen = matches[0]
    vol = open_volume(chosen, channel=channel, check=check)
    vol.choices = [n for n in names if n != chosen.name]
    vol.name = f"{volpkg.stem}/{chosen.name}"
    vol.metadata["volpkg"] = str(volpkg)
    return vol
