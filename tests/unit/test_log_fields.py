"""JSON log lines carry the gateway, line, device and run (docs/operations-logs.md, "Fields")."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gateway.core.log_context import bind_log_context, log_context, set_gateway_id
from gateway.logs import configure_logging
from sync.paho_codes import describe_rc, seq_text


@pytest.fixture
def json_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stream:
        configure_logging(level="info", fmt="json", gateway_id="gw-7", stream=stream)
        yield stream
    root.handlers[:], root.level = saved
    set_gateway_id(None)


def _entries(stream: TextIO) -> list[dict[str, object]]:
    stream.flush()
    stream.seek(0)
    return [json.loads(line) for line in stream.read().splitlines()]


def test_every_line_names_the_gateway(json_log: TextIO) -> None:
    logging.getLogger("gateway.test").info("started")
    (entry,) = _entries(json_log)
    assert entry["gateway"] == "gw-7"
    assert entry["message"] == "started"
    assert "device" not in entry
    assert "run" not in entry


def test_a_device_task_names_its_device_and_line(json_log: TextIO) -> None:
    log = logging.getLogger("adapters.test")

    async def adapter(device: str) -> None:
        bind_log_context(device=device, line="L1")
        await asyncio.sleep(0)
        log.warning("link down")

        async def child() -> None:
            log.info("a task the adapter started")

        await asyncio.create_task(child())

    async def both() -> None:
        await asyncio.gather(adapter("cw1"), adapter("tt-modbus"))
        log.info("after the adapters")

    asyncio.run(both())
    entries = _entries(json_log)
    by_message: dict[str, list[dict[str, object]]] = {}
    for entry in entries:
        by_message.setdefault(str(entry["message"]), []).append(entry)
    assert {e["device"] for e in by_message["link down"]} == {"cw1", "tt-modbus"}
    assert {e["device"] for e in by_message["a task the adapter started"]} == {"cw1", "tt-modbus"}
    assert all(e["line"] == "L1" and e["gateway"] == "gw-7" for e in entries[:-1])
    assert "device" not in by_message["after the adapters"][0]


def test_extra_fields_and_a_run_context(json_log: TextIO) -> None:
    log = logging.getLogger("gateway.rules_engine")
    with log_context(line="L2", run="R0105-L2-01"):
        log.info("inside")
    log.info("alert raised", extra={"line": "L1", "run": "R0105-L1-02"})
    log.info("outside")
    inside, alert, outside = _entries(json_log)
    assert (inside["line"], inside["run"]) == ("L2", "R0105-L2-01")
    assert (alert["line"], alert["run"]) == ("L1", "R0105-L1-02")
    assert "run" not in outside
    assert "line" not in outside


def test_a_paho_refusal_says_what_the_code_means() -> None:
    text = describe_rc(15)
    assert text.startswith("rc 15 MQTT_ERR_QUEUE_SIZE: Message queue full")
    assert "outgoing queue is full" in text
    assert "MQTT_ERR_NO_CONN" in describe_rc(4)
    assert describe_rc(999) == "rc 999 (unknown to paho)"


def test_sequence_numbers_are_named_as_ranges() -> None:
    assert seq_text([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
