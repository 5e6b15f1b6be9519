"""Fixtures shared by every kind of test; helpers live in ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import StoreSection
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def store_config(tmp_path: Path) -> StoreSection:
    """A store in a fresh temporary folder, committing quickly."""
    return StoreSection(path=tmp_path / "lineside.db", commit_interval_ms=20)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on an ephemeral loopback port, for this test only."""
    with Mosquitto(tmp_path / "broker") as running:
        yield running
