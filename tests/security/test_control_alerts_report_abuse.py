"""The control socket's ``alerts`` and ``report`` requests under hostile fields.

Oversized and escape-laden fields, wrong types, an unknown line or run: each gets a clear
refusal (``ok: false`` and a sentence), nothing is logged with a
traceback or with the escapes, and the gateway goes on answering. A huge ``limit`` is held
to :data:`gateway.api.MAX_LIST_ALERTS`. The style follows
tests/security/test_control_socket_abuse.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.api import MAX_LIST_ALERTS
from gateway.control import send_command
from tests.security.test_control_socket_abuse import LATCHED, seed_latched_alert
from tests.support.configs import minimal_config_text
from tests.support.running_gateway import gateway_in_process

EVIL = "\x1b[2J\x9b31m" + "L" * 60_000

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"command": "alerts", "line": EVIL}, "line"),
    ({"command": "alerts", "line": "L9"}, "unknown line 'L9'"),
    ({"command": "alerts", "line": ["L1"]}, "line"),
    ({"command": "alerts", "rule": {"x": 1}}, "rule"),
    ({"command": "alerts", "rule": EVIL}, "rule"),
    ({"command": "alerts", "line": "L1\x1b[2J\x9b31m"}, "control character (U+001B"),
    ({"command": "alerts", "limit": -1}, "limit"),
    ({"command": "alerts", "limit": "all"}, "limit"),
    ({"command": "alerts", "limit": True}, "limit"),
    ({"command": "alerts", "limit": 1.5}, "limit"),
    ({"command": "report", "run_number": EVIL}, "run_number"),
    ({"command": "report", "run_number": 42}, "run_number"),
    ({"command": "report", "run_number": None}, "run_number"),
    ({"command": "report", "run_number": "NO-SUCH-RUN"}, "NO-SUCH-RUN"),
    ({"command": "report"}, "run_number"),
]


async def test_hostile_alerts_and_report_requests_are_refused_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db_path = tmp_path / "lineside.db"
    await seed_latched_alert(db_path)
    config = tmp_path / "gateway.toml"
    config.write_text(minimal_config_text(db_path))
    async with gateway_in_process(config) as status:
        socket_path = status.config.control_socket_path
        for request, named in REFUSED:
            answer = await send_command(socket_path, request)
            assert answer["ok"] is False, (request.get("line"), answer)
            error = str(answer["error"])
            assert named in error, (request, error)
            assert "\x1b" not in error
            assert "\x9b" not in error
            assert len(error) < 500, error
        # A huge limit is not refused but held to the most one answer carries.
        answer = await send_command(socket_path, {"command": "alerts", "limit": 10**30})
        assert answer["ok"] is True, answer
        assert len(answer["alerts"]) <= MAX_LIST_ALERTS
        # The gateway goes on: the standing alert is listed.
        answer = await send_command(socket_path, {"command": "alerts", "line": "L1"})
        assert answer["ok"] is True, answer
        assert any(a["id"] == LATCHED for a in answer["alerts"]), answer
    assert not any(r.exc_info for r in caplog.records), [
        r.getMessage() for r in caplog.records if r.exc_info
    ]
    assert not any("Traceback" in r.getMessage() for r in caplog.records)
    assert not any("\x1b" in r.getMessage() for r in caplog.records)
