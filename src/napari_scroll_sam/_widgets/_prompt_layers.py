"""The layers the Segment widget works in, beside an image: ``"<image> prompts"`` (Points,
feature ``positive``), ``"<image> boxes"`` (Shapes), ``"<image> current object"`` (Labels:
the scratch object) and ``"<image> masks"`` (Labels: the committed objects). Each is tagged
``metadata["scroll_sam"] = {"role": …, "image": name}`` and found by tag, then by name."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels, Points, Shapes

from ..layers import new_labels

PROMPTS_SUFFIX, BOXES_SUFFIX, MASKS_SUFFIX, SCRATCH_SUFFIX = " prompts", " boxes", " masks", " current object"
ROLE = "scroll_sam"
POSITIVE_COLOR, NEGATIVE_COLOR, SCRATCH_COLOR = "#20d020", "#ff3030", "#ffd400"
KINDS = {"prompts": (Points, PROMPTS_SUFFIX), "boxes": (Shapes, BOXES_SUFFIX), "masks": (Labels, MASKS_SUFFIX),
         "scratch": (Labels, SCRATCH_SUFFIX)}


def find(viewer, image, role: str):
    """The ``role`` layer of ``image`` (an image layer), or None."""
    if image is None:
        return None
    kind, suffix = KINDS[role]
    for ly in viewer.layers:
        tag = ly.metadata.get(ROLE)
        if isinstance(ly, kind) and isinstance(tag, dict) and tag.get("role") == role and tag.get("image") == image.name:
            return ly
    ly = viewer.layers[image.name + suffix] if image.name + suffix in viewer.layers else None
    return ly if isinstance(ly, kind) else None


def geometry(image) -> dict:
    return {"scale": tuple(image.scale), "translate": tuple(image.translate)}


def add_labels(viewer, image, vol, role: str) -> Labels:
    """The masks (committed objects) or the scratch object layer, made for ``image``."""
    tag = {ROLE: {"role": role, "image": image.name}}
    kw = dict(opacity=0.5) if role == "masks" else dict(opacity=0.7, blending="translucent_no_depth")
    layer = viewer.add_labels(new_labels(vol.shape), name=image.name + KINDS[role][1], metadata=tag,
                              **kw, **geometry(image))
    if role == "scratch":  # one bright colour, whatever the id: the object being worked on (a cyclic map of
        # one colour: a DirectLabelColormap's default colour made the first 3D view 11 s slower)
        from napari.utils.colormaps import CyclicLabelColormap
        from napari.utils.colormaps.standardize_color import transform_color

        layer.colormap = CyclicLabelColormap(colors=[[0, 0, 0, 0], transform_color(SCRATCH_COLOR)[0]])
    return layer


def add_prompts(viewer, image, vol, positive: bool):
    """The points and boxes layers for ``image`` (returns them; points made now or not)."""
    h, w = vol.shape[1:]
    size = float(np.clip(min(h, w) / 40, 4, 40))
    boxes = find(viewer, image, "boxes")
    if boxes is None:
        boxes = viewer.add_shapes(ndim=3, name=image.name + BOXES_SUFFIX, shape_type="rectangle", edge_color="yellow",
                                  face_color="transparent", edge_width=max(1.0, size / 5),
                                  metadata={ROLE: {"role": "boxes", "image": image.name}}, **geometry(image))
    points = find(viewer, image, "prompts")
    made = points is None
    if made:
        points = viewer.add_points(
            np.empty((0, 3)), ndim=3, name=image.name + PROMPTS_SUFFIX, features={"positive": np.zeros(0, bool)},
            feature_defaults={"positive": positive}, face_color="positive",
            face_color_cycle={True: POSITIVE_COLOR, False: NEGATIVE_COLOR}, border_color="white", border_width=0.1,
            size=size, out_of_slice_display=False, metadata={ROLE: {"role": "prompts", "image": image.name}},
            **geometry(image))
    return points, boxes, made


def take_prompts(points, boxes) -> dict:
    """The prompt layers' contents (to keep per object), and the layers emptied."""
    state = {"points": np.empty((0, 3)), "positive": np.zeros(0, bool), "boxes": []}
    if points is not None and len(points.data):
        state["points"] = np.array(points.data)
        state["positive"] = np.asarray(points.features["positive"], bool).copy()
    if boxes is not None and len(boxes.data):
        state["boxes"] = [np.array(d) for d, t in zip(boxes.data, boxes.shape_type) if t == "rectangle"]
    put_prompts(points, boxes, None)
    return state


def put_prompts(points, boxes, state) -> None:
    """Fill the prompt layers with a kept ``state`` (None: empty them)."""
    if points is not None:
        default = points.feature_defaults["positive"].iloc[0] if "positive" in points.features else True
        if len(points.data):
            points.selected_data = set(range(len(points.data)))
            points.remove_selected()
        if state is not None and len(state["points"]):
            for p, pos in zip(state["points"], state["positive"]):
                points.feature_defaults = {"positive": bool(pos)}
                points.add(p)
        points.feature_defaults = {"positive": bool(default)}
    if boxes is not None:
        if len(boxes.data):
            boxes.selected_data = set(range(len(boxes.data)))
            boxes.remove_selected()
        if state is not None and state["boxes"]:
            boxes.add_rectangles(state["boxes"])


def clear_on_slice(points, boxes, pts, pos, rects, z: int) -> None:
    """Remove the points and rectangles lying on slice ``z`` (``pts`` / ``rects``: the layers'
    contents in the image's data coordinates, as ``layers.prompts_in_image`` gives them)."""
    from ..sam.layer_prompts import on_slice

    if points is not None and len(pts):
        drop = np.flatnonzero(on_slice(pts[:, 0], z))
        if len(drop):
            points.selected_data = set(drop.tolist())
            points.remove_selected()
    if boxes is not None:
        idx = [i for i, t in enumerate(boxes.shape_type) if t == "rectangle"]
        drop = [i for i, r in zip(idx, rects) if np.all(on_slice(r[:, 0], z))]
        if drop:
            boxes.selected_data = set(drop)
            boxes.remove_selected()
