"""Logs for operations (docs/operations-logs.md), on a real gateway process and real peers.

- A clean stop of a gateway with OPC UA devices (a real asyncua server) logs nothing at
  WARNING or above: the server's answers to Publish requests still in flight when the
  subscriptions are deleted (``ServiceFault (BadNoSubscription ...)``) are expected, not news,
  and so are answers to Reads the stop cancelled on the wire ("Future for request id N is
  already done").
- JSON lines carry the gateway id, and a device's lines its device and line.
- pymodbus at INFO (and at the gateway's DEBUG) writes no protocol hex dumps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from asyncua.client.client import Client
from asyncua.ua.uaerrors import BadNoSubscription
from pymodbus.client import AsyncModbusTcpClient

import adapters.opcua.client  # noqa: F401  (installs the adapter's log filters)
from adapters.erp.simulator import ErpSimulator
from adapters.opcua.publish_faults import PUBLISH_FAULT_LOGGER, PUBLISH_LOOP_LOGGER
from adapters.simulators import ModbusSimulator
from gateway.logs import configure_logging
from tests.support.opcua_harness import Simulator
from tests.support.paths import REPO
from tests.support.waiting import wait_for

GATEWAY_ID = "gw-logs"


def config_text(tmp_path: Path, endpoint: str) -> str:
    tags = ", ".join(
        f'{{ name = "{name}", node = "ns=2;s=CW1.{node}" }}'
        for name, node in (
            ("pack_counter", "PackCounter"),
            ("net_weight", "LastNetWeight"),
            ("gross_weight", "LastGrossWeight"),
            ("tare", "TareWeight"),
        )
    )
    return f"""
[gateway]
id = "{GATEWAY_ID}"
site = "test-site"
log_format = "json"

[store]
path = "{tmp_path / "lineside.db"}"

[[lines]]
id = "L1"

[[devices]]
id = "cw1"
kind = "opcua"
line = "L1"
role = "checkweigher"
endpoint = "{endpoint}"

[[devices.groups]]
name = "weighing"
mode = "subscribe"
publishing_interval_ms = 50
tags = [{tags}]

[[devices]]
id = "probes"
kind = "opcua"
line = "L1"
role = "temperature_probe"
endpoint = "{endpoint}"

[[devices.groups]]
name = "probes"
mode = "subscribe"
publishing_interval_ms = 50
tags = [
  {{ name = "P1", node = "ns=2;s=P1.Temperature", location = "product core", min = -40, max = 60 }},
]
"""


async def test_a_clean_stop_is_quiet_and_lines_carry_their_fields(tmp_path: Path) -> None:
    async with Simulator() as sim:
        config = tmp_path / "lineside.toml"
        config.write_text(config_text(tmp_path, sim.endpoint))
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            "--config",
            str(config),
            cwd=REPO,
            env=env,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stderr is not None
        lines: list[dict[str, object]] = []

        async def collect() -> None:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                lines.append(json.loads(raw))

        reader = asyncio.create_task(collect())
        try:
            # Both devices subscribed: their Publish requests are now in flight at the server.
            await wait_for(lambda: len(sim.subscriptions()) == 2, 30, "two subscriptions")
            await wait_for(
                lambda: sum("connected to" in str(e["message"]) for e in lines) == 2,
                30,
                "both devices connected",
            )
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
            await asyncio.wait_for(reader, 10)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            reader.cancel()

    assert code == 0, lines
    loud = [
        (e["level"], e.get("device"), e["message"])
        for e in lines
        if e["level"] not in ("debug", "info")
    ]
    assert loud == [], loud  # the messages themselves: a failure must say what was loud
    assert any("stopped cleanly" in str(e["message"]) for e in lines), lines
    assert all(e.get("gateway") == GATEWAY_ID for e in lines), lines
    connected = {str(e.get("device")): e for e in lines if "connected to" in str(e["message"])}
    assert set(connected) == {"cw1", "probes"}, lines
    assert all(e.get("line") == "L1" for e in connected.values())


HEX_DUMP = re.compile(r"(send|recv|Processing): ?0x[0-9a-f]{2}( 0x[0-9a-f]{2})+", re.IGNORECASE)


async def _modbus_exchange() -> None:
    async with ModbusSimulator(port=0) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port)
        await client.connect()
        try:
            response = await client.read_holding_registers(200, count=2, device_id=1)
            assert not response.isError()
        finally:
            client.close()


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], root.level = saved
    for name in ("asyncua", "pymodbus", "aiosqlite", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.usefixtures("restore_logging")
async def test_a_publish_answered_bad_no_subscription_is_no_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a server answers to a Publish once the last subscription is gone (at every stop).

    A real asyncua server with no subscription answers a Publish with BadNoSubscription;
    asyncua's socket layer logs that as a WARNING, which the gateway keeps at DEBUG.
    """
    configure_logging(level="info", fmt="json")
    async with Simulator() as sim:
        client = Client(sim.endpoint, timeout=5)
        await client.connect()
        try:
            with pytest.raises(BadNoSubscription):
                await client.uaclient.publish([])
        finally:
            await client.disconnect()
    # The simulated server, in this process, logs its own side at ERROR: only the client's
    # (the gateway's) side is at issue here.
    client_lines = [
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if '"logger": "asyncua.client' in line
    ]
    assert not [e for e in client_lines if "ServiceFault" in str(e["message"])], client_lines


async def _answer_after_cancel() -> None:
    """A Read cancelled while on the wire, as a stop cancels the adapter's tasks: its answer
    arrives after its waiter has gone."""
    configure_logging(level="info", fmt="json")
    async with Simulator() as sim:
        client = Client(sim.endpoint, timeout=5)
        await client.connect()
        try:
            node = client.get_node("ns=2;s=CW1.PackCounter")
            cancelled = asyncio.create_task(node.read_value())
            await asyncio.sleep(0)  # the Read is written to the socket, its answer awaited
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            # The server answers in order: once this answer is in, so is the first one.
            await node.read_value()
        finally:
            await client.disconnect()


@pytest.mark.usefixtures("restore_logging")
async def test_an_answer_to_a_cancelled_read_is_no_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """asyncua's "Future for request id N is already done" is kept at DEBUG (late_answers.py)."""

    def late_answers() -> list[dict[str, object]]:
        return [
            e
            for e in map(json.loads, capsys.readouterr().err.splitlines())
            if "is already done" in str(e["message"])
        ]

    await _answer_after_cancel()
    assert late_answers() == []
    # The same with asyncua's socket layer let through at DEBUG: the case did happen, and its
    # line was demoted, not lost to some other cause.
    socket_layer = logging.getLogger(PUBLISH_FAULT_LOGGER)
    socket_layer.setLevel(logging.DEBUG)
    try:
        await _answer_after_cancel()
    finally:
        socket_layer.setLevel(logging.NOTSET)
    seen = late_answers()
    assert [e["level"] for e in seen] == ["debug"], seen


class _NoStatusNews:
    """A subscription handler as the adapter's: data changes and status changes taken."""

    def datachange_notification(self, *_args: object) -> None:
        pass

    def status_change_notification(self, *_args: object) -> None:
        pass


async def _publish_on_a_dropped_connection(seen: Callable[[], bool]) -> None:
    """A subscribed client whose connection drops (as when asyncua drops it on a notification
    queue overflow): the Publish on the wire fails, and asyncua's loop retries once a second
    on the disconnected client, until ``seen()`` says enough was logged."""
    configure_logging(level="info", fmt="json")
    async with Simulator() as sim:
        client = Client(sim.endpoint, timeout=5)
        await client.connect()
        try:
            subscription = await client.create_subscription(50, _NoStatusNews())
            await subscription.subscribe_data_change(client.get_node("ns=2;s=CW1.PackCounter"))
            protocol = client.uaclient.protocol
            assert protocol is not None
            assert protocol.transport is not None
            protocol.transport.abort()
            await wait_for(seen, 10, "the publish loop's failures")
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await client.disconnect()


@pytest.mark.usefixtures("restore_logging")
async def test_a_publish_on_a_lost_connection_is_no_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """asyncua's "Publish iteration crashed" on a ConnectionError, with its traceback, is
    kept at DEBUG (publish_faults.py): the adapter reports the lost link itself."""
    lines: list[dict[str, object]] = []

    def crashes() -> list[dict[str, object]]:
        lines.extend(map(json.loads, capsys.readouterr().err.splitlines()))
        return [e for e in lines if "Publish iteration crashed" in str(e["message"])]

    # With asyncua's session logger at DEBUG: the failures happen, the first on the Publish
    # that was on the wire, the next on a retry, and each is demoted, not lost.
    session_logger = logging.getLogger(PUBLISH_LOOP_LOGGER)
    session_logger.setLevel(logging.DEBUG)
    try:
        await _publish_on_a_dropped_connection(lambda: len(crashes()) >= 2)
    finally:
        session_logger.setLevel(logging.NOTSET)
    seen = crashes()
    assert {e["level"] for e in seen} == {"debug"}, seen
    assert all("ConnectionError" in str(e.get("exception")) for e in seen), seen
    # At the gateway's level: the same two seconds of retries leave no line at all.
    lines.clear()
    retries = asyncio.get_running_loop().time() + 2.2
    await _publish_on_a_dropped_connection(lambda: asyncio.get_running_loop().time() > retries)
    assert crashes() == []
    assert not [e for e in lines if e["level"] in ("error", "critical")], lines


@pytest.mark.usefixtures("restore_logging")
async def test_pymodbus_writes_no_hex_dumps(capsys: pytest.CaptureFixture[str]) -> None:
    """The gateway's INFO and DEBUG both keep pymodbus' frame dumps out of the log."""
    for level in ("info", "debug"):
        configure_logging(level=level)
        await _modbus_exchange()
        err = capsys.readouterr().err
        assert not HEX_DUMP.search(err), err
        assert logging.getLogger("pymodbus").getEffectiveLevel() >= logging.WARNING


@pytest.mark.usefixtures("restore_logging")
async def test_http_protocol_events_stay_out_of_the_gateways_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ERP poll at the gateway's DEBUG: httpcore's per-request events are wire chatter."""
    configure_logging(level="debug")
    async with ErpSimulator() as erp:
        import httpx  # noqa: PLC0415

        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(erp.url)).status_code == 200
    err = capsys.readouterr().err
    assert "httpcore" not in err, err
