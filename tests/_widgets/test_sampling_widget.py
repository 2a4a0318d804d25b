"""The Sampling dock widget and the ModeSelector, on a phantom image layer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scroll_sam._widgets.sampling import PREVIEW_SUFFIX, ModeSelector, SamplingWidget
from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.io.volume import Volume
from napari_scroll_sam.sampling import EverySlice, Filtered, RandomTuples, Tuples, sample_image

CL = (7000, 40000)
SHAPE = (16, 48, 48)


@pytest.fixture(scope="module")
def phantom():
    image, sheets, _ = scroll_phantom(SHAPE, seed=0)
    return image.compute(), sheets.compute()


@pytest.fixture
def setup(make_napari_viewer, phantom, qtbot):
    image, _ = phantom
    viewer = make_napari_viewer()
    viewer.add_image(image, name="scroll", contrast_limits=CL)
    widget = SamplingWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, widget


def preview(viewer):
    return viewer.layers["scroll" + PREVIEW_SUFFIX]


def wait_for(qtbot, viewer, expected):
    qtbot.waitUntil(lambda: "scroll" + PREVIEW_SUFFIX in viewer.layers
                    and np.array_equal(preview(viewer).data, expected), timeout=3000)


def test_preview_follows_mode_and_slice(setup, phantom, qtbot):
    viewer, widget = setup
    vol = Volume(levels=[phantom[0]], contrast_limits=CL)
    assert widget.image_combo.currentText() == "scroll"
    z0 = viewer.dims.current_step[0]
    wait_for(qtbot, viewer, sample_image(vol, z0, EverySlice()))
    layer = preview(viewer)
    assert layer.rgb and layer.ndim == 2 and layer.data.dtype == np.uint8
    assert viewer.layers[-1] is layer  # on top
    assert viewer.layers.selection.active is viewer.layers["scroll"]
    assert widget.image_combo.count() == 1  # the preview is no image to sample

    widget.selector.set_mode(Tuples(d=3))
    wait_for(qtbot, viewer, sample_image(vol, z0, Tuples(d=3)))
    assert f"R = {max(z0 - 3, 0)}, G = {z0}" in widget.channels_label.text()

    viewer.dims.set_current_step(0, 2)
    wait_for(qtbot, viewer, sample_image(vol, 2, Tuples(d=3)))
    assert preview(viewer).metadata["z"] == 2

    widget.selector.set_mode(RandomTuples(window=4, seed=3))
    wait_for(qtbot, viewer, sample_image(vol, 2, RandomTuples(window=4, seed=3)))
    assert len(viewer.layers) == 2


def test_live_preview_off(setup, phantom, qtbot):
    viewer, widget = setup
    vol = Volume(levels=[phantom[0]], contrast_limits=CL)
    wait_for(qtbot, viewer, sample_image(vol, viewer.dims.current_step[0], EverySlice()))
    assert preview(viewer).opacity < 1 and viewer.layers[-1] is preview(viewer)  # semi-transparent, on top
    widget.live_check.setChecked(False)  # off: the preview layer goes
    assert widget.preview_layer is None and [ly.name for ly in viewer.layers] == ["scroll"]
    viewer.dims.set_current_step(0, 1)
    qtbot.wait(60)
    assert widget.preview_layer is None
    widget.preview_button.click()
    assert np.array_equal(preview(viewer).data, sample_image(vol, 1, EverySlice()))
    widget.close()
    assert [ly.name for ly in viewer.layers] == ["scroll"]


def test_volume_from_metadata_and_scaled_layer(make_napari_viewer, phantom, qtbot):
    viewer = make_napari_viewer()
    vol = Volume(levels=[phantom[0]], contrast_limits=(9000, 30000), name="v")
    viewer.add_image(vol.data, name="scroll", contrast_limits=CL, metadata={"volume": vol},
                     scale=(2.0, 0.5, 0.5), translate=(10.0, 3.0, 4.0))
    widget = SamplingWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.volume() is vol
    widget.go_to(5)
    assert widget.current_z() == 5
    wait_for(qtbot, viewer, sample_image(vol, 5, EverySlice()))  # the volume's window, not the layer's
    layer = preview(viewer)
    assert tuple(layer.scale) == (0.5, 0.5) and tuple(layer.translate) == (3.0, 4.0)


def test_filtered_list(setup, phantom, qtbot):
    viewer, widget = setup
    _, sheets = phantom
    labels = sheets.copy()
    labels[[0, 3, 4, 9, 15]] = 0
    viewer.add_labels(labels, name="sheets")
    widget.selector.set_mode(Filtered(Tuples(1), z_range=(2, 12)))
    assert widget.slices_label.text().startswith("10 of 16 slices pass")
    assert widget.slices_list.count() == 10 and not widget.compute_button.isEnabled()

    mode = Filtered(Tuples(1), z_range=(2, 12), annotated=labels)
    widget.selector.set_mode(mode)
    assert widget.selector.mode() == mode
    assert widget.selector.controls["filtered"]["annotated"].combo.currentText() == "sheets"
    assert widget.slices_list.count() == 0 and widget.compute_button.isEnabled()
    widget.compute_button.click()
    expected = [2, 5, 6, 7, 8, 10, 11]
    assert [widget.slices_list.item(i).text() for i in range(widget.slices_list.count())] == \
        [f"slice {z}" for z in expected]
    assert widget.slices_label.text().startswith("7 of 16 slices pass")
    widget.slices_list.itemClicked.emit(widget.slices_list.item(2))
    assert viewer.dims.current_step[0] == 6

    widget.selector.set_mode(Tuples(2))
    assert widget.slices_label.text().startswith("16 of 16 slices pass: 0, 1, 2")
    assert widget.slices_list.isHidden()


def test_mode_selector_roundtrip(qtbot):
    sel = ModeSelector()
    qtbot.addWidget(sel)
    mask = np.ones((8, 8), bool)
    sel.set_arrays({"mask": mask})
    modes = [EverySlice(3), Tuples(0), Tuples(4), RandomTuples(7, 11), Filtered(),
             Filtered(RandomTuples(2, 5), z_range=(3, 9), min_content=0.25, threshold=0.4, not_blank=True),
             Filtered(Tuples(2), mask=mask), Filtered(EverySlice(2), annotated=np.zeros((2, 8, 8)), min_content=0.0)]
    for mode in modes:
        with qtbot.waitSignal(sel.changed):
            sel.set_mode(mode)
        assert sel.mode() == mode, mode
    assert sel.controls["filtered"]["annotated"].combo.currentText() == "(given array)"
    # editing a control gives the edited mode
    sel.set_mode(Tuples(1))
    with qtbot.waitSignal(sel.changed):
        sel.controls["tuples"]["d"].spin.setValue(5)
    assert sel.mode() == Tuples(5)
    assert "z−5" in sel.describe_label.text()
