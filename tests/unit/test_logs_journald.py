"""Syslog priorities for journald (docs/operations-logs.md, "Priorities").

Under systemd, stderr is the journal and ``$JOURNAL_STREAM`` names its device and inode; a
line that starts with ``<N>`` is stored at priority N (sd-daemon(3)), so ``journalctl -p err``
finds the gateway's errors. The stream here is a file whose device and inode stand in for
the journal's: the prefix depends on the match, not on what the stream is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gateway.logs import configure_logging, stream_is_journal, syslog_priority


@pytest.fixture
def stderr_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stream:
        yield stream
    root.handlers[:], root.level = saved


def _journal_stream_of(stream: TextIO) -> str:
    info = os.fstat(stream.fileno())
    return f"{info.st_dev}:{info.st_ino}"


def _log_every_level(stream: TextIO) -> list[str]:
    log = logging.getLogger("lineside.test")
    log.debug("a debug line")
    log.info("an info line")
    log.warning("a warning line")
    log.error("an error line")
    log.critical("a critical line")
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_each_line_carries_its_priority_on_the_journal_stream(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", _journal_stream_of(stderr_file))
    configure_logging(level="debug", fmt=fmt, stream=stderr_file)  # type: ignore[arg-type]
    lines = _log_every_level(stderr_file)
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"], lines
    assert "a critical line" in lines[-1]


def test_a_traceback_keeps_the_priority_on_every_line(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", _journal_stream_of(stderr_file))
    configure_logging(level="info", stream=stderr_file)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("lineside.test").exception("it failed")
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert len(lines) > 3, lines
    assert all(line.startswith("<3>") for line in lines), lines
    assert lines[-1] == "<3>ValueError: boom"


def test_no_prefix_without_journal_stream(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    configure_logging(level="debug", stream=stderr_file)
    lines = _log_every_level(stderr_file)
    assert len(lines) == 5
    assert not any(line.startswith("<") for line in lines), lines


def test_no_prefix_when_stderr_is_not_the_journal(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Started by the unit but redirected (``lineside run 2>file``): the inode differs."""
    with (tmp_path / "other").open("w", encoding="utf-8") as other:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_stream_of(other))
    configure_logging(level="debug", stream=stderr_file)
    lines = _log_every_level(stderr_file)
    assert not any(line.startswith("<") for line in lines), lines


@pytest.mark.parametrize("value", ["", "garbage", "12", ":", "1:x"])
def test_a_malformed_journal_stream_is_not_the_journal(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", value)
    assert not stream_is_journal(stderr_file)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (logging.WARNING + 5, 4),
        (5, 7),
    ],
)
def test_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority
