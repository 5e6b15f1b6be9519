"""Fixtures shared by every kind of test; helpers live in ``tests/support``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import StoreSection
from tests.support import faketime_compat
from tests.support.mosquitto import Mosquitto
from tests.support.processes import end_processes, mark_this_suite, suite_processes

# Every process this suite starts inherits the mark, so none can outlive its test unseen.
mark_this_suite()
# Under libfaketime, this process and every Python child sleep without clock_nanosleep.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (faketime_compat.FOLDER, os.environ.get("PYTHONPATH", "")) if p
)
faketime_compat.apply()


@pytest.fixture(autouse=True)
def _nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a process of the suite running (and end that process)."""
    if request.node.path.parent.name == "unit":
        yield  # unit tests start no process (tests/unit/conftest.py refuses it)
        return
    before = suite_processes()
    yield
    started = {pid: cmd for pid, cmd in suite_processes().items() if pid not in before}
    killed = end_processes(started)
    if killed:
        pytest.fail(f"the test left processes running (now killed): {killed}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The last check: nothing of this suite runs on after it."""
    killed = end_processes(suite_processes())
    if killed:
        print(f"\nprocesses of the suite left running (now killed): {killed}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def store_config(tmp_path: Path) -> StoreSection:
    """A store in a fresh temporary folder, committing quickly."""
    return StoreSection(path=tmp_path / "lineside.db", commit_interval_ms=20)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on an ephemeral loopback port, for this test only."""
    with Mosquitto(tmp_path / "broker") as running:
        yield running
