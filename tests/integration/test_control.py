"""The control socket's own life cycle (its commands are tested with what they control)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.control import ControlServer
from tests.support.waiting import wait_for


async def test_a_client_connected_at_shutdown_is_ended_without_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def status(_request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    path = tmp_path / "control.sock"
    server = ControlServer(path, {"status": status})
    serving = asyncio.create_task(server.serve())
    await wait_for(path.exists, 10, "the control socket")
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(b'{"command": "status"}\n')
        assert json.loads(await reader.readline()) == {"ok": True}
        # The client stays connected (a TUI) while the gateway stops.
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        assert await asyncio.wait_for(reader.read(), 10) == b"", "the server hung up"
    finally:
        writer.close()
    await asyncio.sleep(0)
    gc.collect()
    assert not path.exists()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
