"""`napari-scroll-sam embed`: locally, and over a dask.distributed cluster of 2 workers."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_scroll_sam.cli import main
from napari_scroll_sam.io.phantom import scroll_phantom
from napari_scroll_sam.sam import save_checkpoint
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    folder = root / "slices"
    folder.mkdir()
    image = scroll_phantom((12, 64, 64), seed=4).image.compute()
    for z, sl in enumerate(image):
        tifffile.imwrite(folder / f"{z:05d}.tif", sl)
    ckpt = root / "tiny.pt"
    save_checkpoint(ckpt, tiny_model(seed=7))
    return folder, ckpt, root


def _store(cache):
    stores = list((cache / "embeddings").glob("*.zarr"))
    assert len(stores) == 1
    return zarr.open_array(str(stores[0]), mode="r")


def test_embed_locally_then_cached(setup, capsys):
    folder, ckpt, root = setup
    cache = root / "local"
    args = ["embed", str(folder), "--model", str(ckpt), "--mode", "tuples", "--d", "2", "--cache", str(cache)]
    assert main(args) == 0
    assert "12 slices encoded, 0 already cached" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 slices encoded, 12 already cached" in capsys.readouterr().out
    assert main(args[:-4] + ["--mode", "every", "--cache", str(cache), "--z", "0", "4"]) == 0
    assert "4 slices encoded" in capsys.readouterr().out  # another mode: another store


def test_embed_bad_input(setup, capsys):
    folder, ckpt, root = setup
    assert main(["embed", str(folder), "--model", "vit_q", "--cache", str(root / "x")]) == 2
    assert "vit_b" in capsys.readouterr().err  # the known names are listed
    assert main(["embed", str(folder), "--model", str(ckpt), "--mode", "nope", "--cache", str(root / "x")]) == 2
    assert "nope" in capsys.readouterr().err


def test_distributed_equals_single_process(setup):
    distributed = pytest.importorskip("distributed")
    from napari_scroll_sam.sam.distributed import EmbedJob, embed_volume
    from napari_scroll_sam.sampling import Tuples

    folder, ckpt, root = setup
    single, multi = root / "single", root / "multi"
    job = EmbedJob(str(folder), str(ckpt), "cpu", Tuples(d=1), str(single))
    assert sorted(r.z for r in embed_volume(job)) == list(range(12))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            job_multi = EmbedJob(str(folder), str(ckpt), "cpu", Tuples(d=1), str(multi))
            reports = list(embed_volume(job_multi, client=client, slices_per_task=3))
            assert sorted(r.z for r in reports) == list(range(12)) and not any(r.cached for r in reports)
            workers = client.run(lambda: __import__("os").getpid())
            assert len(workers) == 2
    a, b = _store(single)[:].astype(np.float32), _store(multi)[:].astype(np.float32)
    # equal up to float16 rounding of float32 sums taken in another order (other batch sizes/threads)
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4)
    assert np.mean(a == b) > 0.99 and np.abs(a).max() > 0
