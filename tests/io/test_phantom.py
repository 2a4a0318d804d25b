"""Tests for the lazy synthetic scroll phantom."""

import time

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from napari_scroll_sam.io import phantom
from napari_scroll_sam.io.phantom import CONTRAST_LIMITS, ScrollPhantom, sample_scroll, scroll_phantom

SHAPE = (64, 256, 256)


@pytest.fixture(scope="module")
def vol():
    """The default phantom, computed once (image, sheets, ink as numpy)."""
    phantom._packed.cache_clear()
    return tuple(np.asarray(a) for a in dask.compute(*scroll_phantom(SHAPE, seed=0)))


@pytest.fixture
def count_blocks(monkeypatch):
    """Count calls of the block generator (with an empty block cache)."""
    phantom._packed.cache_clear()
    calls = []
    real = phantom._block

    def counted(*args):
        calls.append(args[:6])
        return real(*args)

    monkeypatch.setattr(phantom, "_block", counted)
    yield calls
    phantom._packed.cache_clear()


def test_shapes_and_dtypes():
    ph = scroll_phantom((20, 100, 120), seed=3)
    assert isinstance(ph, ScrollPhantom)
    image, sheets, ink = ph
    for arr, dtype in ((image, np.uint16), (sheets, np.uint32), (ink, np.bool_)):
        assert isinstance(arr, da.Array)
        assert arr.shape == (20, 100, 120)
        assert arr.dtype == dtype
        assert arr.compute().dtype == dtype
    assert image.chunks == ((16, 4), (100,), (120,))


def test_intensity_levels(vol):
    image, sheets, ink = vol
    air = image[sheets == 0].astype(float)
    paper = image[(sheets > 0) & ~ink].astype(float)
    assert 8000 < np.median(air) < 12000
    assert 1000 < air.std() < 2500  # background noise
    assert 25000 < np.median(paper) < 40000
    assert paper.std() > air.std()  # fibre texture on top of the noise
    # ink is subtle but brighter than the papyrus around it
    assert 1500 < image[ink].mean() - paper.mean() < 6000
    lo, hi = CONTRAST_LIMITS
    assert lo < np.median(air) and np.median(paper) < hi


def test_deterministic_and_seeded():
    region = (slice(10, 30), slice(40, 200), slice(60, 220))
    phantom._packed.cache_clear()
    a = [np.asarray(x[region]) for x in scroll_phantom(SHAPE, seed=1)]
    phantom._packed.cache_clear()
    b = [np.asarray(x[region]) for x in scroll_phantom(SHAPE, seed=1)]
    c = [np.asarray(x[region]) for x in scroll_phantom(SHAPE, seed=2)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert (a[0] != c[0]).mean() > 0.5
    assert (a[1] != c[1]).mean() > 0.05


def test_independent_of_chunking():
    region = (slice(5, 40), slice(30, 230), slice(17, 250))
    phantom._packed.cache_clear()
    a = dask.compute(*[x[region] for x in scroll_phantom(SHAPE, seed=4, chunks=(64, 256, 256))])
    b = dask.compute(*[x[region] for x in scroll_phantom(SHAPE, seed=4, chunks=(13, 90, 77))])
    assert b[1].max() > 0 and b[2].any()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_lazy_and_computes_only_touched_blocks(count_blocks):
    t = time.perf_counter()
    image, sheets, ink = scroll_phantom((2000, 8000, 8000), seed=0)
    assert time.perf_counter() - t < 2.0
    assert count_blocks == []
    assert image.nbytes == 2000 * 8000 * 8000 * 2 and sheets.nbytes == 2 * image.nbytes
    assert image.chunks[0][0] == 16 and image.chunks[1][0] == 512
    # smaller chunks to keep the test quick; one block (z 996:1000, y 3840:3968, x 4224:4352),
    # shared by the three outputs
    image, sheets, ink = scroll_phantom((2000, 8000, 8000), seed=0, chunks=(4, 128, 128))
    region = (998, slice(3900, 3910), slice(4300, 4320))
    img, lab, _ = dask.compute(image[region], sheets[region], ink[region])
    assert img.shape == (10, 20) and lab.dtype == np.uint32
    assert count_blocks == [(996, 1000, 3840, 3968, 4224, 4352)]
    # a region straddling two blocks along x computes only the new one
    sheets[998, 3900:3910, 4340:4360].compute()
    assert len(count_blocks) == 2 and count_blocks[1][4:] == (4352, 4480)


def test_one_label_per_wrap(vol):
    _, sheets, _ = vol
    labels = np.unique(sheets)
    n = labels.max()
    assert 5 <= n <= 12  # several wraps at 256 px
    np.testing.assert_array_equal(labels, np.arange(n + 1))
    # innermost wrap near the centre, outermost farther out
    zz, yy, xx = np.nonzero(sheets == 1)
    zo, yo, xo = np.nonzero(sheets == n)
    assert np.hypot(yy - 128, xx - 128).mean() < np.hypot(yo - 128, xo - 128).mean() / 2
    # wraps parameter
    lab = scroll_phantom((4, 128, 128), seed=0, wraps=3).sheets.compute()
    np.testing.assert_array_equal(np.unique(lab), [0, 1, 2, 3])


def test_sheet_thickness_and_gaps(vol):
    image, sheets, _ = vol
    z = SHAPE[0] // 2
    for row in (sheets[z, 128, 128:], sheets[z, 128, 127::-1], sheets[z, 128:, 128], sheets[z, 127::-1, 128]):
        edges = np.flatnonzero(np.diff((row > 0).astype(int))) + 1  # radial walk from the centre outwards
        runs = np.diff(edges)  # alternating sheet / gap run lengths, starting with a sheet
        sheet_runs, gap_runs = runs[0::2], runs[1::2]
        assert sheet_runs.size >= 5
        assert 2 <= np.median(sheet_runs) <= 7 and 3 <= np.median(gap_runs) <= 9
        assert gap_runs.min() >= 2
    # dilating one wrap by a pixel in-plane barely touches other wraps
    cross = ndimage.generate_binary_structure(3, 1)
    cross[0] = cross[2] = False
    for k in range(1, sheets.max() + 1):
        ring = ndimage.binary_dilation(sheets == k, cross) & (sheets != k)
        touching = np.isin(sheets[ring], [0, k], invert=True).sum()
        assert touching < 0.02 * (sheets == k).sum()
    # gaps are dark compared to the sheets, inside the rolled region
    rolled = ndimage.binary_fill_holes(ndimage.binary_closing(sheets[z] > 0, iterations=6))
    gaps = rolled & (sheets[z] == 0)
    assert image[z][gaps].mean() < image[z][sheets[z] > 0].mean() - 12000


def test_z_continuity_and_drift(vol):
    _, sheets, _ = vol
    for k in range(1, sheets.max() + 1):
        m = sheets == k
        inter = (m[1:] & m[:-1]).sum(axis=(1, 2))
        union = (m[1:] | m[:-1]).sum(axis=(1, 2))
        assert (inter / union).min() > 0.7, k
    first, last = sheets[0] > 0, sheets[-1] > 0
    assert (first != last).mean() > 0.02  # the scroll moves over the depth


def test_ink_on_sheets(vol):
    image, sheets, ink = vol
    assert ink.sum() > 1000
    assert not (ink & (sheets == 0)).any()
    assert ink.mean() < 0.05 * (sheets > 0).mean()  # sparse strokes, not whole sheets
    # a thin layer: ink voxels have sheet voxels on one radial side and air close by on the other
    near_air = ndimage.binary_dilation(sheets == 0, iterations=2)
    assert (near_air[ink]).mean() > 0.9
    assert len({int(k) for k in np.unique(sheets[ink])}) >= 3  # text on several wraps


def test_sample_scroll():
    layers = sample_scroll()
    assert [layer[2] for layer in layers] == ["image", "labels", "labels"]
    (image, meta, _), (sheets, smeta, _), (ink, imeta, _) = layers
    assert isinstance(image, da.Array) and image.shape == SHAPE and image.dtype == np.uint16
    assert sheets.dtype == np.uint32 and ink.dtype == np.uint8
    assert meta["name"] == "scroll" and smeta["name"] == "sheets" and imeta["name"] == "ink"
    assert meta.get("visible", True) and not smeta["visible"] and not imeta["visible"]  # the truth opens hidden
    lo, hi = meta["contrast_limits"]
    assert 0 < lo < hi <= 65535
    assert isinstance(meta["metadata"], dict)
