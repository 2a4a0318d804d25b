"""Remote zarr over HTTP: a server on 127.0.0.1 started by each test (never another address)."""

from __future__ import annotations

import collections
import functools
import http.server
import socket
import threading
import time

import numpy as np
import pytest

from napari_scroll_sam import VolumeError, open_volume
from napari_scroll_sam.io.reader import get_reader
from tests.helpers import write_ome_zarr

pytest.importorskip("aiohttp")


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; counts GETs per path; ``plan`` gives scripted answers per path."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        path = self.path.split("?")[0]
        with srv.lock:
            srv.requests[path] += 1
            n = srv.requests[path]
        for match, action in srv.plan:
            if match(path):
                if action(self, n):
                    return
        super().do_GET()


def _too_many_twice(handler, n):
    if n <= 2:
        handler.send_response(429)
        handler.send_header("Retry-After", "0")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    return False


def _status(code):
    def act(handler, n):
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
    return act


def _hang(handler, n):
    time.sleep(3)
    return False


def _truncate(handler, n):
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"x" * 10)
    handler.close_connection = True
    return True


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(folder, plan=()):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        srv.daemon_threads = True
        srv.handle_error = lambda request, address: None  # a client that gave up (the timeout test)
        srv.requests, srv.lock, srv.plan = collections.Counter(), threading.Lock(), list(plan)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def pyramid(tmp_path):
    vol = (np.arange(32 * 64 * 64) % 251).astype(np.uint8).reshape(32, 64, 64)
    write_ome_zarr(tmp_path / "site" / "scan.zarr", vol, levels=3, chunks=(8, 16, 16), zarr_format=3)
    return tmp_path / "site", vol


METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


def _chunk_requests(srv):
    return sum(n for p, n in srv.requests.items() if not p.endswith(METADATA))


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_remote_pyramid_is_lazy_and_the_chunk_cache_saves_requests(serve, tmp_path, monkeypatch, zarr_format):
    data = (np.arange(32 * 64 * 64) % 251).astype(np.uint8).reshape(32, 64, 64)
    site = tmp_path / "site"
    write_ome_zarr(site / "scan.zarr", data, levels=3, chunks=(8, 16, 16), zarr_format=zarr_format)
    srv, base = serve(site)
    cache = tmp_path / "cache"
    if zarr_format == 2:  # the cache folder from the environment
        monkeypatch.setenv("NAPARI_SCROLL_SAM_CHUNK_CACHE", str(cache))
        vol = open_volume(f"{base}/scan.zarr")
    else:
        vol = open_volume(f"{base}/scan.zarr", chunk_cache=cache)
    assert vol.metadata["zarr_format"] == zarr_format and vol.metadata["chunk_cache"].startswith(str(cache))
    assert vol.shape == (32, 64, 64) and len(vol.levels) == 3 and vol.voxel_size == (7.91,) * 3
    assert vol.metadata["url"] == f"{base}/scan.zarr" and vol.path is None and vol.name == "scan.zarr"
    assert _chunk_requests(srv) <= 3  # the window: at most three chunks of the coarsest level
    assert all(p.startswith("/scan.zarr/2/") for p in srv.requests if not p.endswith(METADATA))
    assert not any(p.startswith("/scan.zarr/0/") and not p.endswith(METADATA) for p in srv.requests)
    before = _chunk_requests(srv)
    block = vol.data[8:16, 16:32, 16:48].compute()
    np.testing.assert_array_equal(block, data[8:16, 16:32, 16:48])
    assert _chunk_requests(srv) - before == 2  # exactly the two 8x16x16 chunks touched
    # re-opened: the region costs no chunk request (metadata only)
    again = open_volume(f"{base}/scan.zarr", chunk_cache=cache if zarr_format == 3 else None)
    before = _chunk_requests(srv)
    np.testing.assert_array_equal(again.data[8:16, 16:32, 16:48].compute(), block)
    assert _chunk_requests(srv) == before
    assert again.identity() == vol.identity()
    # the reader takes the URL; napari-scroll-sam info too
    (layer_data, meta, kind), = get_reader(f"{base}/scan.zarr")(f"{base}/scan.zarr")
    assert kind == "image" and meta["multiscale"] and len(layer_data) == 3


def test_remote_identity_is_the_url_and_the_array_metadata(serve, pyramid):
    import shutil

    import zarr

    site, _ = pyramid
    shutil.copytree(site / "scan.zarr", site / "copy.zarr")
    _, base = serve(site)
    a, b = open_volume(f"{base}/scan.zarr"), open_volume(f"{base}/copy.zarr")
    assert a.identity() != b.identity() and a.identity() == open_volume(f"{base}/scan.zarr/").identity()
    assert a.crop(z=(0, 8)).identity() != a.identity()
    # the same URL with other array metadata (re-chunked level 0) is another identity
    before = a.identity()
    old = zarr.open_group(str(site / "scan.zarr"), mode="a")
    level = old["0"][:]
    del old["0"]
    old.create_array("0", shape=level.shape, chunks=(16, 16, 16), dtype=level.dtype)[:] = level
    assert open_volume(f"{base}/scan.zarr").identity() != before


def test_info_command_reads_a_url(serve, pyramid, capsys):
    from napari_scroll_sam.cli import main

    site, _ = pyramid
    _, base = serve(site)
    assert main(["info", f"{base}/scan.zarr"]) == 0
    out = capsys.readouterr().out
    assert f"path:        {base}/scan.zarr" in out and "(32, 64, 64)" in out


def test_429_twice_then_200_is_retried(serve, pyramid):
    site, data = pyramid
    srv, base = serve(site, plan=[(lambda p: p.endswith("/0/c/1/1/1"), _too_many_twice)])
    vol = open_volume(f"{base}/scan.zarr", backoff=0.01)
    np.testing.assert_array_equal(vol.data[8:16, 16:32, 16:32].compute(), data[8:16, 16:32, 16:32])
    assert srv.requests["/scan.zarr/0/c/1/1/1"] == 3


def test_retries_are_bounded_and_the_error_names_the_url(serve, pyramid):
    site, _ = pyramid
    srv, base = serve(site, plan=[(lambda p: "/0/c/" in p, _status(503))])
    vol = open_volume(f"{base}/scan.zarr", backoff=0.01, retries=2)
    with pytest.raises(VolumeError, match=rf"{base}/scan.zarr/0/c/0/0/0: HTTP 503 .* after 3 tries"):
        vol.data[0:8, 0:16, 0:16].compute()
    assert srv.requests["/scan.zarr/0/c/0/0/0"] == 3


@pytest.mark.parametrize("code", [403, 404])
def test_forbidden_or_missing_url(serve, pyramid, code):
    site, _ = pyramid
    srv, base = serve(site, plan=[(lambda p: True, _status(code))])
    expected = "[.a-z]+: HTTP 403 Forbidden$" if code == 403 else ": not a readable zarr store"  # zarr probes keys at once
    with pytest.raises(VolumeError, match=rf"{base}/scan.zarr/?{expected}"):
        open_volume(f"{base}/scan.zarr", backoff=0.01, retries=5)
    assert max(srv.requests.values()) <= 2  # 4xx: not retried (zarr itself probes a key twice)


def test_a_url_that_is_not_a_zarr(serve, tmp_path):
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<html></html>")
    _, base = serve(tmp_path)
    with pytest.raises(VolumeError, match=rf"{base}/page: not a readable zarr store"):
        open_volume(f"{base}/page")


def test_a_hanging_server_times_out(serve, pyramid):
    site, _ = pyramid
    _, base = serve(site, plan=[(lambda p: p.endswith("zarr.json"), _hang)])
    t0 = time.monotonic()
    with pytest.raises(VolumeError, match=rf"{base}/scan.zarr/zarr.json: no answer in time after 2 tries"):
        open_volume(f"{base}/scan.zarr", timeout=0.3, retries=1, backoff=0.01)
    assert time.monotonic() - t0 < 3  # not the server's 3 s (correctness of the bound, not speed)


def test_a_truncated_chunk_is_an_error_naming_it(serve, pyramid):
    site, _ = pyramid
    _, base = serve(site, plan=[(lambda p: p.endswith("/0/c/0/0/0"), _truncate)])
    vol = open_volume(f"{base}/scan.zarr", backoff=0.01, retries=1)
    with pytest.raises(VolumeError, match=rf"{base}/scan.zarr/0/c/0/0/0: truncated answer"):
        vol.data[0:8, 0:16, 0:16].compute()


def test_unreachable_port(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(VolumeError, match=rf"http://127.0.0.1:{port}/x.zarr/zarr.json: .*after 2 tries"):
        open_volume(f"http://127.0.0.1:{port}/x.zarr", retries=1, backoff=0.01, timeout=2)


def test_s3_is_anonymous_without_credentials(monkeypatch, tmp_path):
    from napari_scroll_sam.io.remote import storage_options_for

    for var in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert storage_options_for("s3://bucket/v.zarr", 5)["anon"] is True
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    assert storage_options_for("s3://bucket/v.zarr", 5)["anon"] is False
    assert storage_options_for("s3://bucket/v.zarr", 5, {"anon": True})["anon"] is True


def test_get_reader_answers_urls_without_network():
    assert get_reader("http://127.0.0.1:9/a.zarr") is not None
    assert get_reader("http://127.0.0.1:9/page.html") is None


def test_napari_opens_a_url_through_the_plugin(serve, pyramid, make_napari_viewer):
    site, data = pyramid
    _, base = serve(site)
    viewer = make_napari_viewer()
    layer, = viewer.open(f"{base}/scan.zarr", plugin="napari-scroll-sam")
    assert type(layer).__name__ == "Image" and layer.multiscale and tuple(layer.scale) == (7.91,) * 3
    np.testing.assert_array_equal(np.asarray(layer.data[0][3]), data[3])
