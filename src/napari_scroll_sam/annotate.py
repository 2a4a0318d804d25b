"""Objects the micro-sam way: a scratch object, committed objects, prompts per object, undo.

Plain arrays (numpy or zarr; a Labels layer's data), no Qt, no napari. The Segment
widget is a face over this; a script uses it the same way::

    session = ObjectSession(committed=labels, scratch=np.zeros_like(labels))
    session.set_slice(z, mask, object_id)       # "Segment slice": the scratch object's slice z
    for r in session.propagate(embedder, object_id, prompt_seed): ...   # "Segment volume"
    session.commit(object_id)                   # scratch → committed (others' voxels kept)
    session.clear()                             # drop the scratch object
    session.undo()                              # the last segment / propagate / commit / clear

The scratch holds one object at a time (its voxels hold the current id, so it shows in
the colour it will have). Every step saves the slices it changes, before changing them,
in a bounded undo stack (``max_undo`` steps): undo puts them back, whatever the arrays
are. Prompts are kept per object (``prompts[id]``: whatever the caller stores, e.g. a
Points layer's data and features) so that going back to an object brings its prompts.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from .errors import ScrollSamError

MAX_UNDO = 20


class AnnotateError(ScrollSamError, ValueError):
    """A step cannot be done (names the object / slice and what is wrong)."""


@dataclasses.dataclass
class Step:
    """One undoable step: what it was, and the slices it changed as they were before."""

    what: str
    saved: list = dataclasses.field(default_factory=list)  # [(array, z, old slice)]
    prompts: dict | None = None  # the per-object prompts before the step, when it changed them
    extra: dict = dataclasses.field(default_factory=dict)  # the caller's notes (e.g. which object was current)
    _seen: set = dataclasses.field(default_factory=set, repr=False)

    def save(self, array, z: int) -> None:
        """Keep slice ``z`` of ``array`` as it is now (once per step: the first state counts)."""
        key = (id(array), int(z))
        if key not in self._seen:
            self._seen.add(key)
            self.saved.append((array, int(z), np.array(array[int(z)])))

    @property
    def slices(self) -> list[int]:
        return sorted({z for _, z, _ in self.saved})


class RecordingArray:
    """``array`` seen through a ``Step``: a write to a slice saves it first (for undo).
    Reads, shape and dtype are the array's; any ``labels[z] = …`` / ``labels[z, ...] = …``."""

    def __init__(self, array, step: Step):
        self.array, self.step = array, step
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), len(array.shape)
        self.chunks = getattr(array, "chunks", None)

    def __getitem__(self, key):
        return self.array[key]

    def __setitem__(self, key, value):
        z = key[0] if isinstance(key, tuple) else key
        if isinstance(z, (int, np.integer)):
            self.step.save(self.array, int(z))
        else:  # a range of slices: save each
            for zz in range(*slice(z).indices(self.shape[0])) if isinstance(z, slice) else np.atleast_1d(z):
                self.step.save(self.array, int(zz))
        self.array[key] = value

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype=dtype)


@dataclasses.dataclass
class CommitResult:
    object_id: int
    slices: list
    voxels: int
    kept_for_others: int


class ObjectSession:
    """See the module docstring. ``committed`` and ``scratch`` are (z, y, x) label arrays of
    one shape."""

    def __init__(self, committed, scratch, max_undo: int = MAX_UNDO):
        if tuple(committed.shape) != tuple(scratch.shape):
            raise AnnotateError(f"the scratch object {tuple(scratch.shape)} and the committed labels "
                                f"{tuple(committed.shape)} differ in shape")
        self.committed, self.scratch = committed, scratch
        self.prompts: dict[int, object] = {}
        self._undo: deque[Step] = deque(maxlen=max(1, int(max_undo)))
        self._scratch_z: set[int] = set()  # slices of the scratch that may hold voxels
        self.max_id = 0

    # --- undo -----------------------------------------------------------------------------------
    def step(self, what: str, prompts: bool = False) -> Step:
        """A new undoable step (pushed now; empty steps are dropped at the next push)."""
        if self._undo and not self._undo[-1].saved and self._undo[-1].prompts is None:
            self._undo.pop()
        s = Step(what, prompts={k: v for k, v in self.prompts.items()} if prompts else None)
        self._undo.append(s)
        return s

    def recording(self, what: str) -> RecordingArray:
        """The committed labels seen through a new undoable step: whatever writes through it
        (e.g. a Propagate run over all objects) is undone as one step."""
        return RecordingArray(self.committed, self.step(what))

    @property
    def can_undo(self) -> bool:
        return any(s.saved or s.prompts is not None for s in self._undo)

    def undo(self) -> Step | None:
        """Put back the slices (and prompts) of the last step; returns it (None: nothing to undo)."""
        while self._undo:
            s = self._undo.pop()
            if not s.saved and s.prompts is None:
                continue
            for array, z, old in reversed(s.saved):
                array[z] = old
                if array is self.scratch:
                    self._scratch_z.add(z)
            if s.prompts is not None:
                self.prompts = s.prompts
            return s
        return None

    # --- the scratch object ------------------------------------------------------------------------
    def scratch_slices(self) -> list[int]:
        """Slices where the scratch object has voxels."""
        if isinstance(self.scratch, np.ndarray):  # painted with napari's brush too: look at all
            found = np.flatnonzero(self.scratch.reshape(self.scratch.shape[0], -1).any(axis=1)).tolist()
        else:  # zarr: the slices this session wrote
            found = sorted(z for z in self._scratch_z if np.asarray(self.scratch[z]).any())
        self._scratch_z = set(found)
        return found

    def set_slice(self, z: int, mask, object_id: int) -> int:
        """"Segment slice": slice ``z`` of the scratch object becomes ``mask`` (as ``object_id``);
        returns its voxel count."""
        object_id = self._check_id(object_id)
        mask = np.asarray(mask, bool)
        if mask.shape != tuple(self.scratch.shape[1:]):
            raise AnnotateError(f"a mask of shape {mask.shape} does not fit slice {z} "
                                f"{tuple(self.scratch.shape[1:])}")
        s = self.step(f"segment slice {z}")
        s.save(self.scratch, z)
        self.scratch[z] = np.where(mask, object_id, 0).astype(self.scratch.dtype)
        self._scratch_z.add(int(z))
        return int(mask.sum())

    def propagate(self, embedder, object_id: int, prompt_seed=None, **options):
        """"Segment volume": carry the scratch object through the volume with
        ``propagation.propagate`` (its default options unless given): its slices are the
        anchors, else ``prompt_seed`` (a ``Seed`` from the prompts). The input is checked
        now; returns the generator of ``SliceReport``s, written into the scratch and
        undoable as one step."""
        from .propagation import Seed, propagate

        object_id = self._check_id(object_id)
        seeds = [Seed(object_id, z, mask=np.asarray(self.scratch[z]) != 0) for z in self.scratch_slices()]
        if not seeds:
            if prompt_seed is None:
                raise AnnotateError(f"object {object_id}: nothing to propagate: segment a slice first, or put a "
                                    f"point or box on this slice")
            prompt_seed.object_id = object_id
            seeds = [prompt_seed]
        s = self.step(f"segment volume (object {object_id})")
        gen = propagate(embedder, seeds, RecordingArray(self.scratch, s), replace=True, **options)

        def run():
            try:
                for r in gen:
                    self._scratch_z.add(int(r.z))
                    yield r
            finally:
                gen.close()

        return run()

    def clear(self, object_id: int | None = None) -> list[int]:
        """Drop the scratch object, and the prompts kept for ``object_id`` (undoable); returns
        the slices it had."""
        zs = self.scratch_slices()
        s = self.step("clear", prompts=object_id is not None)
        if object_id is not None:
            self.prompts.pop(int(object_id), None)
        for z in zs:
            s.save(self.scratch, z)
            self.scratch[z] = np.zeros(self.scratch.shape[1:], self.scratch.dtype)
        self._scratch_z.clear()
        return zs

    # --- committed objects ---------------------------------------------------------------------------
    def commit(self, object_id: int, overwrite: bool = False, prompts=None) -> CommitResult:
        """The scratch object → ``object_id`` in the committed labels, slice by slice (its old
        voxels on those slices replaced; other objects' voxels kept unless ``overwrite``);
        the scratch is emptied and ``prompts`` kept as this object's. One undoable step."""
        from .sam.layer_prompts import paste_mask

        object_id = self._check_id(object_id)
        zs = self.scratch_slices()
        if not zs:
            raise AnnotateError(f"object {object_id}: nothing to commit: the scratch object is empty "
                                f"(Segment slice or Segment volume first)")
        s = self.step(f"commit object {object_id}", prompts=True)
        written = kept = 0
        for z in zs:
            mask = np.asarray(self.scratch[z]) != 0
            s.save(self.committed, z)
            n = paste_mask(self.committed, z, mask, object_id, overwrite=overwrite)
            written, kept = written + n, kept + int(mask.sum()) - n
            s.save(self.scratch, z)
            self.scratch[z] = np.zeros(self.scratch.shape[1:], self.scratch.dtype)
        self._scratch_z.clear()
        if prompts is not None:
            self.prompts[object_id] = prompts
        self.max_id = max(self.max_id, object_id)
        return CommitResult(object_id, zs, written, kept)

    def next_id(self, current: int = 0) -> int:
        """An id past every id committed in this session and past ``current``."""
        return max(self.max_id, int(current)) + 1

    @staticmethod
    def _check_id(object_id) -> int:
        object_id = int(object_id)
        if object_id < 1:
            raise AnnotateError(f"object id must be 1 or more (0 is background), got {object_id}")
        return object_id


__all__ = ["AnnotateError", "CommitResult", "ObjectSession", "RecordingArray", "Step", "MAX_UNDO"]
