"""Shared fixtures: small volumes written in every format the readers take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data: needs ../shared/data beside the project")


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the project's root in CI)")
    return SHARED_DATA


@pytest.fixture
def volume_array():
    rng = np.random.default_rng(0)
    return rng.integers(0, 60000, (12, 40, 50), dtype=np.uint16)


