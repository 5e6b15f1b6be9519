"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import StoreSection
from tests.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parent.parent


def minimal_config_text(db_path: Path, **store: object) -> str:
    """A valid config with one line and no devices, as TOML text."""
    extra = "".join(f"{k} = {v!r}\n" for k, v in store.items())
    return (
        '[gateway]\nid = "gw-test"\nsite = "test-site"\n\n'
        f'[store]\npath = "{db_path}"\n{extra}\n'
        '[[lines]]\nid = "L1"\n'
    )


@pytest.fixture
def store_config(tmp_path: Path) -> StoreSection:
    """A store in a fresh temporary folder, committing quickly."""
    return StoreSection(path=tmp_path / "lineside.db", commit_interval_ms=20)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Wait until ``condition()`` is true (polling), or fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def wait_for_sync(
    condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Blocking variant of :func:`wait_for` for subprocess tests."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on an ephemeral loopback port, for this test only."""
    with Mosquitto(tmp_path / "broker") as running:
        yield running
