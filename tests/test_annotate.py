"""The scratch object / commit / clear / undo bookkeeping (annotate.py), and Segment volume
through the core propagate, on plain arrays."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam.annotate import AnnotateError, ObjectSession
from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.propagation import Seed, propagate
from napari_scroll_sam.sam.embeddings import SliceEmbedder
from tests.helpers import squares_arrays, tiny_model


def square(shape, y, x, r=3):
    m = np.zeros(shape, bool)
    m[y - r:y + r, x - r:x + r] = True
    return m


def test_segment_commit_clear_undo():
    committed = np.zeros((4, 16, 16), np.uint32)
    committed[1, 0:4, 0:4] = 9  # another object, kept
    s = ObjectSession(committed, np.zeros_like(committed), max_undo=3)
    assert s.set_slice(1, square((16, 16), 3, 3), 2) == 36
    assert set(np.unique(s.scratch[1])) == {0, 2} and s.scratch_slices() == [1]
    s.set_slice(2, square((16, 16), 8, 8), 2)
    res = s.commit(2, prompts={"points": [[1, 3, 3]]})
    assert res.slices == [1, 2] and res.kept_for_others == 16 and res.voxels == 20 + 36
    assert (committed[1, 0:4, 0:4] == 9).all() and (committed[2] == 2).sum() == 36
    assert s.scratch.sum() == 0 and s.prompts == {2: {"points": [[1, 3, 3]]}} and s.next_id(1) == 3
    # undo the commit: committed back, the scratch object back, the prompts back
    assert s.undo().what == "commit object 2"
    assert (committed == 2).sum() == 0 and (committed == 9).sum() == 16
    assert s.scratch_slices() == [1, 2] and s.prompts == {}
    s.clear()
    assert s.scratch.sum() == 0
    assert s.undo().what == "clear" and s.scratch_slices() == [1, 2]
    assert s.undo().what == "segment slice 2" and s.scratch_slices() == [1]
    assert s.undo().what == "segment slice 1" and s.scratch.sum() == 0 and s.undo() is None
    # bounded: only the last max_undo (3) steps are kept
    for z in range(4):
        s.set_slice(z, square((16, 16), 8, 8), 1)
    assert [s.undo().what for _ in range(3)] == ["segment slice 3", "segment slice 2", "segment slice 1"]
    assert s.undo() is None and not s.can_undo and s.scratch_slices() == [0]
    s.clear()
    with pytest.raises(AnnotateError, match="nothing to commit"):
        s.commit(3)
    with pytest.raises(AnnotateError, match="0 is background"):
        s.set_slice(0, square((16, 16), 3, 3), 0)


def test_segment_volume_is_the_core_walk_and_undoes_as_one_step():
    image, truth = squares_arrays(6, 64)
    vol = Volume(levels=[image], contrast_limits=(0, 255))
    model = tiny_model(img_size=64)
    emb = SliceEmbedder(model, vol, cache=False)
    s = ObjectSession(np.zeros(image.shape, np.uint32), np.zeros(image.shape, np.uint32))
    with pytest.raises(AnnotateError, match="nothing to propagate"):
        s.propagate(emb, 1)
    s.set_slice(2, truth[2] == 2, 4)
    reports = list(s.propagate(emb, 4))
    # the same as calling propagate on a copy with the slice as an anchor (default options)
    want = np.zeros(image.shape, np.uint32)
    want[2] = np.where(truth[2] == 2, 4, 0)
    expect = list(propagate(emb, [Seed(4, 2, mask=truth[2] == 2)], want, replace=True))
    assert [(r.z, r.area) for r in reports] == [(r.z, r.area) for r in expect]
    np.testing.assert_array_equal(s.scratch, want)
    written = sorted({r.z for r in reports if r.stopped is None and r.area})
    assert s.undo().what == "segment volume (object 4)"
    assert [z for z in range(6) if s.scratch[z].any()] == [2]  # the anchor stays, the walk is undone
    assert written and all(not s.scratch[z].any() for z in written if z != 2)
