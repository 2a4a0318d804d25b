"""Slice sampling modes on the phantom: which slices, which channels, windowing, filters, reads, keys."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest

from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sampling import (
    MODES, EverySlice, Filtered, RandomTuples, SamplingError, SliceIndexError, Tuples, make_mode, sample_image,
    sample_raw, window_to_uint8,
)

CL = (7000, 40000)
N = 20


@pytest.fixture(scope="module")
def phantom():
    return scroll_phantom((N, 64, 64), seed=0)


@pytest.fixture(scope="module")
def raw(phantom):
    return phantom.image.compute()


@pytest.fixture
def vol(phantom):
    return Volume(levels=[phantom.image], contrast_limits=CL)


def formula(raw, cl=CL):
    lo, hi = cl
    return np.clip(np.rint((raw.astype(np.float64) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


class Counter:
    """A volume whose dask array records every slice read (chunks of one slice)."""

    def __init__(self, data, cl=CL):
        self.reads: list[int] = []
        lock = threading.Lock()

        def record(block, block_info=None):
            with lock:
                self.reads.append(block_info[0]["array-location"][0][0])
            return block

        arr = data.rechunk((1,) + data.shape[1:])
        self.volume = Volume(levels=[arr.map_blocks(record, dtype=arr.dtype, meta=np.empty((0, 0, 0), arr.dtype))],
                             contrast_limits=cl)


# --- which slices, which channels -----------------------------------------------------


def test_every_slice(vol):
    assert EverySlice().slices(vol) == list(range(N))
    assert EverySlice(stride=3).slices(vol) == [0, 3, 6, 9, 12, 15, 18]
    assert EverySlice(3).channels(7, N) == (7, 7, 7)


def test_tuples_channels_clamp_at_the_ends(vol):
    assert Tuples().slices(vol) == list(range(N))
    assert Tuples(d=2).channels(10, N) == (8, 10, 12)
    assert Tuples(d=2).channels(0, N) == (0, 0, 2)
    assert Tuples(d=2).channels(1, N) == (0, 1, 3)
    assert Tuples(d=2).channels(19, N) == (17, 19, 19)
    assert Tuples(d=0).channels(5, N) == (5, 5, 5)
    assert Tuples(d=50).channels(5, N) == (0, 5, 19)


def test_random_tuples_reproducible_sorted_within_window():
    mode = RandomTuples(window=3, seed=7)
    picks = [mode.channels(z, N) for z in range(N)]
    assert picks == [RandomTuples(window=3, seed=7).channels(z, N) for z in range(N)]
    # independent of the order of calls
    assert picks == [RandomTuples(window=3, seed=7).channels(z, N) for z in reversed(range(N))][::-1]
    for z, p in enumerate(picks):
        assert list(p) == sorted(p) and len(set(p)) == 3
        assert all(max(z - 3, 0) <= s <= min(z + 3, N - 1) for s in p)
    assert picks != [RandomTuples(window=3, seed=8).channels(z, N) for z in range(N)]
    # not always the same tuple shape: the draw really is random
    assert len({tuple(np.subtract(p, z)) for z, p in enumerate(picks)}) > 3


def test_random_tuples_small_window_repeats():
    for n in (1, 2):
        for z in range(n):
            p = RandomTuples(window=5).channels(z, n)
            assert list(p) == sorted(p) and all(0 <= s < n for s in p)
    assert RandomTuples(window=1).channels(0, 10) in {(0, 0, 1), (0, 1, 1)}


def test_modes_by_name_and_defaults():
    assert make_mode("every") == EverySlice() and make_mode("every", stride=2) == EverySlice(2)
    assert make_mode("Tuples", d=3) == Tuples(3)
    assert make_mode("random", window=2, seed=4) == RandomTuples(2, 4)
    f = make_mode("filtered", base="tuples", d=2, z_range=(1, 5), not_blank=True)
    assert f == Filtered(Tuples(2), z_range=(1, 5), not_blank=True)
    assert make_mode("filtered").base == EverySlice()
    for name, spec in MODES.items():
        mode = make_mode(name)
        assert mode.name == name and isinstance(mode, spec.cls)
        for p in spec.params:
            value = getattr(mode, p.name)
            assert (value.name if p.kind == "mode" else value) == p.default, (name, p.name)


# --- images and windowing ---------------------------------------------------------------


def test_sample_image_uses_the_volume_window(vol, raw):
    img = sample_image(vol, 10, Tuples(d=2))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    for c, z in enumerate((8, 10, 12)):
        np.testing.assert_array_equal(img[..., c], formula(raw[z]))
    grey = sample_image(vol, 3, EverySlice())
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_slices_are_not_stretched_independently():
    dim = np.linspace(10000, 20000, 64 * 64).reshape(64, 64)
    bright = np.linspace(5000, 45000, 64 * 64).reshape(64, 64)
    vol = Volume(levels=[np.stack([dim, bright, dim]).astype(np.uint16)], contrast_limits=CL)
    img = sample_image(vol, 1, Tuples(1))
    np.testing.assert_array_equal(img[..., 0], formula(dim.astype(np.uint16)))
    np.testing.assert_array_equal(img[..., 1], formula(bright.astype(np.uint16)))
    assert img[..., 0].max() == formula(np.array(20000)) == 100  # not 255: the window is the volume's
    assert img[..., 1].min() == 0 and img[..., 1].max() == 255


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int8", "int32", "uint32", "float32", "float64",
                                   "bool"])
def test_window_to_uint8_dtypes(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if dtype == "bool":
        raw, cl = rng.integers(0, 2, (17, 9)).astype(bool), (0, 1)
    elif info is not None:
        raw = rng.integers(info.min, info.max, (17, 9), endpoint=True).astype(dtype)
        span = float(info.max) - float(info.min)
        cl = (info.min + span / 3, info.max - span / 3)
    else:
        raw, cl = rng.normal(0.5, 0.6, (17, 9)).astype(dtype), (0.1, 0.9)
    out = window_to_uint8(raw, cl)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    np.testing.assert_array_equal(out, formula(raw, cl))
    assert out.min() == 0 and out.max() == 255


def test_window_to_uint8_ends_and_nan():
    np.testing.assert_array_equal(window_to_uint8(np.array([7000, 40000, 0, 65535], np.uint16), CL),
                                  [0, 255, 0, 255])
    np.testing.assert_array_equal(window_to_uint8(np.array([np.nan, np.inf, -np.inf, 0.5]), (0, 1)),
                                  [0, 255, 0, 128])
    with pytest.raises(SamplingError, match="contrast_limits"):
        window_to_uint8(np.zeros(3), (5, 5))


def test_sample_raw_contract_and_one_read_per_slice(phantom, raw):
    counter = Counter(phantom.image)
    mode = Tuples(d=1)
    batch = sample_raw(counter.volume, range(0, 10), mode)
    assert batch.shape == (10, 3, 64, 64) and batch.dtype == np.uint16
    for b, z in enumerate(range(0, 10)):
        for c, s in enumerate(mode.channels(z, N)):
            np.testing.assert_array_equal(batch[b, c], raw[s])
    assert sorted(counter.reads) == list(range(11))  # 10 tuples share 11 slices, each read once
    counter.reads.clear()
    sample_raw(counter.volume, [5, 5, 15], RandomTuples(window=2))
    assert len(counter.reads) == len(set(counter.reads)) <= 6
    assert sample_raw(counter.volume, [], mode).shape == (0, 3, 64, 64)


def test_sample_image_reads_only_its_slices(phantom):
    counter = Counter(phantom.image)
    sample_image(counter.volume, 7, Tuples(d=3))
    assert sorted(counter.reads) == [4, 7, 10]
    counter.reads.clear()
    sample_image(counter.volume, 7, EverySlice())
    assert counter.reads == [7]


# --- filters ------------------------------------------------------------------------------


def test_filter_z_range(vol):
    assert Filtered(EverySlice(), z_range=(3, 8)).slices(vol) == [3, 4, 5, 6, 7]
    assert Filtered(EverySlice(2), z_range=(3, 8)).slices(vol) == [4, 6]
    assert Filtered(z_range=(15, 100)).slices(vol) == [15, 16, 17, 18, 19]
    assert not Filtered(z_range=(3, 8)).needs_compute
    assert Filtered(Tuples(2), z_range=(3, 8)).channels(3, N) == (1, 3, 5)


@pytest.fixture
def with_blanks(raw):
    data = raw.copy()
    data[[2, 3, 11]] = 10000  # air only: flat, below the threshold
    return Volume(levels=[da.from_array(data, chunks=(4, 32, 32))], contrast_limits=CL)


def test_filter_content(with_blanks):
    # sheets (~31000, 0.73 of the window) cover ~24 % of a phantom slice
    mode = Filtered(min_content=0.1, threshold=0.5)
    assert mode.needs_compute
    assert mode.slices(with_blanks) == [z for z in range(N) if z not in (2, 3, 11)]
    assert Filtered(min_content=0.6, threshold=0.5).slices(with_blanks) == []
    # air (10000, 0.09 of the window) is above a low threshold everywhere on the blank slices only (noise)
    assert Filtered(min_content=0.95, threshold=0.05).slices(with_blanks) == [2, 3, 11]


def test_filter_content_fraction_is_exact():
    data = np.zeros((10, 10, 10), np.uint16)
    for k in range(10):
        data[k, :k] = 200  # slice k: k/10 of the pixels at 0.5 of the window (0, 400)
    vol = Volume(levels=[data], contrast_limits=(0, 400))
    assert Filtered(min_content=0.35, threshold=0.5).slices(vol) == [4, 5, 6, 7, 8, 9]
    assert Filtered(min_content=0.35, threshold=0.51).slices(vol) == []
    assert Filtered(min_content=0.0, threshold=1.0).slices(vol) == list(range(10))


def test_filter_not_blank(with_blanks):
    assert Filtered(not_blank=True).slices(with_blanks) == [z for z in range(N) if z not in (2, 3, 11)]
    noisy = np.random.default_rng(0).normal(20000, 3000, (3, 16, 16)).astype(np.uint16)
    noisy[1] = 20000
    assert Filtered(not_blank=True).slices(Volume(levels=[noisy], contrast_limits=CL)) == [0, 2]


def test_filter_mask(vol, with_blanks):
    mask3 = np.zeros((N, 64, 64), bool)
    mask3[[1, 4, 9], 10:20, 10:20] = True
    assert Filtered(mask=mask3).slices(vol) == [1, 4, 9]
    assert Filtered(mask=da.from_array(mask3, chunks=(5, 64, 64))).slices(vol) == [1, 4, 9]
    assert Filtered(EverySlice(2), mask=mask3).slices(vol) == [4]
    empty2 = np.zeros((64, 64), np.uint8)
    assert Filtered(mask=empty2).slices(vol) == []
    full2 = np.ones((64, 64), np.uint8)
    assert Filtered(mask=full2, z_range=(0, 5)).slices(vol) == [0, 1, 2, 3, 4]
    # content is measured inside the mask: a corner of air has no content, the whole slice has
    corner = np.zeros((64, 64), bool)
    corner[:4, :4] = True
    assert Filtered(mask=corner, min_content=0.1).slices(with_blanks) == []
    assert Filtered(mask=full2, min_content=0.1).slices(with_blanks) == [z for z in range(N) if z not in (2, 3, 11)]


def test_filter_annotated(vol, phantom):
    labels = phantom.sheets.compute()
    labels[[0, 5, 6, 19]] = 0
    expected = [z for z in range(N) if z not in (0, 5, 6, 19)]
    assert Filtered(annotated=labels).slices(vol) == expected
    zero = da.from_array(np.isin(np.arange(N), [0, 5, 6, 19])[:, None, None], chunks=(4, 1, 1))
    lazy = da.where(zero, 0, phantom.sheets)
    assert Filtered(annotated=lazy).slices(vol) == expected
    assert Filtered(Tuples(1), annotated=labels, z_range=(4, 9)).slices(vol) == [4, 7, 8]


def test_filter_reads_only_what_survives_and_caches(phantom):
    counter = Counter(phantom.image)
    mode = Filtered(z_range=(2, 6), min_content=0.1, not_blank=True)
    assert mode.slices(counter.volume) == [2, 3, 4, 5]
    assert sorted(counter.reads) == [2, 3, 4, 5]  # one read per slice for both content rules
    counter.reads.clear()
    labels = np.zeros((N, 64, 64), np.uint8)
    labels[[3, 5], 0, 0] = 1
    assert Filtered(z_range=(2, 6), min_content=0.1, annotated=labels).slices(counter.volume) == [3, 5]
    assert sorted(counter.reads) == [3, 5]
    counter.reads.clear()
    assert Filtered(z_range=(2, 6), min_content=0.1, not_blank=True).slices(counter.volume) == [2, 3, 4, 5]
    assert counter.reads == []  # cached for this volume and mode
    # the image itself is not read for rules on other arrays
    assert Filtered(annotated=labels).slices(counter.volume) == [3, 5] and counter.reads == []


# --- keys ------------------------------------------------------------------------------------


def test_keys():
    assert Tuples(2).key() == "tuples(d=2)" == str(Tuples(2))
    assert EverySlice().key() == "every(stride=1)"
    assert RandomTuples(5, 0).key() == "random(window=5, seed=0)"
    modes = [EverySlice(1), EverySlice(2), Tuples(1), Tuples(2), RandomTuples(5, 0), RandomTuples(6, 0),
             RandomTuples(5, 1), Filtered(), Filtered(Tuples(1)), Filtered(z_range=(0, 5)), Filtered(z_range=(0, 6)),
             Filtered(min_content=0.1), Filtered(min_content=0.2), Filtered(min_content=0.1, threshold=0.3),
             Filtered(not_blank=True), Filtered(mask=np.ones((4, 4))), Filtered(mask=np.eye(4)),
             Filtered(annotated=np.ones((2, 4, 4))), Filtered(mask=np.ones((4, 4)), mask_name="ink")]
    keys = [m.key() for m in modes]
    assert len(set(keys)) == len(keys)
    again = [EverySlice(1), EverySlice(2), Tuples(1), Tuples(2), RandomTuples(5, 0), RandomTuples(6, 0),
             RandomTuples(5, 1), Filtered(), Filtered(Tuples(1)), Filtered(z_range=(0, 5)), Filtered(z_range=[0, 6]),
             Filtered(min_content=0.1), Filtered(min_content=0.2), Filtered(min_content=0.1, threshold=0.3),
             Filtered(not_blank=1), Filtered(mask=np.ones((4, 4))), Filtered(mask=np.eye(4)),
             Filtered(annotated=np.ones((2, 4, 4), np.float64)), Filtered(mask=np.zeros((4, 4)), mask_name="ink")]
    assert [m.key() for m in again] == keys
    assert modes[:-1] == again[:-1] and len(set(modes[:-1] + again[:-1])) == len(modes) - 1
    assert "mask=name:ink" in modes[-1].key()
    lazy = da.ones((4, 4), chunks=2)
    assert Filtered(mask=lazy).key() == Filtered(mask=lazy).key() != Filtered(mask=da.zeros((4, 4))).key()


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("z", [-1, N, 100])
def test_z_outside_the_volume(vol, z):
    for call in (lambda: sample_image(vol, z, Tuples()), lambda: sample_raw(vol, [0, z], EverySlice()),
                 lambda: RandomTuples().channels(z, N)):
        with pytest.raises(SliceIndexError, match=rf"z={z}.*\[0, {N - 1}\]") as info:
            call()
        assert isinstance(info.value, IndexError) and isinstance(info.value, SamplingError)


@pytest.mark.parametrize("make, name", [
    (lambda: EverySlice(0), "stride"), (lambda: EverySlice(1.5), "stride"), (lambda: Tuples(-1), "d"),
    (lambda: RandomTuples(window=0), "window"), (lambda: RandomTuples(seed=-1), "seed"),
    (lambda: Filtered(threshold=1.5), "threshold"), (lambda: Filtered(threshold=-0.1), "threshold"),
    (lambda: Filtered(min_content=2), "min_content"), (lambda: Filtered(z_range=(5, 2)), "z_range"),
    (lambda: Filtered(z_range=(-1, 2)), "z_range"), (lambda: Filtered(mask=np.ones(5)), "mask"),
    (lambda: Filtered(annotated=np.ones((5, 5))), "annotated"), (lambda: Filtered(base=3), "base"),
    (lambda: make_mode("tuples", stride=2), "stride"), (lambda: make_mode("filtered", window=2), "window"),
])
def test_bad_parameters(make, name):
    with pytest.raises(SamplingError, match=name):
        make()


def test_unknown_mode_lists_the_known_ones():
    with pytest.raises(SamplingError, match="every, tuples, random, filtered"):
        make_mode("sometimes")


def test_mask_of_another_shape(vol):
    with pytest.raises(SamplingError, match=r"mask has shape \(32, 32\)"):
        Filtered(mask=np.ones((32, 32))).slices(vol)
    with pytest.raises(SamplingError, match="mask"):
        Filtered(mask=np.ones((N - 1, 64, 64))).slices(vol)
    with pytest.raises(SamplingError, match="annotated"):
        Filtered(annotated=np.ones((N, 64, 32))).slices(vol)


def test_mode_values_round_trip():
    from napari_scroll_sam.sampling import mode_values

    mask = np.zeros((4, 8, 8), bool)
    modes = [EverySlice(stride=3), Tuples(d=2), RandomTuples(window=4, seed=7),
             Filtered(base=Tuples(d=1), z_range=(1, 3), min_content=0.2, mask=mask, mask_name="ink", not_blank=True)]
    for mode in modes:
        values = mode_values(mode)
        assert make_mode(mode.name, **values) == mode
    values = mode_values(modes[-1])
    assert values["base"] == Tuples(d=1) and values["mask"] is mask and values["mask_name"] == "ink"
    assert values["annotated"] is None and values["annotated_name"] is None
    assert mode_values("every") == {"stride": 1}
