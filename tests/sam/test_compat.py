"""segment_anything with a real, a broken (CUDA-built) or no torchvision.

Each path runs in a fresh interpreter (``sys.modules`` and torch's operator registry are
process-wide). The pure-torch stand-ins are also checked in-process against brute force.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from napari_scroll_sam.sam import _compat

# a fresh interpreter: build a tiny SAM, run SamPredictor and the automatic mask generator
# (resize, to_pil_image, batched_nms, box_area), report as JSON on the last line
COMMON = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from napari_scroll_sam.sam import _compat, build_sam, SamConfig
    import segment_anything.utils.transforms as T
    import segment_anything.automatic_mask_generator as A
    from segment_anything import SamPredictor, SamAutomaticMaskGenerator

    TINY = SamConfig("tiny", img_size=64, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                     encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=2,
                     prompt_embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2,
                     iou_head_hidden_dim=32)
    torch.manual_seed(0)
    sam = build_sam(TINY)
    image = np.random.default_rng(0).integers(0, 255, (50, 40, 3), dtype=np.uint8)
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(point_coords=np.array([[20, 25]]),
                                         point_labels=np.array([1]))
    generator = SamAutomaticMaskGenerator(sam, points_per_side=4, pred_iou_thresh=-10,
                                          stability_score_thresh=-10, crop_n_layers=1)
    found = generator.generate(image)
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand((300, 4), generator=g) * 100
    boxes[:, 2:] += boxes[:, :2] + 1
    box_scores, classes = torch.rand(300, generator=g), torch.randint(0, 3, (300,), generator=g)
    result = {
        "path": _compat.TORCHVISION, "again": _compat.ensure_segment_anything(),
        "problem": _compat.TORCHVISION_PROBLEM,
        "tv_in_sys_modules": "torchvision" in sys.modules,
        "resize": T.resize.__module__ + "." + T.resize.__qualname__,
        "resize_is_stub": T.resize is _compat.resize and T.to_pil_image is _compat.to_pil_image,
        "nms_is_stub": A.batched_nms is _compat.batched_nms and A.box_area is _compat.box_area,
        "masks": list(masks.shape), "mask_dtype": str(masks.dtype), "scores": list(scores.shape),
        "generated": len(found),
        "generated_ok": all(m["segmentation"].shape == (50, 40) for m in found),
        "batched_nms_matches": torch.equal(A.batched_nms(boxes, box_scores, classes, 0.5),
                                           _compat.batched_nms(boxes, box_scores, classes, 0.5)),
    }
""")


def run_python(code: str, tmp_path: Path, pythonpath: Path | None = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # tiny models: threads only contend
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


FAKE_FUNCTIONAL = """
    import numpy as np
    from PIL import Image
    FAKE = True
    def resize(img, size, *args, **kwargs):
        return img.resize((size[1], size[0]), Image.BILINEAR)
    def to_pil_image(pic, mode=None):
        return Image.fromarray(np.asarray(pic))
"""
FAKE_TRANSFORMS = {
    "torchvision/transforms/__init__.py": "from . import functional\n",
    "torchvision/transforms/functional.py": FAKE_FUNCTIONAL,
}


def assert_segment_anything_ran(out: dict) -> None:
    assert out["again"] == out["path"]  # idempotent
    assert out["masks"] == [3, 50, 40] and out["mask_dtype"] == "bool" and out["scores"] == [3]
    assert out["generated"] > 0 and out["generated_ok"]
    assert out["batched_nms_matches"]


# ----------------------------------------------------------------------------- the three paths

def test_without_torchvision_the_stand_ins_serve(tmp_path):
    # hide any installed torchvision, as on the CPU machines where none is installed
    block = textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torchvision":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
    """)
    tail = textwrap.dedent("""
        result["stub_marked"] = all(m.__napari_scroll_sam_stub__ for m in _compat.STUBS.values())
        result["stub_names"] = sorted(_compat.STUBS)
        try:
            import torchvision
            result["import_after"] = "imported"
        except ImportError:
            result["import_after"] = "ImportError"
        try:
            _compat.STUBS["torchvision.transforms"].Compose
        except AttributeError as exc:
            result["stub_missing"] = str(exc)
        print(json.dumps(result))
    """)
    out = run_python(block + COMMON + tail, tmp_path)
    assert out["path"] == "stub" and "No module named 'torchvision'" in out["problem"]
    assert out["resize_is_stub"] and out["nms_is_stub"]
    assert out["stub_marked"] and out["stub_names"] == [
        "torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
        "torchvision.transforms.functional"]
    # the stand-ins were only there while segment_anything imported
    assert not out["tv_in_sys_modules"] and out["import_after"] == "ImportError"
    assert "stand-in" in out["stub_missing"]
    assert_segment_anything_ran(out)


def test_a_working_torchvision_is_used_as_is(tmp_path):
    root = write_package(tmp_path / "fake", {
        "torchvision/__init__.py": "__version__ = '0.0.fake'\nfrom . import ops, transforms\n",
        "torchvision/ops/__init__.py": "from .boxes import batched_nms, box_area\n",
        "torchvision/ops/boxes.py": """
            from napari_scroll_sam.sam._compat import batched_nms as _b, box_area as _a
            FAKE = True
            def batched_nms(boxes, scores, idxs, iou_threshold):
                return _b(boxes, scores, idxs, iou_threshold)
            def box_area(boxes):
                return _a(boxes)
        """,
        **FAKE_TRANSFORMS,
    })
    tail = textwrap.dedent("""
        import torchvision
        result["version"] = torchvision.__version__
        result["same"] = (T.resize is torchvision.transforms.functional.resize
                          and T.to_pil_image is torchvision.transforms.functional.to_pil_image
                          and A.batched_nms is torchvision.ops.boxes.batched_nms
                          and A.box_area is torchvision.ops.boxes.box_area)
        result["stubs"] = len(_compat.STUBS)
        print(json.dumps(result))
    """)
    out = run_python(COMMON + tail, tmp_path, pythonpath=root)
    assert out["path"] == "real" and out["problem"] == ""
    assert out["version"] == "0.0.fake" and out["same"] and out["tv_in_sys_modules"]
    assert out["resize"] == "torchvision.transforms.functional.resize"
    assert not out["resize_is_stub"] and not out["nms_is_stub"] and out["stubs"] == 0
    assert_segment_anything_ran(out)


# A torchvision built for CUDA next to a CPU torch, as torchvision 0.28 behaves: _C does not
# load, _meta_registrations registers fake kernels for nms/qnms (which fails with "operator
# torchvision::nms does not exist" unless someone defined them), and ops.nms asserts _C.
BROKEN = {
    "torchvision/__init__.py": """
        import torch
        from . import extension
        from . import _meta_registrations
        from . import ops, transforms
        __version__ = '0.0.fake+cu'
    """,
    "torchvision/extension.py": """
        def _has_ops():
            return False
        def _assert_has_ops():
            raise RuntimeError("Couldn't load custom C++ ops.")
    """,
    "torchvision/_meta_registrations.py": """
        import torch
        @torch.library.register_fake("torchvision::nms")
        def meta_nms(dets, scores, iou_threshold):
            return dets.new_empty(torch.library.get_ctx().new_dynamic_size(), dtype=torch.long)
        @torch.library.register_fake("torchvision::qnms")
        def meta_qnms(dets, scores, iou_threshold):
            return dets.new_empty(torch.library.get_ctx().new_dynamic_size(), dtype=torch.long)
    """,
    "torchvision/ops/__init__.py": "from .boxes import nms, batched_nms, box_area\n",
    "torchvision/ops/boxes.py": """
        import torch
        from torchvision.extension import _assert_has_ops
        def nms(boxes, scores, iou_threshold):
            _assert_has_ops()
            return torch.ops.torchvision.nms(boxes, scores, iou_threshold)
        def batched_nms(boxes, scores, idxs, iou_threshold):
            if boxes.numel() == 0:
                return torch.empty((0,), dtype=torch.int64, device=boxes.device)
            offsets = idxs.to(boxes) * (boxes.max() + 1)
            return nms(boxes + offsets[:, None], scores, iou_threshold)
        def box_area(boxes):
            return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    """,
    **FAKE_TRANSFORMS,
}

PATCHED_TAIL = textwrap.dedent("""
    import torchvision
    result["version"] = torchvision.__version__
    result["same"] = A.batched_nms is torchvision.ops.boxes.batched_nms
    result["op"] = hasattr(torch.ops.torchvision, "nms") and hasattr(torch.ops.torchvision, "qnms")
    keep = torchvision.ops.nms(boxes, box_scores, 0.5)
    result["nms_matches"] = torch.equal(keep, _compat.nms(boxes, box_scores, 0.5))
    print(json.dumps(result))
""")


def test_a_broken_cuda_torchvision_gets_its_operators(tmp_path):
    root = write_package(tmp_path / "fake", BROKEN)
    out = run_python(COMMON + PATCHED_TAIL, tmp_path, pythonpath=root)
    assert out["path"] == "patched-ops"
    assert "operator torchvision::nms does not exist" in out["problem"]
    assert out["version"] == "0.0.fake+cu" and out["tv_in_sys_modules"] and out["same"]
    assert out["op"] and out["nms_matches"] and not out["nms_is_stub"]
    assert out["resize"] == "torchvision.transforms.functional.resize"
    assert_segment_anything_ran(out)


@pytest.mark.parametrize("error", [
    'RuntimeError("operator torchvision::roi_align does not exist")',  # not one we define
    'AttributeError("module torch.library has no attribute register_fake")',  # too new
])
def test_a_torchvision_that_stays_broken_falls_back_to_stand_ins(tmp_path, error):
    root = write_package(tmp_path / "fake", {"torchvision/__init__.py": f"raise {error}\n"})
    out = run_python(COMMON + "print(json.dumps(result))\n", tmp_path, pythonpath=root)
    assert out["path"] == "stub" and error.split("(")[0] in out["problem"]
    assert out["resize_is_stub"] and out["nms_is_stub"] and not out["tv_in_sys_modules"]
    assert_segment_anything_ran(out)


def _torchvision_wheel() -> str | None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found = [os.environ.get("NAPARI_SCROLL_SAM_TORCHVISION_WHEEL", "")]
    found += sorted(glob.glob(f"/tmp/tvdl/torchvision-*-{tag}-*.whl"))
    return next((f for f in found if f and os.path.isfile(f)), None)


@pytest.mark.skipif(_torchvision_wheel() is None,
                    reason="no torchvision wheel at $NAPARI_SCROLL_SAM_TORCHVISION_WHEEL or /tmp/tvdl")
def test_the_real_torchvision_wheel(tmp_path):
    """PyPI's torchvision (a CUDA build) imports through whichever path this torch needs."""
    root = tmp_path / "tv"
    with zipfile.ZipFile(_torchvision_wheel()) as wheel:
        wheel.extractall(root)
    out = run_python(COMMON + PATCHED_TAIL, tmp_path, pythonpath=root)
    assert out["path"] in ("real", "patched-ops")
    if out["path"] == "patched-ops":
        assert "operator torchvision::nms does not exist" in out["problem"] and out["op"]
    assert out["tv_in_sys_modules"] and out["same"] and out["nms_matches"]
    assert out["resize"] == "torchvision.transforms.functional.resize"
    assert_segment_anything_ran(out)


# ----------------------------------------------------------------------------- the stand-ins

def reference_batched_nms(boxes, scores, classes, threshold):
    """Brute force: visit boxes by falling score, keep one unless it overlaps a kept one of
    its class by IoU > threshold."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union

    boxes, scores, classes = boxes.tolist(), scores.tolist(), classes.tolist()
    kept = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(classes[j] != classes[i] or iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_batched_nms_equals_brute_force(seed, threshold):
    g = torch.Generator().manual_seed(seed)
    n = 150
    corners = torch.rand((n, 2), generator=g, dtype=torch.float64) * 60
    sizes = 15 + torch.rand((n, 2), generator=g, dtype=torch.float64) * 30
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    classes = torch.randint(0, 3, (n,), generator=g)
    keep = _compat.batched_nms(boxes, scores, classes, threshold)
    assert keep.dtype == torch.int64
    expected = reference_batched_nms(boxes, scores, classes, threshold)
    assert keep.tolist() == expected and 0 < len(expected) < n
    one_class = torch.zeros_like(classes)
    assert _compat.nms(boxes, scores, threshold).tolist() == reference_batched_nms(
        boxes, scores, one_class, threshold)
    assert _compat.batched_nms(boxes.float(), scores.float(), classes, threshold).tolist() == expected


def test_nms_edge_cases():
    empty = torch.zeros((0, 4))
    assert _compat.nms(empty, torch.zeros(0), 0.5).tolist() == []
    assert _compat.batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).tolist() == []
    same = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30.0]])
    assert _compat.nms(same, torch.tensor([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]
    assert _compat.batched_nms(same, torch.tensor([0.5, 0.9, 0.1]), torch.tensor([0, 1, 0]),
                               0.5).tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        _compat.nms(torch.zeros((3, 5)), torch.zeros(3), 0.5)
    ints = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11]])
    assert _compat.box_area(ints).tolist() == [100, 100]
    assert _compat.box_area(torch.tensor([[1.0, 2.0, 4.0, 6.0]])).tolist() == [12.0]
    assert _compat.box_area(torch.tensor([[1.0, 2.0, 4.0, 6.0]]), fmt="xywh").tolist() == [24.0]


def test_resize_and_to_pil_image_behave_like_torchvision():
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    pil = _compat.to_pil_image(image)
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (53, 37)
    assert np.array_equal(np.asarray(pil), image)
    small = _compat.resize(pil, [20, 30])  # [h, w]
    assert small.size == (30, 20)
    arr = np.asarray(small)
    assert arr.shape == (20, 30, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, np.asarray(Image.fromarray(image).resize((30, 20), Image.BILINEAR)))
    assert _compat.resize(pil, 20).size == (28, 20)  # an int matches the shorter edge
    assert _compat.to_pil_image(image[:, :, 0]).mode == "L"
    assert _compat.to_pil_image(np.zeros((4, 5, 4), np.uint8)).mode == "RGBA"
    assert np.asarray(_compat.to_pil_image(np.full((4, 5), 0.5, np.float32))).max() == 127
    tensor = torch.rand(3, 10, 12)
    from_tensor = np.asarray(_compat.to_pil_image(tensor))
    assert from_tensor.shape == (10, 12, 3)
    assert np.array_equal(from_tensor, tensor.mul(255).byte().permute(1, 2, 0).numpy())
    t = _compat.resize(torch.rand(2, 3, 37, 53), [20, 30])
    assert t.shape == (2, 3, 20, 30) and t.dtype == torch.float32
    t8 = _compat.resize(torch.randint(0, 255, (3, 37, 53), dtype=torch.uint8), [20])
    assert t8.shape == (3, 20, 28) and t8.dtype == torch.uint8
    # segment_anything's own use
    from segment_anything.utils.transforms import ResizeLongestSide
    out = ResizeLongestSide(64).apply_image(image)
    assert out.shape == (45, 64, 3) and out.dtype == np.uint8
