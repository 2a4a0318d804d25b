"""napari-scroll-sam: Segment Anything for 3D CT scans of carbonized scrolls, in napari.

The scripting API (works without Qt or a viewer)::

    import napari_scroll_sam as nss
    vol = nss.open_volume("scroll.volpkg")        # lazy: metadata only
    image, sheets, ink = nss.scroll_phantom((64, 256, 256), seed=0)

Heavy imports are deferred until a name is used.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "open_volume": "napari_scroll_sam.io.volume",
    "Volume": "napari_scroll_sam.io.volume",
    "VolumeError": "napari_scroll_sam.io.volume",
    "scroll_phantom": "napari_scroll_sam.io.phantom",
    "write_labels": "napari_scroll_sam.io.writer",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_scroll_sam' has no attribute {name!r}")


def __dir__():
    return __all__
