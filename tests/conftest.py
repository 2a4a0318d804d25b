"""Shared fixtures: small volumes written in every format the readers take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data: needs ../shared/data beside the project")
    # The test models are tiny: torch's intra-op threads only contend on a 2-core machine
    # (measured: a training step 0.68 s with 2 threads, 0.14 s with 1, under load).
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the project's root in CI)")
    return SHARED_DATA


@pytest.fixture
def volume_array():
    rng = np.random.default_rng(0)
    return rng.integers(0, 60000, (12, 40, 50), dtype=np.uint16)


