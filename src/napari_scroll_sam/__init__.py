"""napari-scroll-sam: Segment Anything for 3D CT scans of carbonized scrolls, in napari.

The scripting API, one namespace (works without Qt or a viewer; in napari's console too)::

    import napari_scroll_sam as nss
    vol = nss.open_volume("scroll.volpkg")        # lazy: metadata only
    vol = nss.volume_from_layer(viewer.layers["scroll"])   # or any napari image layer
    model = nss.load_model("small_hr")            # built-in (or "small"); "vit_b", or a checkpoint path
    emb = nss.SliceEmbedder(model, vol, mode=nss.Tuples(d=2))
    pred = nss.segment_slice(emb, z=100, points=[[512, 700]], labels=[1])
    labels = nss.new_labels(vol.shape)
    nss.run(nss.propagate(emb, [nss.Seed(1, 100, points=[[512, 700]])], labels, stop=nss.StopRule()))
    pairs = [nss.TrainingPair(vol, labels)]
    nss.run(nss.Trainer(model, pairs, "ckpt/", nss.TrainConfig(epochs=1)).run())
    nss.write_labels("labels.zarr", labels)

``run(generator)`` drains any report generator with a progress bar (Ctrl+C cancels);
every error the package raises is an ``nss.ScrollSamError``.

Heavy imports are deferred until a name is used.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "open_volume": "napari_scroll_sam.io.open",
    "Volume": "napari_scroll_sam.io.volume",
    "VolumeError": "napari_scroll_sam.io.volume",
    "ScrollSamError": "napari_scroll_sam.errors",
    "scroll_phantom": "napari_scroll_sam.io.phantom",
    "write_labels": "napari_scroll_sam.io.writer",
    "load_model": "napari_scroll_sam.sam",
    "SamModel": "napari_scroll_sam.sam",
    "SliceEmbedder": "napari_scroll_sam.sam.embeddings",
    "Predictor": "napari_scroll_sam.sam.predictor",
    "segment_slice": "napari_scroll_sam.sam.segment",
    "Tiling": "napari_scroll_sam.sam.tiling",
    "EverySlice": "napari_scroll_sam.sampling",
    "Tuples": "napari_scroll_sam.sampling",
    "RandomTuples": "napari_scroll_sam.sampling",
    "Filtered": "napari_scroll_sam.sampling",
    "make_mode": "napari_scroll_sam.sampling",
    "Seed": "napari_scroll_sam.propagation",
    "StopRule": "napari_scroll_sam.propagation",
    "WalkConfig": "napari_scroll_sam.propagation",
    "walk_summary": "napari_scroll_sam.propagation",
    "SliceReport": "napari_scroll_sam.propagation",
    "PropagationError": "napari_scroll_sam.propagation",
    "propagate": "napari_scroll_sam.propagation",
    "TrainingPair": "napari_scroll_sam.training.data",
    "Trainer": "napari_scroll_sam.training.trainer",
    "TrainConfig": "napari_scroll_sam.training.trainer",
    "training_run": "napari_scroll_sam.training.job",
    "run": "napari_scroll_sam.console",
    "volume_from_layer": "napari_scroll_sam.layers",
    "new_labels": "napari_scroll_sam.layers",
    "training_pairs": "napari_scroll_sam.layers",
    "sample_image": "napari_scroll_sam.sampling",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_scroll_sam' has no attribute {name!r}")


def __dir__():
    return __all__
