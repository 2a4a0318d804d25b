"""Hostile inputs, each through ``open_volume``, the CLI (``info`` and ``propagate``) and
napari's reader: a clear error of the project's own type naming the file and what is
wrong, one line and a non-zero exit at the CLI, and every input and earlier output
byte-identical afterwards. Each case builds its own bad input in a tmp folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_scroll_sam import open_volume, write_labels
from napari_scroll_sam.cli import main
from napari_scroll_sam.errors import ScrollSamError
from napari_scroll_sam.io.reader import get_reader
from tests.fs_helpers import snapshot
from tests.helpers import write_ome_zarr, write_slices


def _cube(n=8, h=6, w=5):
    return np.arange(n * h * w, dtype=np.uint16).reshape(n, h, w)


def nrrd_header_fewer_slices(tmp):
    import nrrd

    path = tmp / "v.nrrd"
    nrrd.write(str(path), _cube(), index_order="C", header={"encoding": "raw"})
    raw = path.read_bytes()
    assert b"sizes: 5 6 8" in raw
    path.write_bytes(raw.replace(b"sizes: 5 6 8", b"sizes: 5 6 4"))  # the header says 4 of the 8 slices
    return path


def mixed_tif_and_png(tmp):
    folder = write_slices(tmp / "s", _cube(3).astype(np.uint8))
    write_slices(folder, _cube(2).astype(np.uint8) + 1, fmt="{:05d}.png")
    return folder


def _meta(**meta):
    def build(tmp):
        return write_slices(tmp / "s", _cube(), meta=meta)
    return build


def _ome(voxel):
    def build(tmp):
        return write_ome_zarr(tmp / "o.zarr", np.zeros((16, 32, 32), np.uint8), levels=2, voxel=voxel)
    return build


def ome_level_of_fewer_axes(tmp):
    path = write_ome_zarr(tmp / "o.zarr", np.zeros((16, 32, 32), np.uint8), levels=2)
    root = zarr.open_group(str(path), mode="a")
    del root["1"]
    root.create_array("1", shape=(16, 16), chunks=(16, 16), dtype="uint8",
                      chunk_key_encoding={"name": "v2", "separator": "/"})
    return path


def corrupt_zarr_chunk(tmp):
    path = tmp / "c.zarr"
    arr = zarr.create_array(str(path), shape=(4, 16, 16), chunks=(4, 16, 16), dtype="uint16")
    arr[:] = 7
    chunk = next(p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 8)  # zstd magic, then nonsense
    return path


def huge_declared_shape(tmp):
    path = tmp / "h.zarr"
    zarr.create_array(str(path), shape=(10**9,) * 3, chunks=(128, 128, 128), dtype="uint8")
    return path


def corrupt_tiff(tmp):
    path = tmp / "v.tif"
    tifffile.imwrite(path, _cube())
    raw = bytearray(path.read_bytes())
    raw[4:8] = b"\xff\xff\xff\x7f"  # first IFD offset far past the end
    path.write_bytes(bytes(raw))
    return path


CASES = [
    ("nrrd header states fewer slices than the file holds", nrrd_header_fewer_slices,
     r"v\.nrrd: its header declares sizes \[5, 6, 4\].*holds 480 bytes"),
    ("slice folder with .tif and .png", mixed_tif_and_png, r"several kinds \(3 TIFF, 2 PNG\)"),
    ("meta.json negative voxelsize", _meta(voxelsize=-7.91), r"meta\.json: key 'voxelsize'.*> 0"),
    ("meta.json NaN voxelsize", _meta(voxelsize=float("nan")), r"meta\.json: key 'voxelsize'.*finite"),
    ("meta.json zero voxelsize", _meta(voxelsize=0), r"meta\.json: key 'voxelsize'.*> 0"),
    ("meta.json string voxelsize", _meta(voxelsize="7.91um"), r"meta\.json: key 'voxelsize'.*not a number"),
    ("meta.json string min", _meta(min="low", max=100), r"meta\.json: key 'min' is 'low', not a number"),
    ("meta.json string slices", _meta(slices="eight"), r"meta\.json: key 'slices' is 'eight', not a number"),
    ("OME-Zarr zero scale", _ome((0.0, 1.0, 1.0)), r"o\.zarr: multiscales .*'scale'.*> 0"),
    ("OME-Zarr negative scale", _ome((1.0, -2.0, 1.0)), r"o\.zarr: multiscales .*'scale'.*> 0"),
    ("OME-Zarr NaN scale", _ome((1.0, 1.0, float("nan"))), r"o\.zarr: multiscales .*'scale'.*finite"),
    ("OME-Zarr level with fewer axes", ome_level_of_fewer_axes, r"pyramid level 1 \('1'\) has 2 axes but level 0 has 3"),
    ("corrupt zarr chunk", corrupt_zarr_chunk, r"c\.zarr: cannot read .*chunk"),
    ("declared shape of 10^9 per axis", huge_declared_shape, r"h\.zarr: declares shape .* more than the \d+"),
    ("TIFF whose first page is past its end", corrupt_tiff, r"v\.tif: (not a readable TIFF|TIFF holds no image series)"),
]
IDS = [c[0] for c in CASES]


@pytest.fixture
def earlier_output(tmp_path):
    """A good labels output from an earlier run, and a prompts file, outside the input."""
    (tmp_path / "out").mkdir()
    out = write_labels(tmp_path / "out" / "labels.zarr", np.ones((8, 6, 5), np.uint32))
    prompts = tmp_path / "out" / "prompts.csv"
    prompts.write_text("object,z,y,x\n1,1,2,2\n")
    return out, prompts


@pytest.mark.parametrize("name,build,match", CASES, ids=IDS)
def test_open_volume_refuses_naming_file_and_fault(tmp_path, name, build, match):
    (tmp_path / "in").mkdir()
    path = build(tmp_path / "in")
    before = snapshot(path)
    with pytest.raises(ScrollSamError, match=match):
        open_volume(path)
    assert snapshot(path) == before


@pytest.mark.parametrize("name,build,match", CASES, ids=IDS)
def test_cli_prints_one_line_exits_2_and_touches_nothing(tmp_path, capsys, earlier_output, name, build, match):
    (tmp_path / "in").mkdir()
    path = build(tmp_path / "in")
    out, prompts = earlier_output
    before, before_out = snapshot(path), snapshot(out)
    for argv in (["info", str(path)],
                 ["propagate", str(path), "--prompts", str(prompts), "--out", str(out), "--cache",
                  str(tmp_path / "cache")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        import re

        assert re.search(match, err[0]), err[0]
    assert snapshot(path) == before and snapshot(out) == before_out
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.zarr", "prompts.csv"]


@pytest.mark.parametrize("name,build,match", CASES, ids=IDS)
def test_napari_reader_never_raises_when_asked_and_reads_with_a_clear_error(tmp_path, name, build, match):
    (tmp_path / "in").mkdir()
    path = build(tmp_path / "in")
    reader = get_reader(str(path))  # answering "can you read this?" never raises
    if reader is not None:
        with pytest.raises(ScrollSamError, match=match):
            reader(str(path))


def test_debug_flag_prints_the_traceback(tmp_path, capsys):
    path = mixed_tif_and_png(tmp_path)
    assert main(["info", str(path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "several kinds" in err.splitlines()[-1]


def test_one_huge_chunk_is_not_read_at_open(tmp_path, capsys):
    """A zarr of one 1 GiB chunk (declared, never written): opening reads none of it."""
    path = tmp_path / "big.zarr"
    zarr.create_array(str(path), shape=(1, 32768, 32768), chunks=(1, 32768, 32768), dtype="uint8")
    vol = open_volume(path)
    assert vol.contrast_limits == (0.0, 255.0)  # the dtype's range: the chunk is over the read budget
    assert main(["info", str(path)]) == 0
    assert "(1, 32768, 32768)" in capsys.readouterr().out


class _Recording:
    """A zarr array that records what is read from it."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.chunks, self.reads = arr, arr.shape, arr.dtype, arr.chunks, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.arr[key]


def test_window_reads_a_bounded_sample(tmp_path):
    """Chunks within the budget: a patch of at most 512² of each sampled slice is read;
    a chunk larger than the budget is not read at all."""
    from napari_scroll_sam.io.volume import estimate_window

    data = np.random.default_rng(0).integers(0, 1000, (8, 2048, 2048), dtype=np.uint16)
    arr = zarr.create_array(str(tmp_path / "v.zarr"), shape=data.shape, chunks=(1, 1024, 1024), dtype="uint16")
    arr[:] = data
    rec = _Recording(zarr.open_array(str(tmp_path / "v.zarr"), mode="r"))
    lo, hi = estimate_window(rec)
    assert 0 <= lo < hi <= 1000 and len(rec.reads) == 3
    assert all((k[1].stop - k[1].start) * (k[2].stop - k[2].start) <= 512 * 512 for k in rec.reads)
    rec = _Recording(zarr.open_array(str(tmp_path / "v.zarr"), mode="r"))
    assert estimate_window(rec, budget=2**20) == (0.0, 65535.0) and rec.reads == []  # 2 MiB chunks > 1 MiB


def test_corrupt_chunk_read_later_names_file_and_chunk(tmp_path):
    path = tmp_path / "c.zarr"
    arr = zarr.create_array(str(path), shape=(4, 16, 32), chunks=(4, 16, 16), dtype="uint16")
    arr[:] = 7
    vol = open_volume(path)
    (path / "c" / "0" / "0" / "1").write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 8)
    with pytest.raises(ScrollSamError, match=r"c\.zarr: cannot read the chunk\(s\) at \[0:4, 0:16, 16:32\]"):
        vol.data[1].compute()


def test_nrrd_byte_skip_minus_one_reads_the_end_of_the_file(tmp_path):
    import nrrd

    path = tmp_path / "v.nrrd"
    nrrd.write(str(path), _cube(), index_order="C", header={"encoding": "raw"})
    raw = path.read_bytes()
    head, data = raw[: len(raw) - _cube().nbytes], raw[len(raw) - _cube().nbytes:]
    path.write_bytes(head.replace(b"encoding: raw\n", b"encoding: raw\nbyte skip: -1\n") + b"junk" + data)
    np.testing.assert_array_equal(open_volume(path).data.compute(), _cube())
    path.write_bytes(head.replace(b"encoding: raw\n", b"encoding: raw\nbyte skip: 4\n") + b"junk" + data)
    np.testing.assert_array_equal(open_volume(path).data.compute(), _cube())


def test_meta_json_with_valid_values_still_opens(tmp_path):
    folder = write_slices(tmp_path / "s", _cube(), meta={"voxelsize": "7.91", "min": 0, "max": 100, "slices": 8})
    vol = open_volume(folder)
    assert vol.voxel_size == (7.91,) * 3 and vol.contrast_limits == (0.0, 100.0)
    json.loads((folder / "meta.json").read_text())


@pytest.mark.parametrize("module", ["io.checks", "io.window", "io.atomic", "io.tiff", "io.zarr", "io.nrrd"])
def test_io_modules_import_first_in_a_fresh_process(module):
    """A dask worker unpickling a slice reader imports its module first: no import cycle."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", f"import napari_scroll_sam.{module}"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr.strip().splitlines()[-1:]
