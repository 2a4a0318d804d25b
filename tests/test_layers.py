"""napari layers ↔ core objects (layers.py), with plain stand-ins for layers: no Qt here."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pytest

from napari_scroll_sam import layers
from napari_scroll_sam.io.volume import Volume


class FakeLayer(SimpleNamespace):
    """What layers.py reads of a napari layer: attributes and the affine maps (scale + translate)."""

    def data_to_world(self, c):
        return np.asarray(c, float) * self.scale[-len(c):] + self.translate[-len(c):]

    def world_to_data(self, w):
        return (np.asarray(w, float) - self.translate[-len(w):]) / self.scale[-len(w):]


def image_layer(data, **kw):
    base = dict(data=data, multiscale=False, contrast_limits=(0, 255), name="img", metadata={}, rgb=False,
                scale=np.array([2.0, 1.0, 1.0]), translate=np.zeros(3), ndim=3)
    base.update(kw)
    return FakeLayer(**base)


def test_default_model_is_the_builtin_unless_vit_b_is_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path))
    assert layers.default_model_name() == layers.BUILTIN_MODEL == "small_hr"
    assert layers.model_choices() == ["small_hr", "small", "vit_b", "vit_l", "vit_h"]
    (tmp_path / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert layers.weights_cached("vit_b") and layers.default_model_name() == "vit_b"
    assert layers.model_choices()[:3] == ["vit_b", "small_hr", "small"]


def test_default_train_dir_is_beside_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path))
    got = layers.default_train_dir("scroll / crop 1", now=dt.datetime(2026, 12, 1, 10, 5, 7))
    assert got == tmp_path / "checkpoints" / "scroll_crop_1-20261201-100507"


def test_volume_from_layer_wraps_any_grey_image_once():
    data = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    ly = image_layer(data)
    vol = layers.volume_from_layer(ly)
    assert isinstance(vol, Volume) and vol.shape == (4, 5, 6) and vol.contrast_limits == (0.0, 255.0)
    assert vol.voxel_size == (2.0, 1.0, 1.0) and vol.name == "img"
    np.testing.assert_array_equal(vol.data.compute(), data)
    assert layers.volume_from_layer(ly) is vol  # memo while data and window stay
    ly.contrast_limits = (10, 20)
    assert layers.volume_from_layer(ly) is not vol and layers.volume_from_layer(ly).contrast_limits == (10.0, 20.0)
    opened = Volume(levels=[data], name="opened")
    assert layers.volume_from_layer(image_layer(data, metadata={"volume": opened})) is opened
    with pytest.raises(layers.LayerError, match="'rgb'.*RGB"):
        layers.volume_from_layer(image_layer(np.zeros((4, 5, 3)), rgb=True, name="rgb"))
    with pytest.raises(layers.LayerError, match="'flat' has 2 axes"):
        layers.volume_from_layer(image_layer(np.zeros((4, 5)), name="flat"))


def test_new_labels_numpy_or_zarr(monkeypatch):
    small = layers.new_labels((2, 3, 4))
    assert isinstance(small, np.ndarray) and small.dtype == np.uint32 and small.shape == (2, 3, 4)
    monkeypatch.setattr(layers, "NUMPY_LABELS_MAX_VOXELS", 10)
    big = layers.new_labels((2, 3, 4))
    assert not isinstance(big, np.ndarray) and big.shape == (2, 3, 4) and big.dtype == np.uint32
    big[1] = 7
    assert int(np.asarray(big[1]).sum()) == 7 * 12 and int(np.asarray(big[0]).sum()) == 0


def test_prompts_and_seeds_from_layers():
    img = image_layer(np.zeros((4, 20, 20)), scale=np.array([2.0, 1.0, 1.0]), translate=np.array([0.0, 5.0, 0.0]))
    # a points layer without translate: world (4, 15, 3) is the image's data (2, 10, 3)
    pts = FakeLayer(data=np.array([[4.0, 15.0, 3.0], [0.0, 6.0, 6.0]]), scale=np.ones(3), translate=np.zeros(3),
                    features={"positive": np.array([True, False])})
    box = np.array([[4, 7, 2], [4, 7, 12], [4, 17, 12], [4, 17, 2]], float)
    shapes = FakeLayer(data=[box], shape_type=["rectangle"], scale=np.ones(3), translate=np.zeros(3))
    p, pos, rects = layers.prompts_in_image(img, pts, shapes)
    np.testing.assert_allclose(p, [[2, 10, 3], [0, 1, 6]])
    assert pos.tolist() == [True, False] and len(rects) == 1
    np.testing.assert_allclose(rects[0][0], [2, 2, 2])
    seed = layers.seed_from_prompts(3, 2, p, pos, rects, (4, 20, 20))
    assert seed.object_id == 3 and seed.z == 2
    np.testing.assert_allclose(seed.points, [[10, 3]])
    np.testing.assert_allclose(seed.box, [2, 2, 12, 12])
    labels = np.zeros((4, 20, 20), np.uint32)
    labels[1, 2:5, 2:5] = 3
    labels[3, 0, 0] = 3
    labels[2, 9, 9] = 4
    seeds = layers.seeds_from_labels(labels, 3)
    assert [s.z for s in seeds] == [1, 3] and seeds[0].mask.sum() == 9
    assert layers.object_slices(labels, 3, 2, 4) == [3]


def test_data_z_and_labels_of_shape():
    img = image_layer(np.zeros((5, 4, 4), np.uint8), _type_string="image", translate=np.array([10.0, 0, 0]))
    assert layers.data_z(img, (13.9, 0, 0)) == 2 and layers.data_z(img, (14.0, 0, 0), depth=5) == 2
    assert layers.data_z(img, (8.0, 0, 0), depth=5) is None and layers.data_z(img, (19.0, 0, 0), depth=5) is None
    fit = FakeLayer(name="masks", _type_string="labels", multiscale=False, data=np.zeros((5, 4, 4), np.uint32))
    other = FakeLayer(name="small", _type_string="labels", multiscale=False, data=np.zeros((2, 4, 4), np.uint32))
    assert layers.labels_of_shape([img, fit, other], (5, 4, 4)) == {"masks": fit.data}


def test_training_pairs_by_name_and_check_pair():
    img = image_layer(np.zeros((3, 8, 8), np.uint8), _type_string="image")
    lab = FakeLayer(name="lab", _type_string="labels", multiscale=False, data=np.zeros((3, 8, 8), np.uint32))
    by_name = {"img": img, "lab": lab}
    (pair,) = layers.training_pairs_by_name(by_name, [("img", "lab", "components")])
    assert pair.name == "img" and pair.objects == "components" and pair.labels is lab.data
    for pairs, words in (([], "no training data"), ([("", "lab", "instances")], "no training data"),
                         ([("gone", "lab", "instances")], "no longer in the viewer"),
                         ([("lab", "lab", "instances")], "not an image"), ([("img", "img", "instances")], "not a labels")):
        with pytest.raises(layers.LayerError, match=words):
            layers.training_pairs_by_name(by_name, pairs)
    assert layers.check_pair([], "img", "lab", "instances") == ("img", "lab", "instances")
    for args, words in ((("", "lab"), "choose an image"), (("img", "lab", "ink"), "objects must be"),
                        (("img", "lab", "instances"), "already")):
        with pytest.raises(layers.LayerError, match=words):
            layers.check_pair([("img", "lab", "instances")], *args)


def test_layer_kind_through_naparis_plugin_proxy_does_not_warn():
    """A plugin's viewer is napari's public-only proxy: reading ``_type_string`` through it warns
    (and goes away in napari 0.10); the kind comes from the layer's class."""
    import warnings

    from napari.components import ViewerModel
    from napari.utils._proxies import PublicOnlyProxy

    from napari_scroll_sam.layers import labels_of_shape, layer_kind

    v = ViewerModel()
    v.add_labels(np.zeros((3, 4, 4), np.uint8), name="lab")
    v.add_image(np.zeros((3, 4, 4)), name="img")
    v.add_points(name="pts")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        layers = PublicOnlyProxy(v).layers
        assert [layer_kind(ly) for ly in layers] == ["labels", "image", "points"]
        assert list(labels_of_shape(layers, (3, 4, 4))) == ["lab"] and not labels_of_shape(layers, (2, 4, 4))
