"""House rules that a refactor could silently break."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import napari_scroll_sam


def _core_modules():
    for info in pkgutil.walk_packages(napari_scroll_sam.__path__, "napari_scroll_sam."):
        if "._widgets" not in info.name:
            yield info.name


def test_core_never_imports_qt_or_napari():
    mods = list(_core_modules())
    assert "napari_scroll_sam.sam.embeddings" in mods and "napari_scroll_sam.io.volume" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'vispy', 'magicgui'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_scripting_api_names_resolve():
    for name in napari_scroll_sam.__all__:
        assert getattr(napari_scroll_sam, name) is not None
