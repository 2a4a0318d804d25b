"""napari window for ``napari-scroll-sam demo``: the scroll, its ground truth, the
propagated wraps, the widgets, and the 3D view."""

from __future__ import annotations


def build_demo_viewer(res, viewer=None):
    """Add the demo's layers and widgets to ``viewer`` (a new one by default)."""
    import napari

    from .segment import SegmentWidget
    from .volume import VolumeWidget

    viewer = viewer or napari.Viewer(title="napari-scroll-sam demo")
    vol = res.volume
    viewer.add_image(vol.data, name="scroll", contrast_limits=vol.contrast_limits, metadata={"volume": vol})
    viewer.add_labels(res.sheets, name="ground truth sheets", visible=False, opacity=0.4)
    viewer.add_labels(res.ink.astype("uint8"), name="ground truth ink", visible=False)
    viewer.add_labels(res.labels, name=f"propagated wrap {res.wrap}" if len(res.wraps) == 1 else "propagated wraps")
    viewer.window.add_dock_widget(VolumeWidget(viewer), name="Volume", area="right")
    viewer.window.add_dock_widget(SegmentWidget(viewer), name="Segment", area="right")
    viewer.dims.set_point(0, res.seed_z)
    viewer.dims.ndisplay = 3
    viewer.layers["scroll"].rendering = "attenuated_mip"
    scene = getattr(viewer, "scene", None)  # napari >= 0.9: viewer.scene.camera
    (scene.camera if scene is not None else viewer.camera).angles = (0, 30, 60)
    return viewer


def show_demo(res):
    import napari

    build_demo_viewer(res)
    napari.run()
