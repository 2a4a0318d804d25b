"""``napari-scroll-sam info``: describe a volume (metadata only)."""

from __future__ import annotations


def run(args) -> int:
    from ..io.open import open_volume

    vol = open_volume(args.path, volume=args.volume)
    print(vol.describe())
    return 0


def register(command) -> None:
    """Add the command's parser (``command(name, help=…)`` makes one)."""
    info = command("info", help="describe a volume (reads metadata only)")
    info.add_argument("path")
    info.add_argument("--volume", default=None, help="which volume of a .volpkg")
    info.set_defaults(func=run)
