"""Showing a job's writes without stalling napari: refresh a labels layer only when a slice it
shows was written, at most every ``REFRESH_EVERY_S``, and in 3D only at the end.

A 2D refresh of a labels layer costs the GUI thread 30-60 ms here (slicing, colour mapping,
thumbnail, texture upload, the layer list repainted); a 3D refresh uploads the whole volume
(seconds for 64 x 256 x 256). A walk writes slices away from the one shown most of the time.
"""

from __future__ import annotations

import math
import time

from ..layers import data_z
from ._workers import REFRESH_EVERY_S


class SliceRefresher:
    """``wrote(z)`` after a job wrote slice ``z`` of ``layers()`` (a callable: the layers to
    refresh, None for a missing one); ``flush()`` at the end refreshes whatever was written."""

    def __init__(self, viewer, layers, every_s: float = REFRESH_EVERY_S):
        self.viewer, self.layers, self.every_s = viewer, layers, every_s
        self._dirty: set[int] = set()  # written since the last refresh (a slice napari re-slices
        # when the user moves to it is read afresh: only the shown one needs a refresh)
        self._written = False
        self._last = -math.inf  # the first write refreshes (monotonic time is small after a boot)

    def reset(self) -> None:
        self._dirty.clear()
        self._written, self._last = False, -math.inf

    def _shown(self, layer):
        """The data slice ``layer`` shows, "all" when the view cuts across slices (3D, or z
        displayed), None when it cannot be told."""
        dims = self.viewer.dims
        if dims.ndisplay == 3 or 0 in dims.displayed:
            return "all"
        try:
            return data_z(layer, dims.point)
        except Exception:  # noqa: BLE001 - a layer of other dimensions: refresh it
            return None

    def wrote(self, z: int) -> bool:
        """Note slice ``z`` written; refresh now if a shown slice is dirty and the last refresh is
        old enough (never in 3D: a whole-volume upload). Returns whether it refreshed."""
        self._dirty.add(int(z))
        self._written = True
        now = time.monotonic()
        if now - self._last < self.every_s or self.viewer.dims.ndisplay == 3:
            return False
        todo = [ly for ly in self.layers() if ly is not None and ly.visible]
        todo = [ly for ly in todo if (s := self._shown(ly)) in self._dirty or s in ("all", None)]
        if not todo:
            return False
        self._last = now
        self._dirty.clear()
        for ly in todo:
            ly.refresh(thumbnail=False, highlight=False, extent=False)
        return True

    def flush(self) -> None:
        """Refresh every layer if anything was written since the last ``flush``."""
        if self._written:
            for ly in self.layers():
                if ly is not None:
                    ly.refresh()
        self.reset()


__all__ = ["SliceRefresher"]
