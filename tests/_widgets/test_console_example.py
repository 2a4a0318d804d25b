"""examples/propagate_console.py under napari's ``%run``: its own globals, the viewer found
through ``napari.current_viewer()``, the result added to it."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "propagate_console.py"


def test_console_example_adds_to_the_current_viewer(make_napari_viewer, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE)])
    viewer = make_napari_viewer()
    import napari

    assert napari.current_viewer() is viewer
    runpy.run_path(str(EXAMPLE), run_name="__main__")  # what %run does: fresh globals, no `viewer`
    out = capsys.readouterr().out
    assert "IoU with the prompted wrap" in out and "added 'synthetic scroll'" in out
    assert [ly.name for ly in viewer.layers] == ["synthetic scroll", "propagated"]
    labels = viewer.layers["propagated"].data
    assert labels.shape == (24, 192, 192) and int((np.asarray(labels) == 1).sum()) > 1000
    assert viewer.dims.ndisplay == 3
