"""napari layers ↔ core objects: plain data in, no Qt, no napari import.

What a widget needs to turn the user's layers into the objects the core works on,
callable from a script or the console the same way (a napari layer is read through its
attributes only: ``data``, ``multiscale``, ``contrast_limits``, ``name``, ``metadata``,
``scale``, ``translate``, ``data_to_world`` / ``world_to_data``):

``volume_from_layer(layer)``
    an image layer → ``Volume`` (the one place that does it: Segment, Train, Volume
    and Sampling widgets all call it).
``prompts_in_image(image, points, boxes, z_world)``
    Points / Shapes layer contents in the image's data coordinates.
``seed_from_prompts`` / ``seeds_from_labels``
    prompt layers or a labels array → ``propagation.Seed``s (``objects_on_slices``: which
    objects a labels array holds on which slices).
``training_pairs(specs)`` / ``training_pairs_by_name(layers, pairs)`` / ``check_pair``
    (image layer, labels layer, objects) → ``TrainingPair``s; the same by layer names.
``data_z(layer, world_point, depth)`` / ``labels_of_shape(layers, shape)``
    the layer's data slice at the viewer's point; the labels layers that fit a volume.
``new_labels(shape)``
    a labels array for a volume: numpy up to ``NUMPY_LABELS_MAX_VOXELS``, else an
    in-memory zarr array holding only the chunks written.
``default_model_name()`` / ``model_choices()`` / ``default_train_dir(name)``
    the defaults that work offline: the built-in ``small_hr`` model unless ``vit_b``'s
    weights are in the cache; a checkpoint folder beside the embedding cache.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

import numpy as np

from .errors import ScrollSamError

#: the models shipped in the package (``sam/weights/<name>.pt``), the default built-in one first
BUILTIN_MODELS = ("small_hr", "small")
#: the model widgets and commands use when nothing else is asked for (and vit_b is not cached)
BUILTIN_MODEL = BUILTIN_MODELS[0]
META_MODELS = ("vit_b", "vit_l", "vit_h")
#: labels arrays up to this many voxels are numpy (pages allocated lazily by the OS when
#: written); larger ones are in-memory zarr arrays holding only written chunks
NUMPY_LABELS_MAX_VOXELS = 1 << 30


class LayerError(ScrollSamError, ValueError):
    """A layer cannot be used as asked (names the layer and what is wrong)."""


# --- defaults that work offline ---------------------------------------------------------------


def cache_root() -> Path:
    """The folder of the embedding cache and downloaded weights (``$NAPARI_SCROLL_SAM_CACHE``
    or the user cache folder)."""
    env = os.environ.get("NAPARI_SCROLL_SAM_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-scroll-sam"))


def weights_cached(name: str) -> bool:
    """Whether Meta's ``name`` weights are in the cache already (no download needed)."""
    from .sam.weights import WEIGHTS, Weights, cache_dir

    if name not in WEIGHTS:
        return False
    return (cache_dir() / Weights(*WEIGHTS[name]).filename).is_file()


def default_model_name() -> str:
    """``vit_b`` when its weights are in the cache, else the built-in ``BUILTIN_MODEL`` (works offline)."""
    return "vit_b" if weights_cached("vit_b") else BUILTIN_MODEL


def model_choices() -> list[str]:
    """The model names a model box offers, the default first."""
    default = default_model_name()
    return [default, *(n for n in (*BUILTIN_MODELS, *META_MODELS) if n != default)]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "layer"


def default_train_dir(layer_name: str, now: _dt.datetime | None = None, root: Path | None = None) -> Path:
    """``<cache>/checkpoints/<layer>-<YYYYmmdd-HHMMSS>``: beside the embedding cache, named
    after the image layer and the time (a new folder for every run)."""
    now = now or _dt.datetime.now()
    root = Path(root) if root is not None else cache_root()
    return root / "checkpoints" / f"{_safe_name(layer_name)}-{now:%Y%m%d-%H%M%S}"


# --- layer → Volume ---------------------------------------------------------------------------

#: id(layer) → (key, Volume) of the last layers wrapped (bounded; the key holds id(data) too)
_VOLUMES: dict = {}
_VOLUMES_MAX = 32


def volume_from_layer(layer):
    """The ``Volume`` of an image layer: its ``metadata["volume"]`` when the plugin opened
    it (and the data is still the volume's), else its data wrapped as a Volume with the
    layer's contrast limits as the window, its ``scale`` as voxel size and its name. The
    same Volume comes back while data and window are unchanged (numpy data is named by
    a hash of its content, so the embedding cache finds the same slices again next
    session). A layer that is not 3D grey raises ``LayerError``."""
    import dask.array as da

    from .io.volume import Volume

    vol = getattr(layer, "metadata", {}).get("volume")
    if isinstance(vol, Volume):
        return vol
    name = getattr(layer, "name", "image")
    if getattr(layer, "rgb", False):
        raise LayerError(f"the layer {name!r} is an RGB image: choose a grey 3D image")
    data = layer.data
    levels = list(data) if getattr(layer, "multiscale", False) else [data]
    if levels[0].ndim != 3:
        raise LayerError(f"the layer {name!r} has {levels[0].ndim} axes: a volume needs 3 (z, y, x)")
    window = tuple(float(c) for c in layer.contrast_limits)
    scale = tuple(float(s) for s in getattr(layer, "scale", (1, 1, 1)))[-3:]
    key = (id(data), window, scale)
    cached = _VOLUMES.get(id(layer))
    if cached is not None and cached[0] == key:
        return cached[1]
    levels = [a if isinstance(a, (da.Array, np.ndarray)) else da.asarray(a) for a in levels]  # numpy: read directly
    vol = Volume(levels=levels, contrast_limits=window, name=name, voxel_size=scale)
    _VOLUMES.pop(id(layer), None)
    _VOLUMES[id(layer)] = (key, vol)
    while len(_VOLUMES) > _VOLUMES_MAX:
        _VOLUMES.pop(next(iter(_VOLUMES)))
    return vol


def layer_kwargs(volume) -> dict:
    """How a Volume is shown: ``add_image(vol.layer_data, **layer_kwargs(vol))``."""
    return {"name": volume.name, "scale": tuple(volume.voxel_size), "contrast_limits": tuple(volume.contrast_limits),
            "multiscale": volume.multiscale, "metadata": {"volume": volume}}


def new_labels(shape):
    """A zeroed uint32 labels array of ``shape``: numpy up to ``NUMPY_LABELS_MAX_VOXELS``
    (calloc: pages are allocated when written), else an in-memory zarr array that holds
    only the chunks written (a whole scroll's labels cost nothing until drawn on)."""
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) <= NUMPY_LABELS_MAX_VOXELS:
        return np.zeros(shape, np.uint32)
    import zarr

    chunks = (1, min(shape[1], 1024), min(shape[2], 1024))
    return zarr.create_array(store=zarr.storage.MemoryStore(), shape=shape, chunks=chunks, dtype="uint32",
                             fill_value=0, config={"write_empty_chunks": False})


def data_z(layer, world_point, depth: int | None = None) -> int | None:
    """The data slice of ``layer`` at the viewer's ``world_point`` (``viewer.dims.point``),
    rounded; None when ``depth`` is given and the slice is outside ``0 … depth - 1``."""
    z = int(np.floor(float(layer.world_to_data(world_point)[0]) + 0.5))
    return z if depth is None or 0 <= z < depth else None


LAYER_KINDS = ("image", "labels", "points", "shapes", "surface", "tracks", "vectors")


def layer_kind(layer) -> str:
    """"image", "labels", … of a napari layer by its class (``__class__``: napari's public-only
    proxy of a plugin's viewer answers for the layer; reading ``_type_string`` through it warns
    that it goes away), without importing napari; a stand-in's ``_type_string`` otherwise."""
    for c in layer.__class__.__mro__:
        if c.__name__.lower() in LAYER_KINDS:
            return c.__name__.lower()
    return str(getattr(layer, "_type_string", ""))


def labels_of_shape(layers, shape) -> dict:
    """``{name: data}`` of the single-scale labels layers of ``shape`` among ``layers`` (what
    the filter's mask / annotated rules and training can use with a volume of that shape)."""
    return {ly.name: ly.data for ly in layers if layer_kind(ly) == "labels"
            and not getattr(ly, "multiscale", False) and tuple(ly.data.shape) == tuple(shape)}


# --- prompt layers → prompts and seeds ----------------------------------------------------------


def to_image_coords(image, src, coords, z_world: float = 0.0) -> np.ndarray:
    """``coords`` in layer ``src``'s data coordinates → the ``image`` layer's (z, y, x); a 2D
    ``src`` lies on the slice at ``z_world``."""
    out = []
    for c in np.asarray(coords, float):
        w = np.asarray(src.data_to_world(c), float)
        if len(w) < image.ndim:
            w = np.concatenate([np.full(image.ndim - len(w), z_world), w])
        out.append(np.asarray(image.world_to_data(w), float)[-3:])
    return np.asarray(out, float).reshape(-1, 3)


def prompts_in_image(image, points=None, boxes=None, z_world: float = 0.0, state: dict | None = None):
    """Points ``(M, 3)``, positive ``(M,)`` and rectangles ``[(4, 3)…]`` of a Points and a
    Shapes layer in the ``image`` layer's data coordinates (z, y, x). A 2D prompt layer
    lies on the slice at ``z_world``. Points without a ``positive`` feature are positive.
    ``state``: prompts kept for another object (``{"points", "positive", "boxes"}`` in the
    layers' data coordinates) instead of the layers' contents, through the layers' transforms."""
    if state is not None:
        pts, pos, rects = np.zeros((0, 3)), np.zeros(0, bool), []
        if points is not None and len(state.get("points", ())):
            pts = to_image_coords(image, points, state["points"], z_world)
            pos = np.asarray(state["positive"], bool)
        if boxes is not None:
            rects = [to_image_coords(image, boxes, d, z_world) for d in state.get("boxes", [])]
        return pts, pos, rects

    def to_image(src, coords):
        return to_image_coords(image, src, coords, z_world)

    pts, pos = np.zeros((0, 3)), np.zeros(0, bool)
    if points is not None and len(points.data):
        pts = to_image(points, points.data)
        feats = points.features
        pos = np.asarray(feats["positive"], bool) if "positive" in feats else np.ones(len(pts), bool)
    rects = []
    if boxes is not None:
        rects = [to_image(boxes, d) for d, t in zip(boxes.data, boxes.shape_type) if t == "rectangle"]
    return pts, pos, rects


def seed_from_prompts(object_id: int, z: int, points, positive, boxes, shape):
    """One ``Seed`` from the prompts on slice ``z`` (points and at most one box), checked
    against the volume ``shape``; ``PromptError`` when the slice has none."""
    from .propagation import PropagationError, Seed
    from .sam.layer_prompts import prompts_on_slice

    pr = prompts_on_slice(points, positive, boxes, z, shape)
    if pr["box"] is not None and len(pr["box"]) > 1:
        raise PropagationError(f"{len(pr['box'])} boxes on slice {z}: a walk takes one box per object; "
                               f"segment the slice first and propagate its mask")
    h, w = tuple(shape)[-2:]
    yx = np.clip(np.asarray(pr["points"][0], float).reshape(-1, 2), 0, [h - 1, w - 1])
    return Seed(object_id, z, points=yx if len(yx) else None,
                labels=np.asarray(pr["labels"][0], float) if len(yx) else None,
                box=None if pr["box"] is None else np.asarray(pr["box"][0], float))


def objects_on_slices(labels, lo: int = 0, hi: int | None = None, ids=None) -> dict[int, list[int]]:
    """{object id: [slices in ``[lo, hi)`` where ``labels`` holds it]} (only ``ids`` when
    given), reading one slice at a time."""
    hi = labels.shape[0] if hi is None else hi
    want = None if ids is None else np.asarray(sorted(ids), dtype=np.int64)
    found: dict[int, list[int]] = {}
    for z in range(lo, hi):
        sl = np.asarray(labels[z])
        present = np.unique(sl[sl != 0])
        if want is not None:
            present = present[np.isin(present, want)]
        for v in present.tolist():
            found.setdefault(int(v), []).append(z)
    return found


def object_slices(labels, object_id: int, lo: int = 0, hi: int | None = None) -> list[int]:
    """The slices in ``[lo, hi)`` where ``labels`` holds ``object_id``."""
    return objects_on_slices(labels, lo, hi, [object_id]).get(int(object_id), [])


def seeds_from_labels(labels, object_id: int, lo: int = 0, hi: int | None = None) -> list:
    """Every slice of ``labels`` holding ``object_id`` as an anchor ``Seed(mask=…)``."""
    from .propagation import Seed

    return [Seed(object_id, z, mask=np.asarray(labels[z]) == object_id)
            for z in object_slices(labels, object_id, lo, hi)]


def parse_slices(text: str, what: str = "validation slices", depth: int | None = None) -> list[int] | None:
    """``"3, 7 10-12"`` → ``[3, 7, 10, 11, 12]`` (ranges ``a-b``, ``a:b`` or ``a..b``,
    inclusive; sorted, unique); empty text → None; ``LayerError`` naming ``what`` on
    anything else, and on a slice past the last of ``depth`` slices."""
    text = text.strip()
    if not text:
        return None
    out: set[int] = set()
    for part in (p for p in re.split(r"[,;\s]+", text) if p):
        m = re.fullmatch(r"(\d+)(?:\s*(?:-|:|\.\.)\s*(\d+))?", part)
        if m is None:
            raise LayerError(f"{what}: {part!r} is not a slice number or a range like 10-12")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise LayerError(f"{what}: the range {part!r} runs backwards")
        if b - a > 1_000_000:
            raise LayerError(f"{what}: the range {part!r} is too long")
        if depth is not None and b >= depth:
            raise LayerError(f"{what}: {part!r} is past the last slice ({depth - 1})")
        out.update(range(a, b + 1))
    return sorted(out)


# --- layer pairs → training pairs ----------------------------------------------------------------


def training_pairs(pairs) -> list:
    """``[(image layer, labels layer, objects)…]`` → ``TrainingPair``s (the image through
    ``volume_from_layer``; a multiscale labels layer gives its full resolution)."""
    from .training.data import TrainingPair

    out = []
    for image, labels, objects in pairs:
        lab = labels.data[0] if getattr(labels, "multiscale", False) else labels.data
        out.append(TrainingPair(volume_from_layer(image), lab, name=image.name, objects=objects))
    return out


OBJECT_KINDS = ("instances", "components")


def check_pair(pairs, image: str, labels: str, objects: str = "instances") -> tuple[str, str, str]:
    """A new (image name, labels name, objects) training pair, checked against ``pairs``
    (the ones chosen already); ``LayerError`` says what is wrong."""
    if not image or not labels:
        raise LayerError("choose an image layer and a labels layer first")
    if objects not in OBJECT_KINDS:
        raise LayerError(f"objects must be {' or '.join(OBJECT_KINDS)}, not {objects!r}")
    pair = (image, labels, objects)
    if pair in pairs:
        raise LayerError(f"{image} ↔ {labels} is already in the training data")
    return pair


def training_pairs_by_name(layers, pairs) -> list:
    """``[(image name, labels name, objects)…]`` → ``TrainingPair``s of the layers of those
    names in ``layers`` (a viewer's layer list, or a dict); a name not there, or a layer of
    another kind, raises ``LayerError`` (a pair with an empty name is no pair)."""
    pairs = [p for p in pairs if p[0] and p[1]]
    if not pairs:
        raise LayerError("no training data: choose an image and its labels layer (Add pair for more than one)")

    def layer(name, kind, what):
        if name not in layers:
            raise LayerError(f"the {what} layer {name!r} is no longer in the viewer")
        ly = layers[name]
        if layer_kind(ly) != kind:
            raise LayerError(f"{name!r} is not {'an image' if kind == 'image' else 'a labels'} layer")
        return ly

    return training_pairs([(layer(i, "image", "image"), layer(lab, "labels", "labels"), objects)
                           for i, lab, objects in pairs])


__all__ = ["LayerError", "OBJECT_KINDS", "check_pair", "training_pairs_by_name", "data_z", "labels_of_shape",
           "BUILTIN_MODEL", "BUILTIN_MODELS", "META_MODELS", "NUMPY_LABELS_MAX_VOXELS", "cache_root", "weights_cached",
           "default_model_name", "model_choices", "default_train_dir", "volume_from_layer", "layer_kwargs",
           "new_labels", "prompts_in_image", "seed_from_prompts", "objects_on_slices", "object_slices",
           "seeds_from_labels",
           "training_pairs", "parse_slices"]
