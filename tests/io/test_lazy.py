"""Lazy means: opening reads metadata and at most a few chunks; reads happen on demand.

Proved by counting pixel reads (slice decodes, zarr chunk fetches), not by timing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

import napari_scroll_sam.io.tiff as tiffmod
from napari_scroll_sam import open_volume
from tests.helpers import write_ome_zarr, write_slices


@pytest.fixture
def count_slice_reads(monkeypatch):
    calls = []
    real = tiffmod.read_image

    def counting(path, region=None):
        calls.append((path.name, region))
        return real(path, region)

    monkeypatch.setattr(tiffmod, "read_image", counting)
    return calls


@pytest.fixture
def count_chunk_reads(monkeypatch):
    """Chunk keys fetched from any zarr LocalStore (metadata documents excluded)."""
    from zarr.storage import LocalStore

    calls = []
    real = LocalStore.get

    async def counting(self, key, *args, **kwargs):
        if not key.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"):
            calls.append(key)
        return await real(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", counting)
    return calls


def test_slice_folder_with_meta_reads_no_pixels_at_open(tmp_path, volume_array, count_slice_reads):
    folder = write_slices(tmp_path / "s", volume_array, meta={"min": 0, "max": 65535, "voxelsize": 3.24})
    vol = open_volume(folder)
    assert count_slice_reads == []
    vol.data[7].compute()
    assert [name for name, _ in count_slice_reads] == ["00007.tif"]


def test_slice_folder_window_reads_at_most_three_slices(tmp_path, volume_array, count_slice_reads):
    open_volume(write_slices(tmp_path / "s", volume_array))
    assert 1 <= len(count_slice_reads) <= 3


def test_crop_of_a_large_slice_reads_only_its_region(tmp_path, monkeypatch, count_slice_reads):
    import tifffile

    monkeypatch.setattr(tiffmod, "MAX_SLICE_CHUNK_BYTES", 64 * 64)
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(4):
        tifffile.imwrite(folder / f"{i}.tif", np.full((128, 64), i, np.uint16), rowsperstrip=8)
    (folder / "meta.json").write_text('{"min": 0, "max": 4}')
    vol = open_volume(folder)
    vol.data[2, 10:20, 0:8].compute()
    assert {name for name, _ in count_slice_reads} == {"2.tif"}
    rows = sum(region[0].stop - region[0].start for _, region in count_slice_reads)
    assert rows < 128  # only the row blocks holding y 10:20 were decoded


def test_zarr_open_reads_only_window_chunks(tmp_path, count_chunk_reads):
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=(64, 64, 64), chunks=(8, 16, 16), dtype="uint16")
    z[:] = np.arange(64**3, dtype=np.uint16).reshape(64, 64, 64)
    count_chunk_reads.clear()
    vol = open_volume(tmp_path / "a.zarr")
    assert len(count_chunk_reads) <= 3  # 512 chunks in the store
    count_chunk_reads.clear()
    vol.data[10, 0:16, 0:16].compute()
    assert len(count_chunk_reads) == 1


def test_ome_zarr_window_from_coarsest_level(tmp_path, count_chunk_reads):
    vol = (np.arange(32 * 48 * 40) % 256).astype(np.uint8).reshape(32, 48, 40)
    path = write_ome_zarr(tmp_path / "s.zarr", vol, levels=3)
    count_chunk_reads.clear()
    open_volume(path)
    assert count_chunk_reads and all(k.startswith("2/") for k in count_chunk_reads)


SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, zarr
    from napari_scroll_sam import open_volume
    def hwm_mb():
        # this process's own peak (VmHWM): ru_maxrss carries the forking pytest's peak across exec
        try:
            return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path = sys.argv[1]
    zarr.create_array(path, shape=(14376, 7888, 8096), chunks=(128, 128, 128), dtype="uint16", fill_value=0)
    vol = open_volume(path)
    crop = vol.data[7000, 4000:4512, 3000:3512].compute()
    print(json.dumps({"shape": list(vol.shape), "crop": list(crop.shape), "crop_max": int(crop.max()),
                      "maxrss_mb": hwm_mb()}))
    """
)


def test_scroll1_sized_empty_zarr_opens_in_flat_memory(tmp_path):
    """14,376 x 7,888 x 8,096 uint16 (1.8 TB): open and read a 512² crop under 1 GB of RSS."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "scroll1.zarr")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [14376, 7888, 8096]
    assert result["crop"] == [512, 512] and result["crop_max"] == 0
    assert result["maxrss_mb"] < 1024


def test_volume_read_gives_the_region_from_memory_or_from_its_chunks(tmp_path, volume_array, count_slice_reads):
    from napari_scroll_sam.io.volume import Volume
    from napari_scroll_sam.layers import volume_from_layer

    arr = np.asarray(volume_array)
    mem = Volume(levels=[arr], contrast_limits=(0, 255), name="memory")
    want = arr[2, 3:9, 1:7]
    got = mem.read(2, (3, 9), (1, 7))
    np.testing.assert_array_equal(got, want)
    assert np.shares_memory(got, arr)  # numpy given: sliced directly, no dask graph
    crop = mem.crop(z=(1, 4), y=(2, 10))  # a derived view reads through dask, in its own frame
    np.testing.assert_array_equal(crop.read(1, (1, 7), (1, 7)), want)
    np.testing.assert_array_equal(mem.read(0), arr[0])
    swapped = Volume(levels=[arr], contrast_limits=(0, 255), name="swapped")
    swapped.levels = [swapped.levels[0] + 1]  # levels replaced after the fact: read follows them
    np.testing.assert_array_equal(swapped.read(2, (3, 9), (1, 7)), want + 1)

    write_slices(tmp_path / "s", arr)
    lazy = open_volume(tmp_path / "s")
    count_slice_reads.clear()  # the window's reads at open
    np.testing.assert_array_equal(lazy.read(2, (3, 9), (1, 7)), want)
    assert len(count_slice_reads) == 1  # on demand: that slice's file only

    class Layer:  # a napari image layer holding numpy: its volume reads the array itself
        data, name, contrast_limits, scale, rgb, multiscale, metadata = arr, "layer", (0, 255), (1, 1, 1), False, False, {}
    assert np.shares_memory(volume_from_layer(Layer()).read(2, (3, 9), (1, 7)), arr)
