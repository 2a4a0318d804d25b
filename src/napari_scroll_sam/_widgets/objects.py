"""The Segment widget's "Objects" section, micro-sam's habit: a scratch object (its own
Labels layer, ``"<image> current object"``) that Segment slice / Segment volume write,
Commit moves into the masks layer (the committed objects), Clear drops; Next object starts
another; prompts are kept per object; Undo reverts the last segment / volume / commit /
clear. The bookkeeping is ``annotate.ObjectSession`` (core); this is its face.

Keys (napari keybindings, on the viewer and on the image and prompt layers):
S segment slice, Shift+S segment volume, C commit, Shift+C clear, N next object,
Ctrl+Z undo (on a Labels layer Ctrl+Z stays napari's paint undo).
"""

from __future__ import annotations

import time

from qtpy.QtWidgets import QGridLayout, QPushButton, QWidget

from ..annotate import ObjectSession
from . import _prompt_layers as PL
from ._layers import MAX_OBJECT_ID
from ._refresh import SliceRefresher
from ._workers import REFRESH_EVERY_S, Job

KEYS = {"segment": "S", "other": "O", "volume": "Shift-S", "commit": "C", "clear": "Shift-C", "next": "N",
        "undo": "Control-Z"}


class ObjectsPanel(QWidget):
    def __init__(self, segment):
        super().__init__()
        self.seg = segment
        self.viewer = segment.viewer
        self.job: Job | None = None
        self._sessions: dict = {}
        self._bound: list = []
        self._last_status = 0.0
        self._refresher = SliceRefresher(self.viewer, lambda: [self.seg.scratch_layer()])
        self.reports: list = []
        self._current_id, self._switching, self._keeping = 1, False, True

        def button(text, key, tip):
            return QPushButton(text, toolTip=f"{tip} [{KEYS[key].replace('-', '+')}]")

        self.segment_button = button("Segment slice", "segment", "SAM on the current slice from its prompts, into "
                                                                 "the current object")
        self.other_button = button("Other mask", "other", "the same prompts, the next of SAM's four masks (a "
                                                          "click is ambiguous: the part, the whole, the "
                                                          "surroundings)")
        self.volume_button = button("Segment volume", "volume", "carry the current object through the volume "
                                                                "(the Propagate section's settings); again while it runs: cancel")
        self.commit_button = button("Commit", "commit", "move the current object into the masks layer (other "
                                                        "objects' voxels kept unless 'overwrite') and go to the "
                                                        "next object")
        self.clear_button = button("Clear", "clear", "drop the current object and its prompts")
        self.next_button = button("Next object", "next", "start a new object (the current one is committed first); "
                                                         "each object keeps its prompts")
        self.undo_button = button("Undo", "undo", "undo the last segment / volume / commit / clear")
        self.review_button = QPushButton("Review 3D", toolTip="the committed objects in 3D over the image, in "
                                                              "bright colours (ground-truth labels hidden); back to "
                                                              "2D (the dims button): the layers as they were")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for i, b in enumerate((self.segment_button, self.other_button, self.volume_button, self.commit_button,
                               self.clear_button, self.next_button, self.undo_button, self.review_button)):
            grid.addWidget(b, i // 2, i % 2)
        self.segment_button.clicked.connect(lambda: self.seg.segment())
        self.other_button.clicked.connect(lambda: self.seg.slice_job.start(other=True))
        self.volume_button.clicked.connect(lambda: self.segment_volume())
        self.commit_button.clicked.connect(lambda: self.seg._try(self.commit))
        self.clear_button.clicked.connect(lambda: self.seg._try(self.clear))
        self.next_button.clicked.connect(lambda: self.seg._try(self.next_object))
        self.undo_button.clicked.connect(lambda: self.seg._try(self.undo))
        self.review_button.clicked.connect(lambda: self.seg._try(self.review))
        self.bind_keys(self.viewer)

    # --- keys ---------------------------------------------------------------------------------------
    def bind_keys(self, provider) -> None:
        """Bind S, O, Shift+S, C, Shift+C, N, Ctrl+Z on a viewer or layer (its own keymap wins over
        napari's class keymaps, e.g. S = select mode on Points)."""
        if any(p is provider for p in self._bound):
            return
        actions = {"segment": lambda: self.seg.segment(), "other": lambda: self.seg.slice_job.start(other=True),
                   "volume": lambda: self.segment_volume(),
                   "commit": lambda: self.seg._try(self.commit), "clear": lambda: self.seg._try(self.clear),
                   "next": lambda: self.seg._try(self.next_object), "undo": lambda: self.seg._try(self.undo)}
        for name, key in KEYS.items():
            provider.bind_key(key, _callback(actions[name]), overwrite=True)
        self._bound.append(provider)

    def unbind_keys(self) -> None:
        for provider in self._bound:
            for key in KEYS.values():
                try:
                    provider.bind_key(key, None)
                except Exception:  # noqa: BLE001 - a removed layer
                    pass
        self._bound = []

    # --- the session of the current image -----------------------------------------------------------
    def layers(self, create: bool = True):
        """(scratch, masks) layers of the current image (made when missing and ``create``)."""
        seg = self.seg
        image, vol = seg.layer, seg.volume()
        if image is None:
            raise ValueError("no image layer: add a 3D image first (File → Open, or the Volume widget)")
        masks, scratch = seg.masks_layer(), seg.scratch_layer()
        if create:
            masks = masks or seg._add_masks_layer(image, vol)
            scratch = scratch or PL.add_labels(self.viewer, image, vol, "scratch")
        return scratch, masks

    def session(self) -> ObjectSession:
        scratch, masks = self.layers()
        shape = tuple(self.seg.volume().shape)
        for ly in (masks, scratch):
            if tuple(ly.data.shape) != shape:
                raise ValueError(f"the layer {ly.name!r} is {tuple(ly.data.shape)} but the image "
                                 f"{self.seg.layer.name!r} is {shape}: remove or rename that layer (Segment "
                                 f"makes a new one)")
        key = (id(scratch.data), id(masks.data))
        s = self._sessions.get(key)
        if s is None:
            s = self._sessions[key] = ObjectSession(masks.data, scratch.data)
        return s

    def refresh(self) -> None:
        for ly in self.layers(create=False):
            if ly is not None:
                ly.refresh()

    # --- actions ---------------------------------------------------------------------------------------
    def commit(self):
        seg = self.seg
        s, oid = self.session(), seg.object_id.value()
        state = PL.take_prompts(seg.points_layer(), seg.boxes_layer())
        try:
            res = s.commit(oid, overwrite=seg.overwrite_check.isChecked(), prompts=state)
        except Exception:
            PL.put_prompts(seg.points_layer(), seg.boxes_layer(), state)
            raise
        s._undo[-1].extra = {"object_id": oid, "prompts": state}
        self.refresh()
        others = f"; {res.kept_for_others} px kept for other objects" if res.kept_for_others else ""
        self.switch_object(s.next_id(oid), keep=False)
        seg.status_label.setText(f"committed object {oid}: {res.voxels} px on {len(res.slices)} slice(s){others}; "
                                 f"now object {seg.object_id.value()}")
        return res

    def clear(self):
        seg = self.seg
        s = self.session()
        zs = s.clear(seg.object_id.value())
        s._undo[-1].extra = {"prompts": PL.take_prompts(seg.points_layer(), seg.boxes_layer())}
        self.refresh()
        seg.status_label.setText(f"cleared object {seg.object_id.value()} ({len(zs)} slice(s))")

    def next_object(self):
        seg = self.seg
        s = self.session()
        if s.scratch_slices():
            self.commit()
        else:
            self.switch_object(s.next_id(seg.object_id.value()), keep=True)
            seg.status_label.setText(f"now object {seg.object_id.value()}")

    def undo(self):
        seg = self.seg
        s = self.session()
        step = s.undo()
        if step is None:
            seg.status_label.setText("nothing to undo")
            return None
        if "object_id" in step.extra:  # a commit: back to that object
            self.switch_object(step.extra["object_id"], keep=False)
        if "prompts" in step.extra:  # a commit or a clear: with its prompts
            PL.put_prompts(seg.points_layer(), seg.boxes_layer(), step.extra["prompts"])
        self.refresh()
        seg.status_label.setText(f"undid {step.what} ({len(step.slices)} slice(s))")
        return step

    def switch_object(self, oid: int, keep: bool = True) -> None:
        """Make ``oid`` the current object, its kept prompts in the layers; ``keep``: the
        prompts in the layers now are kept as the current object's (else dropped)."""
        seg = self.seg
        if not keep:
            PL.put_prompts(seg.points_layer(), seg.boxes_layer(), None)
        self._switching, self._keeping = True, keep
        try:
            seg.object_id.setValue(min(int(oid), MAX_OBJECT_ID))
        finally:
            self._switching, self._keeping = False, True

    def on_object_id(self, value):
        """Each object keeps its prompts: going to an object that has kept prompts (or through
        Next / Commit) swaps the layers' prompts; otherwise they stay for the new id."""
        seg, value = self.seg, int(value)
        s = self.session() if seg.layer is not None and seg.masks_layer() is not None else None
        if s is not None and (self._switching or value in s.prompts):
            state = PL.take_prompts(seg.points_layer(), seg.boxes_layer())
            if len(state["points"]) or state["boxes"]:
                s.prompts[self._current_id] = state
            elif self._keeping:  # its prompts were deleted: none kept (Propagate would seed from them)
                s.prompts.pop(self._current_id, None)
            PL.put_prompts(seg.points_layer(), seg.boxes_layer(), s.prompts.get(value))
        elif s is not None:  # the layers' prompts stay, the new id's now: no longer kept for the old one
            s.prompts.pop(self._current_id, None)
        self._current_id = value
        for ly in (seg.masks_layer(), seg.scratch_layer()):
            if ly is not None:
                ly.selected_label = value

    def review(self):
        from .review import review_3d

        scratch, masks = self.layers()
        hidden = review_3d(self.viewer, self.seg.layer, masks, scratch)
        self.seg.status_label.setText("3D review" + (f"; hidden: {', '.join(hidden)}" if hidden else ""))
        return hidden

    # --- Segment volume --------------------------------------------------------------------------------
    def segment_volume(self) -> None:
        seg = self.seg
        if self.job is not None and self.job.running:  # a second Shift+S / click: cancel
            self.cancel()
            return
        seg._clear_error()
        prepared = seg._try(self._prepare)
        if prepared is None:
            seg.volume_finished.emit(False)
            return
        self.volume_button.setText("Cancel")
        self.reports = []
        self._session = prepared["session"]
        seg.status_label.setText(f"segmenting object {prepared['object_id']} through the volume…")
        self.job = Job(self._gen(prepared), on_yield=self._on_item, on_error=seg._show_error,
                       on_finish=self._on_finished)
        self.job.start()

    def _prepare(self) -> dict:
        from ..layers import seed_from_prompts

        seg = self.seg
        s, vol, oid = self.session(), seg.volume(), seg.object_id.value()
        seed = None
        if not s.scratch_slices():
            z = seg.current_z()
            if z is None:
                raise ValueError("the current slice is outside the image: move the z slider onto it")
            seg.add_prompt_layers()
            pts, pos, rects = seg._prompts_in_image(seg._z_world())
            seed = seed_from_prompts(oid, z, pts, pos, rects, vol.shape)
        options = seg.propagate_panel.walk_options()  # the Propagate section's settings (defaults unless changed)
        return {"session": s, "volume": vol, "mode": seg.mode_selector.mode(), "key": seg._wanted_model_key(),
                "object_id": oid, "seed": seed, "options": options}

    def _gen(self, p):
        from ..sam.embeddings import SliceEmbedder

        model = yield from self.seg._model_job_part(p["key"])
        emb = SliceEmbedder(model, p["volume"], p["mode"])  # its own: shares the disk cache
        yield from p["session"].propagate(emb, p["object_id"], p["seed"], **p["options"])

    def _on_item(self, item):
        from ..propagation import SliceReport

        if not isinstance(item, SliceReport):
            self.seg._on_job_item(item)
            return
        self.reports.append(item)
        self.seg.volume_report.emit(item)
        if self._refresher.wrote(item.z):  # the shown slice, a few times a second (texture uploads)
            self.seg.status_label.setText(f"segment volume: slice {item.z} ({item.area} px)")
        elif time.monotonic() - self._last_status > REFRESH_EVERY_S:
            self._last_status = time.monotonic()
            self.seg.status_label.setText(f"segment volume: slice {item.z} ({item.area} px)")

    def _on_finished(self, cancelled: bool):
        self.volume_button.setText("Segment volume")
        self._refresher.flush()
        ok = bool(self.reports) and not cancelled
        zs = self._session.scratch_slices()  # what is in the layer, whatever the reports said
        stops = [f"slice {r.z}: {r.stopped}" for r in self.reports if r.stopped]
        where = f"{len(zs)} slice(s) ({zs[0]}–{zs[-1]})" if zs else "no slice"
        if cancelled:
            self.seg.status_label.setText(f"cancelled: object {self.seg.object_id.value()} has {where} in the "
                                          f"current object — Commit (C) to keep them, Ctrl+Z to drop the walk")
        elif self.reports:
            self.seg.status_label.setText(
                f"object {self.seg.object_id.value()}: {where} in the current object"
                + (f"; stopped at {', '.join(stops[:2])}" if stops else "") + " — Commit (C) to keep it")
        self.seg.volume_finished.emit(ok)

    def cancel(self):
        """Stop Segment volume after the slice being done (the slices done stay in the current object)."""
        if self.job is not None and self.job.running:
            self.seg.status_label.setText("cancelling after the current slice…")
            self.job.cancel()


def _callback(action):
    def cb(_provider):
        action()
    return cb
