"""Segment slice (S): the current slice's prompts → ``segment_slice`` (off the GUI thread)
→ the current object's slice (``ObjectSession.set_slice``). Other mask (O): the same prompts
again, the next of SAM's four masks (``predictor.OUTPUTS``): one click is ambiguous, and on a
volume like the brain MRI the single mask a click gives is the tumour with its surroundings
(3-30x its area) while another of the four is the tumour."""

from __future__ import annotations

import numpy as np

from ..layers import layer_kind
from ..sam.layer_prompts import prompts_on_slice
from ..sam.predictor import OUTPUTS, PromptError
from ._prompt_layers import ROLE
from ._workers import Job


def _same_prompts(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


class SliceJob:
    def __init__(self, segment):
        self.seg = segment
        self.job: Job | None = None
        self.ok = False
        self._emb, self._emb_key = None, None
        self.last: dict | None = None  # what the last pasted mask came from (its output among them)

    def start(self, other: bool = False) -> None:
        """Segment the current slice; ``other``: the next of SAM's four masks for the same
        prompts as the last one pasted (the first alternative when the prompts changed)."""
        seg = self.seg
        if self.job is not None and self.job.running:
            return
        seg._clear_error()
        p = seg._try(self._prepare)
        if p is None:
            seg.status_label.setText("")  # an earlier job's words no longer hold; the error says why
            seg.segment_finished.emit(False)
            return
        p["output"] = None
        if other:
            last = self.last
            same = last is not None and all(last[k] == p[k] for k in ("z", "image", "object_id")) and _same_prompts(
                last["prompts"], p["prompts"])
            p["output"] = ((last["output"] or 0) + 1) % len(OUTPUTS) if same else 1
        for b in (seg.segment_button, seg.objects_panel.other_button):
            b.setEnabled(False)
        seg.status_label.setText(f"segmenting slice {p['z']}…")
        self.ok = False
        self.job = Job(self._gen(p), on_yield=seg._on_job_item, on_return=self._paste,
                       on_error=lambda e: (seg.status_label.setText(""), seg._show_error(e)),
                       on_finish=self._on_finished)
        self.job.start()

    def _prepare(self) -> dict:
        seg = self.seg
        layer, vol = seg.layer, seg.volume()
        if layer is None or vol is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        z = seg.current_z()
        if z is None:
            raise ValueError("the current slice is outside the image: move the z slider onto it")
        seg.add_prompt_layers()
        pts, pos, rects = seg._prompts_in_image(seg._z_world())
        try:
            prompts = prompts_on_slice(pts, pos, rects, z, vol.shape)
        except PromptError as exc:
            raise PromptError(f"{exc}{self._where_prompts_go()}") from None
        return {"z": z, "prompts": prompts, "volume": vol,
                "mode": seg.mode_selector.mode(), "key": seg._wanted_model_key(),
                "object_id": seg.object_id.value(), "image": layer.name}

    def _where_prompts_go(self) -> str:
        """Which layers hold the prompts, and the points layers that do not (a point put there
        is not a prompt)."""
        seg = self.seg
        mine = [ly for ly in (seg.points_layer(), seg.boxes_layer()) if ly is not None]
        others = [ly.name for ly in seg.viewer.layers if ly not in mine and layer_kind(ly) in ("points", "shapes")
                  and len(ly.data) and ROLE not in ly.metadata]  # (another image's prompt layers aside)
        text = f" (prompts are read from {' and '.join(repr(ly.name) for ly in mine)}"
        return text + (f"; {', '.join(map(repr, others))} {'is' if len(others) == 1 else 'are'} not read)"
                       if others else ")")

    def _gen(self, p):
        from ..sam.segment import segment_slice

        model = yield from self.seg._model_job_part(p["key"])
        emb = self.embedder(model, p["volume"], p["mode"])
        if not emb.is_cached(p["z"]):
            yield f"encoding slice {p['z']}…"
        pred = segment_slice(emb, p["z"], **p["prompts"], output=p["output"])
        return p, self._turn_of_prompt(p, pred)

    @staticmethod
    def _turn_of_prompt(p, pred):
        """One object's click or box (not Other mask) on a scroll's wrap: the turn it lies on,
        read from the image (``sheet.turn_of_prompt``; the model's mask runs on along the next
        turn); several boxes, or a sheet that does not wind, keep SAM's mask."""
        from ..propagation.prior import window
        from ..propagation.sheet import turn_of_prompt

        pr, vol, z = p["prompts"], p["volume"], p["z"]
        box = pr.get("box")
        if p["output"] is not None or len(pred.masks) != 1 or (box is not None and np.size(box) != 4):
            return pred
        turn = turn_of_prompt(pred.masks[0], lambda b: window(vol.read(z, (b[0], b[2]), (b[1], b[3])),
                                                              vol.contrast_limits),
                              pr.get("points"), pr.get("labels"), box)
        if turn is not None:
            pred.masks, p["turn"] = turn[None], True
        return pred

    def _paste(self, result):
        seg = self.seg
        p, pred = result
        if seg.layer is None or seg.layer.name != p["image"]:
            seg._show_error(f"the image {p['image']!r} is no longer the chosen one: nothing was pasted")
            return
        mask = np.asarray(pred.masks).any(axis=0)
        n = seg._try(lambda: seg.objects_panel.session().set_slice(p["z"], mask, p["object_id"]))
        if n is None:
            return
        seg.scratch_layer().refresh()  # set_slice wrote the current object only
        ious = ", ".join(f"{v:.2f}" for v in np.asarray(pred.iou, float))
        extra = f" (union of {len(pred.masks)} box prompts)" if len(pred.masks) > 1 else (
            " (the turn of the scroll it lies on, from the image)" if p.get("turn") else "")
        which = p["output"] or 0
        seg.status_label.setText(f"slice {p['z']}, object {p['object_id']}: {n} px{extra}; mask {which + 1} of "
                                 f"{len(OUTPUTS)} ({OUTPUTS[which]}), predicted IoU {ious} — Commit (C) to keep "
                                 f"it, Other mask (O) for the next")
        self.last = {k: p[k] for k in ("z", "image", "object_id", "prompts", "output")}
        self.ok = True

    def _on_finished(self, cancelled: bool):
        for b in (self.seg.segment_button, self.seg.objects_panel.other_button):
            b.setEnabled(self.seg.layer is not None)
        self.seg.segment_finished.emit(bool(self.ok and not cancelled))

    def embedder(self, model, volume, mode):
        """Segment's ``SliceEmbedder`` for this model, volume and mode (made when they change)."""
        from ..sam.embeddings import SliceEmbedder

        key = (model.model_id, str(model.device), volume.identity(), tuple(volume.contrast_limits), mode.key())
        if self._emb is None or self._emb_key != key:
            self._emb, self._emb_key = SliceEmbedder(model, volume, mode), key
        return self._emb
