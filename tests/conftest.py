"""Fixtures shared by every kind of test; helpers live in ``tests/support``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import StoreSection
from gateway.logs import NOISY_LIBRARIES
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


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """Leave the logging configuration as the test found it.

    A command run in this process (``lineside browse``, ``erp``, ``ingest`` ...) calls
    ``configure_logging``, which gives the root logger one handler on the ``sys.stderr`` of
    that moment: pytest's capture of this test. Left there, every later test in the process
    logs into that closed file ('--- Logging error ---' on stderr, which fails the tests that
    check a command's stderr), whichever test comes next in this worker. pytest's own
    capture handlers are its business: it adds and removes them around each phase."""
    root = logging.getLogger()
    before = [h for h in root.handlers if not _is_pytests(h)]
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LIBRARIES}
    yield
    for handler in root.handlers[:]:
        if not _is_pytests(handler) and handler not in before:
            root.removeHandler(handler)
    for handler in before:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, was in noisy.items():
        logging.getLogger(name).setLevel(was)


def _is_pytests(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest.")


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
