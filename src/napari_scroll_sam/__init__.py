"""napari-scroll-sam: Segment Anything for 3D CT scans of carbonized scrolls, in napari.

The scripting API (works without Qt or a viewer)::

    import napari_scroll_sam as nss
    vol = nss.open_volume("scroll.volpkg")        # lazy: metadata only
    image, sheets, ink = nss.scroll_phantom((64, 256, 256), seed=0)
    model = nss.load_model("vit_b")               # or "small", or a checkpoint path
    emb = nss.SliceEmbedder(model, vol, mode=nss.Tuples(d=2))
    pred = nss.segment_slice(emb, z=100, points=[[512, 700]], labels=[1])

Heavy imports are deferred until a name is used.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "open_volume": "napari_scroll_sam.io.volume",
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
    "sample_image": "napari_scroll_sam.sampling",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_scroll_sam' has no attribute {name!r}")


def __dir__():
    return __all__
