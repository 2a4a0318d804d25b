"""npe2 faces: manifest, reader (never raises on junk), writer (atomic zarr / TIFF)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_scroll_sam import open_volume, write_labels
from napari_scroll_sam.io.reader import get_reader
from napari_scroll_sam.io.writer import WriteError, napari_write_labels
from tests.helpers import write_ome_zarr, write_slices


def test_manifest_validates_and_names_every_contribution():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-scroll-sam")
    assert pm.name == "napari-scroll-sam"
    commands = {c.id: c.python_name for c in pm.contributions.commands}
    for python_name in commands.values():  # each command imports to a callable
        module, attr = python_name.split(":")
        __import__(module)
        assert callable(getattr(sys.modules[module], attr))
    assert pm.contributions.readers[0].accepts_directories
    assert [w.layer_types for w in pm.contributions.writers] == [["labels"], ["labels"]]
    assert [s.key for s in pm.contributions.sample_data] == ["scroll"]
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-scroll-sam"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "valid" in out.stdout.lower(), out.stdout + out.stderr


@pytest.mark.parametrize("junk", ["missing.zarr", "notes.txt", "empty_dir", "list"])
def test_get_reader_returns_none_for_what_it_cannot_read(tmp_path, junk):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    path = [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")] if junk == "list" else str(tmp_path / junk)
    assert get_reader(path) is None


def test_reader_layers_for_slice_folder(tmp_path, volume_array):
    folder = write_slices(tmp_path / "s", volume_array, meta={"voxelsize": 7.91, "min": 0, "max": 65535})
    reader = get_reader(str(folder))
    assert reader is not None
    (data, meta, kind), = reader(str(folder))
    assert kind == "image" and data.shape == (12, 40, 50)
    assert meta["scale"] == (7.91,) * 3 and meta["contrast_limits"] == [0.0, 65535.0]
    assert meta["metadata"]["volume"].path == folder


def test_reader_multiscale_and_fragment_extras(tmp_path, volume_array):
    from PIL import Image

    vol = (np.arange(32 * 48 * 40) % 256).astype(np.uint8).reshape(32, 48, 40)
    pyramid = str(write_ome_zarr(tmp_path / "p.zarr", vol))
    (data, meta, kind), = get_reader(pyramid)(pyramid)
    assert meta["multiscale"] and [d.shape[0] for d in data] == [32, 16, 8]
    frag = tmp_path / "frag"
    write_slices(frag / "surface_volume", volume_array, fmt="{:02d}.tif")
    Image.fromarray(np.full((40, 50), 255, np.uint8)).save(frag / "inklabels.png")
    layers = get_reader(str(frag))(str(frag))
    assert [(m["name"], k) for _, m, k in layers] == [("frag", "image"), ("frag inklabels", "labels")]
    assert layers[1][0].shape == (40, 50)


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_write_labels_roundtrip(tmp_path, suffix):
    labels = np.zeros((10, 70, 300), np.uint32)
    labels[2:8, 10:50, 20:280] = 7
    out = write_labels(tmp_path / f"labels{suffix}", labels)
    back = open_volume(out).data.compute()
    np.testing.assert_array_equal(back, labels)
    assert sorted(os.listdir(tmp_path)) == [f"labels{suffix}"]  # no temporary left


def test_write_labels_zarr_is_chunked_and_compressed(tmp_path):
    import dask.array as da

    labels = da.zeros((100, 300, 300), dtype=np.uint32, chunks=(10, 300, 300))
    out = write_labels(tmp_path / "big.zarr", labels)
    arr = zarr.open_array(str(out), mode="r")
    assert arr.chunks == (64, 256, 256) and arr.metadata.zarr_format == 3
    assert arr.compressors
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    assert size < labels.nbytes / 100


def test_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    """A crash mid-write leaves the previous file whole and no temporary behind."""
    import napari_scroll_sam.io.writer as writer

    first = np.ones((4, 20, 20), np.uint16)
    write_labels(tmp_path / "l.zarr", first)

    def crash(tmp, data, chunks, **where):
        (tmp).mkdir()
        (tmp / "partial").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_write_zarr", crash)
    with pytest.raises(KeyboardInterrupt):
        write_labels(tmp_path / "l.zarr", np.zeros((4, 20, 20), np.uint16))
    assert sorted(os.listdir(tmp_path)) == ["l.zarr"]
    np.testing.assert_array_equal(open_volume(tmp_path / "l.zarr").data.compute(), first)


def test_write_labels_bad_input(tmp_path):
    with pytest.raises(WriteError, match="labels must be integers"):
        write_labels(tmp_path / "f.zarr", np.zeros((3, 4, 4), np.float32))
    with pytest.raises(WriteError, match="does not exist"):
        write_labels(tmp_path / "no" / "f.zarr", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(WriteError, match="unknown extension"):
        write_labels(tmp_path / "f.png", np.zeros((3, 4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_napari_writer_hook(tmp_path):
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:4, 2:4] = 3
    paths = napari_write_labels(str(tmp_path / "seg"), labels, {})
    assert paths == [str(tmp_path / "seg.zarr")]
    np.testing.assert_array_equal(zarr.open_array(paths[0], mode="r")[:], labels)
    tif = napari_write_labels(str(tmp_path / "seg.tif"), labels, {})[0]
    np.testing.assert_array_equal(tifffile.imread(tif), labels)
