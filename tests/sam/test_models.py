"""SAM models: configurations, checkpoints (both formats), downloads, devices."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import threading
from functools import partial

import numpy as np
import pytest
import torch

import napari_scroll_sam.sam as S
from napari_scroll_sam.sam import models
from napari_scroll_sam.sam.models import CONFIGS, ModelError, SamConfig

TINY = SamConfig("tiny", img_size=64, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                 encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=2,
                 prompt_embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2,
                 iou_head_hidden_dim=32)
OTHER = dataclasses.replace(TINY, name="other", encoder_embed_dim=48, encoder_depth=3,
                            encoder_global_attn_indexes=(2,))


def tiny_sam(seed=0, config=TINY):
    torch.manual_seed(seed)
    return S.build_sam(config)


def state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def decode(sam, seed=1, grad=False):
    """Masks and IoU predictions for one point on a fixed random image."""
    g = torch.Generator().manual_seed(seed)
    size = sam.image_encoder.img_size
    image = torch.rand((1, 3, size, size), generator=g) * 255
    with torch.set_grad_enabled(grad):
        emb = sam.image_encoder(sam.preprocess(image))
        sparse, dense = sam.prompt_encoder(
            points=(torch.tensor([[[size / 3, size / 2]]]), torch.tensor([[1]])), boxes=None,
            masks=None)
        low, iou = sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                                    sparse_prompt_embeddings=sparse,
                                    dense_prompt_embeddings=dense, multimask_output=True)
    return low, iou


# ----------------------------------------------------------------------------- configurations

@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_configs_build_exactly_metas_models(name):
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        ours = S.build_sam(name).state_dict()
        theirs = sam_model_registry[name]().state_dict()
    assert ours.keys() == theirs.keys()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert S.infer_config(ours) == CONFIGS[name]


def test_small_config_is_small_and_works():
    sam = S.build_sam("small")
    assert not sam.training
    assert sum(p.numel() for p in sam.parameters()) == 1_854_144
    low, iou = decode(sam)
    assert low.shape == (1, 3, 64, 64) and iou.shape == (1, 3)
    assert S.infer_config(sam.state_dict()) == CONFIGS["small"]


def test_config_dict_roundtrip_and_validation():
    d = TINY.to_dict()
    assert d["encoder_global_attn_indexes"] == [1]
    assert all(isinstance(v, (int, str, list)) for v in d.values())
    assert SamConfig.from_dict(d) == TINY
    with pytest.raises(ModelError, match="unknown SAM configuration keys.*'colour'"):
        SamConfig.from_dict({**d, "colour": 1})
    with pytest.raises(ModelError, match="incomplete"):
        SamConfig.from_dict({"name": "x"})
    with pytest.raises(ModelError, match="not a multiple of patch_size"):
        dataclasses.replace(TINY, img_size=70)
    with pytest.raises(ModelError, match="unknown SAM configuration 'vit_q'.*vit_b"):
        S.build_sam("vit_q")


# ----------------------------------------------------------------------------- checkpoints

def test_project_checkpoint_roundtrip(tmp_path):
    sam = tiny_sam(0)
    optimizer = torch.optim.AdamW(sam.mask_decoder.parameters(), lr=1e-3)
    low, iou = decode(sam, grad=True)
    (low.mean() + iou.mean()).backward()
    optimizer.step()
    path = tmp_path / "ckpt" / "tiny.pt"
    written = S.save_checkpoint(path, sam, TINY, step=7, best_score=np.float64(0.75),
                                optimizer=optimizer.state_dict(),
                                sampling={"mode": "tuples", "d": 2}, window=(0.0, 255.0))
    assert written == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["tiny.pt"]  # no temporary left

    model = S.load_model(path, device="cpu")
    assert model.config == TINY and model.img_size == 64 and model.device == torch.device("cpu")
    assert model.source == path and model.model_id.startswith("tiny:")
    assert not model.sam.training
    assert state_equal(model.sam, sam)
    assert all(torch.equal(a, b) for a, b in zip(decode(model.sam), decode(sam)))

    ckpt = S.read_checkpoint(path)
    assert ckpt["format"] == "napari-scroll-sam/1" and ckpt["config"] == TINY
    extra = ckpt["extra"]
    assert extra["step"] == 7 and extra["best_score"] == 0.75
    assert type(extra["best_score"]) is float
    assert extra["sampling"] == {"mode": "tuples", "d": 2} and extra["window"] == (0.0, 255.0)
    restored = torch.optim.AdamW(sam.mask_decoder.parameters(), lr=1e-3)
    restored.load_state_dict(extra["optimizer"])
    assert restored.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]

    # the id follows the weights
    again = S.load_model(path, device="cpu")
    assert again.model_id == model.model_id
    with torch.no_grad():
        sam.mask_decoder.iou_token.weight += 1
    S.save_checkpoint(path, S.SamModel(sam, TINY, torch.device("cpu"), "x", "x"))
    changed = S.load_model(path, device="cpu")
    assert changed.model_id != model.model_id
    assert torch.equal(changed.sam.mask_decoder.iou_token.weight, sam.mask_decoder.iou_token.weight)


def test_meta_state_dict_loads_with_inferred_config(tmp_path):
    config = dataclasses.replace(TINY, decoder_num_heads=8)  # heads do not show in shapes: 8 is
    sam = tiny_sam(3, config)                                 # assumed, as in Meta's models
    path = tmp_path / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    model = S.load_model(str(path), device="cpu")
    assert model.config == dataclasses.replace(config, name="custom")
    assert state_equal(model.sam, sam)
    assert all(torch.equal(a, b) for a, b in zip(decode(model.sam), decode(sam)))
    # the caller can say what it is (here: the decoder heads the shapes cannot tell)
    named = S.load_model(path, device="cpu", config=TINY)
    assert named.config == TINY and named.model_id.startswith("tiny:")
    # a DataParallel-style state dict and a {"model": sd} wrapper load too
    torch.save({"model": {"module." + k: v for k, v in sam.state_dict().items()}},
               tmp_path / "wrapped.pth")
    assert state_equal(S.load_model(tmp_path / "wrapped.pth", device="cpu").sam, sam)
    # a known configuration is recognised by its shapes
    small = S.build_sam("small")
    torch.save(small.state_dict(), tmp_path / "small_plain.pth")
    assert S.load_model(tmp_path / "small_plain.pth", device="cpu").config == CONFIGS["small"]


def test_fp16_checkpoints_load_as_float32(tmp_path):
    sam = tiny_sam(1)
    full = S.save_checkpoint(tmp_path / "full.pt", sam, TINY)
    half = S.save_checkpoint(tmp_path / "half.pt", sam, TINY, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    raw = torch.load(half, map_location="cpu", weights_only=True)
    assert raw["model"]["mask_decoder.iou_token.weight"].dtype == torch.float16
    torch.save({k: v.half() for k, v in sam.state_dict().items()}, tmp_path / "meta_half.pth")
    for path in (half, tmp_path / "meta_half.pth"):
        model = S.load_model(path, device="cpu", config=TINY)
        dtypes = {t.dtype for t in model.sam.state_dict().values() if t.is_floating_point()}
        assert dtypes == {torch.float32}
        for k, v in sam.state_dict().items():
            torch.testing.assert_close(model.sam.state_dict()[k], v, atol=2e-3, rtol=1e-3)
        low, _ = decode(model.sam)
        assert torch.isfinite(low).all()


def test_wrong_model_names_the_look_alike(tmp_path):
    torch.save(S.build_sam("small").state_dict(), tmp_path / "x.pth")
    with pytest.raises(ModelError) as err:
        S.load_model(tmp_path / "x.pth", device="cpu", config="vit_b")
    msg = str(err.value)
    assert str(tmp_path / "x.pth") in msg and "does not fit vit_b" in msg
    assert "it looks like small (embed 128, 4 blocks, image 256)" in msg
    assert "differ in shape" in msg

    torch.save(tiny_sam(0, OTHER).state_dict(), tmp_path / "other.pth")
    with pytest.raises(ModelError, match=r"does not fit tiny .*unlisted SAM \(embed 48, 3 blocks"):
        S.load_model(tmp_path / "other.pth", device="cpu", config=TINY)

    S.save_checkpoint(tmp_path / "other.pt", tiny_sam(0, OTHER), OTHER)
    with pytest.raises(ModelError, match="does not fit tiny.*holds a other"):
        S.load_model(tmp_path / "other.pt", device="cpu", config=TINY)

    # a file that does not fit its own stored config
    sd = tiny_sam(0).state_dict()
    del sd["mask_decoder.iou_token.weight"]
    torch.save({"format": "napari-scroll-sam/1", "config": TINY.to_dict(), "model": sd},
               tmp_path / "broken.pt")
    with pytest.raises(ModelError, match=r"broken.pt does not fit tiny.*1 missing .*iou_token"):
        S.load_model(tmp_path / "broken.pt", device="cpu")


def test_truncated_corrupt_and_foreign_files(tmp_path):
    path = S.save_checkpoint(tmp_path / "t.pt", tiny_sam(), TINY)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"t\.pt is not a readable checkpoint \(corrupt or truncated"):
        S.load_model(path, device="cpu")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="empty.pt is not a readable checkpoint"):
        S.load_model(tmp_path / "empty.pt", device="cpu")
    with pytest.raises(ModelError, match="missing.pt: no such checkpoint file"):
        S.load_model(tmp_path / "missing.pt", device="cpu")
    with pytest.raises(ModelError, match="is a folder"):
        S.load_model(tmp_path, device="cpu")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ModelError, match="list.pt is not a SAM checkpoint"):
        S.load_model(tmp_path / "list.pt", device="cpu")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "resnet.pt")
    with pytest.raises(ModelError, match="resnet.pt does not fit any SAM.*does not look like a SAM"):
        S.load_model(tmp_path / "resnet.pt", device="cpu")
    torch.save({"format": "napari-scroll-sam/9", "config": {}, "model": {}}, tmp_path / "new.pt")
    with pytest.raises(ModelError, match="format 'napari-scroll-sam/9' is not one this version"):
        S.load_model(tmp_path / "new.pt", device="cpu")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused_unread(tmp_path, capfd):
    path = tmp_path / "evil.pth"
    torch.save({"model": _Evil(), "image_encoder.pos_embed": torch.zeros(1)}, path)
    with pytest.raises(ModelError, match="evil.pth holds Python objects.*weights_only=True"):
        S.load_model(path, device="cpu")
    with pytest.raises(ModelError):
        S.read_checkpoint(path)
    assert "pwned" not in capfd.readouterr().out
    # and save_checkpoint refuses to write what could not be read back
    with pytest.raises(ModelError, match="extra 'hook' is a _Evil"):
        S.save_checkpoint(tmp_path / "x.pt", tiny_sam(), TINY, hook=_Evil())
    with pytest.raises(ModelError, match="may not be named"):
        S.save_checkpoint(tmp_path / "x.pt", tiny_sam(), TINY, model=1)
    assert not (tmp_path / "x.pt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["evil.pth"]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ModelError) as err:
        S.load_model("vit_x")
    msg = str(err.value)
    assert "unknown model 'vit_x'" in msg
    assert all(name in msg for name in ("vit_b", "vit_l", "vit_h", "small"))
    with pytest.raises(ModelError, match="no such checkpoint"):
        S.load_model("no/such/file.pth")


def test_small_without_packaged_weights_is_seeded_random(caplog, monkeypatch, tmp_path):
    monkeypatch.setattr(models, "PACKAGED_WEIGHTS", tmp_path / "none")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with caplog.at_level(logging.WARNING, logger="napari_scroll_sam.sam.models"):
        a = S.load_model("small")
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random stream is untouched
    assert "random weights" in caplog.text
    b = S.load_model("small", device="cpu")
    assert a.model_id == b.model_id == "small:random" and a.source == "small"
    assert a.config == CONFIGS["small"] and state_equal(a.sam, b.sam)
    summary = S.model_summary(a)
    assert summary == {"name": "small", "params": 1_854_144, "img_size": 256, "device": "cpu",
                       "model_id": "small:random", "source": "small"}
    assert S.model_summary(a.sam)["params"] == 1_854_144

    # trained weights shipped in the package (issue 5) are used instead
    folder = tmp_path / "weights"
    trained = S.build_sam("small")
    with torch.no_grad():
        trained.mask_decoder.iou_token.weight.fill_(0.5)
    S.save_checkpoint(folder / "small.pt", trained, "small", dtype=torch.float16)
    monkeypatch.setattr(models, "PACKAGED_WEIGHTS", folder)
    packaged = S.load_model("small", device="cpu")
    assert packaged.model_id.startswith("small:") and packaged.model_id != "small:random"
    assert packaged.source == folder / "small.pt"
    assert torch.all(packaged.sam.mask_decoder.iou_token.weight == 0.5)


def test_loaded_model_drives_segment_anythings_predictor(tmp_path):
    from segment_anything import SamPredictor

    path = S.save_checkpoint(tmp_path / "t.pt", tiny_sam(), TINY)
    predictor = SamPredictor(S.load_model(path, device="cpu").sam)
    image = np.random.default_rng(0).integers(0, 255, (50, 40, 3), dtype=np.uint8)
    predictor.set_image(image)
    assert predictor.features.shape == (1, 32, 4, 4)
    masks, scores, logits = predictor.predict(point_coords=np.array([[20, 25]]),
                                              point_labels=np.array([1]))
    assert masks.shape == (3, 50, 40) and masks.dtype == bool
    assert scores.shape == (3,) and logits.shape == (3, 16, 16)


# ----------------------------------------------------------------------------- devices

def test_devices(tmp_path):
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    auto = S.resolve_device()
    assert auto.type == ("cuda" if cuda else "mps" if mps else "cpu")
    assert S.resolve_device("auto") == auto and S.resolve_device(None) == auto
    assert S.resolve_device("cpu") == torch.device("cpu")
    assert S.resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not cuda:
        with pytest.raises(ModelError, match=r"device 'cuda' is not available.*available: cpu"):
            S.resolve_device("cuda")
    if torch.cuda.device_count() <= 3:
        with pytest.raises(ModelError, match=r"'cuda:3' is not available"):
            S.resolve_device("cuda:3")
    if not mps:
        with pytest.raises(ModelError, match="'mps' is not available"):
            S.resolve_device("mps")
    with pytest.raises(ModelError, match="unknown device 'gpu please'"):
        S.resolve_device("gpu please")
    path = S.save_checkpoint(tmp_path / "t.pt", tiny_sam(), TINY)
    model = S.load_model(path, device="cpu")
    assert model.device == torch.device("cpu")
    assert {p.device.type for p in model.sam.parameters()} == {"cpu"}
    assert model.to("cpu").device == torch.device("cpu")
    if not cuda:
        with pytest.raises(ModelError, match="not available"):
            S.load_model(path, device="cuda")


# ----------------------------------------------------------------------------- downloads

@pytest.fixture
def weights_server(tmp_path):
    """A local HTTP server over tmp_path/'srv'; yields (base_url, folder, requested paths)."""
    folder = tmp_path / "srv"
    folder.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder, hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_download_verify_cache(weights_server, tmp_path, monkeypatch):
    base, folder, hits = weights_server
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(cache))
    monkeypatch.delenv("NAPARI_SCROLL_SAM_WEIGHTS_URL", raising=False)
    sam = tiny_sam(5)
    S.save_checkpoint(folder / "sam_tiny_test.pth", sam, TINY)
    sha = hashlib.sha256((folder / "sam_tiny_test.pth").read_bytes()).hexdigest()
    monkeypatch.setitem(models.WEIGHTS, "tiny_test", (base + "sam_tiny_test.pth", sha,
                                                      "sam_tiny_test.pth"))
    monkeypatch.setitem(models.WEIGHTS, "tiny_bad", (base + "sam_tiny_test.pth", "0" * 64,
                                                     "sam_tiny_bad.pth"))
    assert S.cache_dir() == cache

    model = S.load_model("tiny_test", device="cpu", progress=False)
    assert hits == ["/sam_tiny_test.pth"]
    assert model.model_id == f"tiny_test:{sha[:12]}" and model.config == TINY
    assert model.source == cache / "sam_tiny_test.pth" and state_equal(model.sam, sam)
    again = S.load_model("tiny_test", device="cpu", progress=False)
    assert len(hits) == 1 and again.model_id == model.model_id  # cached, not fetched again
    by_path = S.load_model(cache / "sam_tiny_test.pth", device="cpu")
    assert by_path.model_id == model.model_id  # the same checked file, the same id

    with pytest.raises(ModelError) as err:
        S.download_weights("tiny_bad", progress=False)
    msg = str(err.value)
    assert "sam_tiny_bad.pth" in msg and base in msg and "removed" in msg
    assert len(hits) == 2
    assert sorted(p.name for p in cache.iterdir()) == ["sam_tiny_test.pth",
                                                       "sam_tiny_test.pth.verified"]

    # a mirror replaces the base URL; an explicit cache folder wins over the variable
    monkeypatch.setitem(models.WEIGHTS, "tiny_mirror", (
        "https://dl.fbaipublicfiles.com/segment_anything/sam_tiny_test.pth", sha,
        "sam_tiny_test.pth"))
    monkeypatch.setenv("NAPARI_SCROLL_SAM_WEIGHTS_URL", base + "mirror")
    (folder / "mirror").mkdir()
    (folder / "mirror" / "sam_tiny_test.pth").write_bytes((folder / "sam_tiny_test.pth").read_bytes())
    got = S.download_weights("tiny_mirror", cache=tmp_path / "other", progress=False)
    assert hits[-1] == "/mirror/sam_tiny_test.pth" and got == tmp_path / "other" / "sam_tiny_test.pth"

    # a server without the file: the error says where it looked and what to do offline
    monkeypatch.setitem(models.WEIGHTS, "tiny_gone", (base + "gone.pth", sha, "gone.pth"))
    monkeypatch.delenv("NAPARI_SCROLL_SAM_WEIGHTS_URL")
    with pytest.raises(ModelError, match=r"could not download 'tiny_gone' weights from http.*gone\.pth"):
        S.load_model("tiny_gone", device="cpu", progress=False)
    assert not (cache / "gone.pth").exists()


def test_registry_matches_meta():
    assert set(S.WEIGHTS) == {"vit_b", "vit_l", "vit_h"}
    for name, (url, sha, filename) in S.WEIGHTS.items():
        assert url == "https://dl.fbaipublicfiles.com/segment_anything/" + filename
        assert len(sha) == 64 and filename.startswith(f"sam_{name}_") and sha.startswith(
            {"vit_b": "ec2df627", "vit_l": "3adcc431", "vit_h": "a7bf3b02"}[name])


def test_download_reports(weights_server, tmp_path, monkeypatch):
    from napari_scroll_sam.sam.weights import DownloadReport, download_reports

    base, folder, hits = weights_server
    monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NAPARI_SCROLL_SAM_WEIGHTS_URL", raising=False)
    S.save_checkpoint(folder / "sam_tiny_test.pth", tiny_sam(5), TINY)
    size = (folder / "sam_tiny_test.pth").stat().st_size
    sha = hashlib.sha256((folder / "sam_tiny_test.pth").read_bytes()).hexdigest()
    monkeypatch.setitem(models.WEIGHTS, "tiny_test", (base + "sam_tiny_test.pth", sha, "sam_tiny_test.pth"))
    monkeypatch.setitem(models.WEIGHTS, "tiny_bad", (base + "sam_tiny_test.pth", "0" * 64, "sam_tiny_bad.pth"))

    def drain(gen):
        reports = []
        while True:
            try:
                reports.append(next(gen))
            except StopIteration as stop:
                return reports, stop.value

    reports, path = drain(download_reports("tiny_test", every_s=0.001))
    assert path == tmp_path / "cache" / "sam_tiny_test.pth" and path.stat().st_size == size
    assert all(isinstance(r, DownloadReport) and r.name == "tiny_test" for r in reports)
    assert [r.finished for r in reports] == [False] * (len(reports) - 1) + [True]
    assert reports[-1].done == reports[-1].total == size
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert drain(download_reports("tiny_test")) == ([], path) and hits == ["/sam_tiny_test.pth"]  # cached
    assert drain(download_reports("small")) == ([], None)  # nothing to download
    gen = download_reports("tiny_bad")
    with pytest.raises(ModelError, match="expected SHA256"):
        reports = [next(gen) for _ in range(10_000)]
    assert S.load_model("tiny_test", device="cpu", progress=False).source == path


def test_closing_the_download_reports_cancels_the_transfer(tmp_path, monkeypatch):
    """A slow mirror: closing the reports (the widget's cancel) stops the transfer thread at its
    next chunk, and nothing is left in the cache, neither the file nor pooch's temporary one."""
    import time

    from napari_scroll_sam.sam.weights import download_reports

    body = b"x" * 200_000

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 1000):
                    self.wfile.write(body[i:i + 1000])
                    self.wfile.flush()
                    time.sleep(0.01)  # 2 s in all
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cache = tmp_path / "cache"
        monkeypatch.setenv("NAPARI_SCROLL_SAM_CACHE", str(cache))
        monkeypatch.delenv("NAPARI_SCROLL_SAM_WEIGHTS_URL", raising=False)
        url = f"http://127.0.0.1:{server.server_address[1]}/sam_slow.pth"
        monkeypatch.setitem(models.WEIGHTS, "tiny_slow", (url, hashlib.sha256(body).hexdigest(), "sam_slow.pth"))
        gen = download_reports("tiny_slow", every_s=0.02)
        first = [next(gen) for _ in range(5)]
        assert not any(r.finished for r in first)
        t = time.perf_counter()
        gen.close()
        assert time.perf_counter() - t < 1.5  # the transfer stopped, it did not run to its end
        assert not [th for th in threading.enumerate() if th.name == "download tiny_slow"]
        assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
    finally:
        server.shutdown()
        server.server_close()
