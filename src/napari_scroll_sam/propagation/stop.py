"""When a walk stops: ``StopRule`` and its check on one slice."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ScrollSamError


class PropagationError(ScrollSamError, ValueError):
    """Bad input for propagation; raised before anything is written."""


CONTRAST_MIN = 0.5  # an anchor's contrast (mean difference / spread) under this is not judged
CONTRAST_RUN = 2  # slices in a row under min_contrast_share that stop a walk
CONTRAST_RING = 5  # px: the ring around a mask its contrast is taken against
SPREAD_MIN = 0.02  # of the window: the spread a contrast is divided by is at least this (noise-free images)


def mask_contrast(mask, crop) -> float | None:
    """The mask's contrast with a ``CONTRAST_RING``-px ring around it on a slice: (mean grey
    inside - mean grey of the ring) / their pooled standard deviation. ``crop(box)`` gives the
    windowed pixels of a (y0, x0, y1, x1) box of the slice (grey in [0, 1]; the spread is at
    least ``SPREAD_MIN``); None for an empty mask or no ring."""
    from .flow import edt
    from .prior import grow_box, mask_box

    mask = np.asarray(mask, bool)
    b = mask_box(mask)
    if b is None:
        return None
    y0, x0, y1, x1 = grow_box(b, CONTRAST_RING + 1, mask.shape)
    m = mask[y0:y1, x0:x1]
    ring = (edt(~m) <= CONTRAST_RING) & ~m
    if not ring.any():
        return None
    grey = np.asarray(crop((y0, x0, y1, x1)), np.float32)
    a, r = grey[m], grey[ring]
    return float((a.mean() - r.mean()) / max(float(np.sqrt(0.5 * (a.var() + r.var()))), SPREAD_MIN))


@dataclasses.dataclass(frozen=True)
class StopRule:
    """When a walk stops. The slice that fires a rule is not written. Every rule is
    disabled by ``None`` (``0`` also disables the two thresholds).

    min_pred_iou : SAM's predicted IoU below this. Off by default: a model's own score
        is not calibrated (a fine-tuned or small model scores good masks 0.3-0.5); the
        walk judges masks against the motion prior instead.
    min_slice_iou : IoU of the accepted mask with the previous slice's below this (a jump);
        with a motion prior, with the previous mask carried to the slice, so that motion is
        not taken for a jump (the ISBI EM stack's small cells moving their own width stopped
        4 of 8 walks early: P1 with default rules reached 101 of 117 slices, now 116)
    max_area_change : area grows or shrinks by more than this factor
    max_empty : the model answers an empty mask on this many slices in a row. Slices of
        an empty run are filled from the motion prior when the object comes back (or the
        walk ends) before the rule fires, and left unwritten when it fires.
    max_overruled : the model's answer disagrees with the motion prior (the prior is kept)
        on this many slices in a row. Off by default: a weak model disagrees everywhere,
        and the prior then carries the object; set it to stop where the model no longer
        sees the object (a walk without z limits otherwise runs to the volume's end).
    stop_slices : slices the user marked: a walk stops before them
    min_area_share : the mask shrinks below this share of its anchor's area (the object is
        ending: past an object's last slice a carried mask keeps shrinking)
    min_contrast_share : the mask's contrast with a ring around it (``mask_contrast``: the
        difference of their mean grey over their pooled spread, signed as on the anchor)
        below this share of the anchor's, on two slices in a row (the second is not
        written): the object has ended and the motion prior carries its mask on over
        whatever lies beyond. Past the end of the ISBI cells and the MRI tumour a carried
        mask keeps 0.0-0.4 of its anchor's contrast; inside the objects 0.56-1.2 (5th
        percentile; the chloroplasts and scrolls 0.72-1.0). Not judged where the anchor's
        own contrast is under ``CONTRAST_MIN`` (nothing to tell the object by).
    """

    min_pred_iou: float | None = None
    min_slice_iou: float | None = 0.1
    max_area_change: float | None = 4.0
    max_empty: int | None = 3
    stop_slices: frozenset = frozenset()
    max_overruled: int | None = None
    min_area_share: float | None = None
    min_contrast_share: float | None = 0.3

    def __post_init__(self):
        for name in ("min_pred_iou", "min_slice_iou", "min_area_share", "min_contrast_share"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise PropagationError(f"stop rule {name}={v} must be None or within [0, 1]")
        a = self.max_area_change
        if a is not None and not (isinstance(a, (int, float)) and math.isfinite(a) and a >= 1):
            raise PropagationError(f"stop rule max_area_change={a} must be None or a factor >= 1")
        for name in ("max_empty", "max_overruled"):
            e = getattr(self, name)
            if e is not None and (isinstance(e, bool) or not isinstance(e, int) or e < 1):
                raise PropagationError(f"stop rule {name}={e} must be None or an integer >= 1")
        object.__setattr__(self, "stop_slices", frozenset(int(z) for z in self.stop_slices))

    @classmethod
    def off(cls) -> "StopRule":
        """No rule: every walk runs to its limits."""
        return cls(None, None, None, None, max_overruled=None, min_area_share=None, min_contrast_share=None)

    def empty_fires(self, run: int) -> str | None:
        if self.max_empty is not None and run >= self.max_empty:
            return f"empty mask on {run} slices in a row" if run > 1 else "empty mask"
        return None

    def overruled_fires(self, run: int) -> str | None:
        if self.max_overruled is not None and run >= self.max_overruled:
            return f"the model disagreed with the motion prior on {run} slices in a row"
        return None

    def low_contrast(self, contrast: float | None, anchor: float | None) -> bool:
        """Whether a mask of ``contrast`` is under ``min_contrast_share`` of its anchor's."""
        if not self.min_contrast_share or contrast is None or anchor is None:
            return False
        return contrast / anchor < self.min_contrast_share

    def contrast_fires(self, run: int) -> str | None:
        if self.min_contrast_share and run >= CONTRAST_RUN:
            return (f"contrast with its surroundings under {self.min_contrast_share:g} of the anchor's "
                    f"on {run} slices in a row (the object has ended)")
        return None

    def check(self, area: int, prev_area: int, pred_iou: float, slice_iou: float,
              anchor_area: int | None = None) -> str | None:
        """The reason a non-empty mask stops the walk, or None."""
        if self.min_area_share and anchor_area and area < self.min_area_share * anchor_area:
            return f"area {area} px < {self.min_area_share:g} of the anchor's {anchor_area} px"
        if self.min_pred_iou and pred_iou < self.min_pred_iou:
            return f"predicted IoU {pred_iou:.2f} < {self.min_pred_iou}"
        if self.min_slice_iou and slice_iou < self.min_slice_iou:
            return f"IoU with the previous slice {slice_iou:.2f} < {self.min_slice_iou}"
        if self.max_area_change and max(area / max(prev_area, 1), prev_area / max(area, 1)) > self.max_area_change:
            return f"area changed {prev_area} -> {area} (more than x{self.max_area_change:g})"
        return None
