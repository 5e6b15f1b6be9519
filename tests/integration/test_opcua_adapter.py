"""The OPC UA adapter against a real asyncua server (the project's OpcUaSimulator).

Every test talks OPC UA over 127.0.0.1 on an ephemeral port; nothing in asyncua is mocked.
The simulator runs with ``drive=False`` so each test writes exactly the values it checks.
The sink is a small in-memory collector (``RecordSink`` is our own seam), except for one
test writing through the real SQLite store. Network faults go through a small TCP proxy that
can cut every connection and records what the client sent (the SecurityPolicyUri of an
OpenSecureChannel request travels in clear text, OPC 10000-6 §6.7.2.3, so the proxy shows
whether a ``SecurityPolicy#None`` channel was ever opened).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import math
import os
import socket
import time
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from adapters.base import Quality
from adapters.opcua import OpcUaAdapter
from adapters.opcua.packs import PackAssembler
from adapters.opcua.status import plain_value, quality_of, sample_from, translate_error
from adapters.simulators.opcua_server import APPLICATION_URI
from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.errors import (
    DeviceBusy,
    DeviceConfigError,
    DeviceSecurityError,
    DeviceUnreachable,
)
from gateway.core.link import LinkState
from gateway.core.records import (
    DeviceEvent,
    LabelScan,
    Record,
    RejectedInput,
)
from gateway.store import Store
from tests.support.collector import Collector, HeldSink, running
from tests.support.opcua_harness import (
    GATEWAY_URI,
    Simulator,
    TcpProxy,
    checkweigher,
    client_tasks,
    device,
    make_certificate,
    probes,
    secure_device,
    write_pack,
)
from tests.support.waiting import wait_for


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    """Server, impostor server and gateway certificates."""
    server_cert, server_key = make_certificate(tmp_path, "server", APPLICATION_URI, server=True)
    other_cert, _ = make_certificate(tmp_path, "impostor", APPLICATION_URI, server=True)
    client_cert, client_key = make_certificate(tmp_path, "gateway", GATEWAY_URI, server=False)
    return {
        "server": server_cert,
        "server_key": server_key,
        "impostor": other_cert,
        "client": client_cert,
        "client_key": client_key,
    }


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (0x00000000, Quality.GOOD),
        (0x002D0000, Quality.GOOD),  # GoodSubscriptionTransferred
        (0x40900000, Quality.UNCERTAIN),  # UncertainLastUsableValue... severity 01
        (0x80320000, Quality.BAD),  # BadWaitingForInitialData
        (0xC0000000, Quality.BAD),  # severity 11 is reserved: "treat as Bad" (Part 4 §7.34.1)
    ],
)
def test_quality_comes_from_the_severity_bits(code: int, quality: Quality) -> None:
    assert quality_of(code) is quality


def test_values_convert_to_plain_python() -> None:
    assert plain_value(ua.Variant(241.3, ua.VariantType.Float)) == 241.3  # not 241.3000030...
    assert plain_value(ua.Variant(7, ua.VariantType.UInt32)) == 7
    assert plain_value(ua.Variant(True, ua.VariantType.Boolean)) is True
    assert plain_value(ua.Variant(ua.LocalizedText("ok"))) == "ok"
    assert plain_value(ua.Variant(None, ua.VariantType.Null)) is None
    assert math.isnan(plain_value(ua.Variant(math.nan, ua.VariantType.Double)))  # type: ignore[arg-type]
    stamp = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)
    assert plain_value(ua.Variant(stamp, ua.VariantType.DateTime)) == "2025-03-14T12:00:00+00:00"
    array = ua.DataValue(ua.Variant([1, 2], ua.VariantType.Int32))
    sample = sample_from("x", array)
    assert sample.quality is Quality.BAD
    assert sample.status.startswith("BadTypeMismatch")
    bad = ua.DataValue(
        ua.Variant(3.0), StatusCode=ua.StatusCode(ua.UInt32(StatusCodes.BadSensorFailure))
    )
    assert sample_from("P1", bad).status == "BadSensorFailure"


def test_library_errors_map_to_the_error_tree() -> None:
    status = UaStatusCodeError
    assert isinstance(translate_error("d", TimeoutError(), "x"), DeviceUnreachable)
    assert isinstance(translate_error("d", ConnectionRefusedError(), "x"), DeviceUnreachable)
    untrusted = status(StatusCodes.BadCertificateUntrusted)
    assert isinstance(translate_error("d", untrusted, "x"), DeviceSecurityError)
    sessions = status(StatusCodes.BadTooManySessions)
    assert isinstance(translate_error("d", sessions, "x"), DeviceBusy)
    unknown = status(StatusCodes.BadNodeIdUnknown)
    assert isinstance(translate_error("d", unknown, "x"), DeviceConfigError)
    mismatch = translate_error("d", UaError("Server certificate mismatch"), "x")
    assert isinstance(mismatch, DeviceSecurityError)
    assert "does not match the pinned certificate" in str(mismatch)


def test_a_failed_connect_says_why() -> None:
    """asyncio's "Connect call failed (host, port)" names no reason; the errno does."""
    refused = translate_error("d", OSError(errno.ECONNREFUSED, "Connect call failed"), "connect")
    assert str(refused).endswith("connect: connection refused")
    exhausted = OSError(errno.EADDRNOTAVAIL, "Connect call failed ('127.0.0.1', 4840)")
    assert str(translate_error("d", exhausted, "connect")).endswith(
        "connect: Connect call failed ('127.0.0.1', 4840): Cannot assign requested address"
    )
    # The reason is not said twice, and numbers that are not errnos are not read as one.
    unreachable = OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))
    assert str(translate_error("d", unreachable, "x")).endswith("x: Network is unreachable")
    resolver = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert str(translate_error("d", resolver, "x")).endswith("x: Name or service not known")
    closed = ConnectionError("Connection is closed")
    assert str(translate_error("d", closed, "x")).endswith("x: Connection is closed")
    assert str(translate_error("d", EOFError(), "x")).endswith("x: EOFError")


def test_queued_packs_are_paired_with_their_own_values_by_source_time() -> None:
    assembler = PackAssembler(["net_weight", "tare"])
    for t, weight in ((100, 240.0), (200, 241.0), (300, 242.0)):
        assembler.note(sample_from("net_weight", ua.DataValue(ua.Variant(weight))), t)
    read = [
        (sample_from("net_weight", ua.DataValue(ua.Variant(242.0))), 300),
        (sample_from("tare", ua.DataValue(ua.Variant(12.5))), 50),
    ]
    first = assembler.pack(1, 150, read)  # no earlier counter seen: 240.0 may be older
    assert [s.value for s in first.samples] == [240.0, 12.5]
    assert not first.certain
    second = assembler.pack(2, 250, read)  # 241.0 was written between counters 1 and 2
    assert [s.value for s in second.samples] == [241.0, 12.5]
    assert second.certain


# ----------------------------------------------------------------------------- subscriptions


async def test_subscription_packs_carry_their_own_weights_and_probes_read() -> None:
    async with Simulator() as sim:
        cw_sink, probe_sink = Collector(), Collector()
        cw = OpcUaAdapter(checkweigher(sim.endpoint), cw_sink, SystemClock())
        pt = OpcUaAdapter(probes(sim.endpoint), probe_sink, SystemClock())
        async with running(cw), running(pt):
            await wait_for(lambda: bool(cw_sink.events("pack_counter_baseline")), what="baseline")
            assert cw.state is LinkState.UP
            # Packs one at a time, then a burst faster than the publishing interval (the
            # server queues the counter changes; each pack must still get its own weights).
            weights = {1: 240.5, 2: 243.25, 3: 229.0}
            for counter, net in weights.items():
                await write_pack(sim, counter, net)

                def packs_stored(n: int = counter) -> bool:
                    return len(cw_sink.packs()) == n

                await wait_for(packs_stored, what=f"pack {counter}")
            burst = {4: 250.0, 5: 251.5, 6: 252.75, 7: 253.0}
            for counter, net in burst.items():
                await write_pack(sim, counter, net)
            weights |= burst
            await wait_for(lambda: len(cw_sink.packs()) == len(weights), what="the burst")

            for value in (2.5, 3.0, -1.5):
                await sim.set_value("P1.Temperature", value)
            await wait_for(
                lambda: [r.celsius for r in probe_sink.readings("P1")][-3:] == [2.5, 3.0, -1.5],
                what="probe readings",
            )
        packs = cw_sink.packs()
        assert [p.pack_counter for p in packs] == list(weights)
        for pack in packs:
            assert pack.pack_counter is not None
            net = weights[pack.pack_counter]
            assert (pack.net_g, pack.gross_g, pack.tare_g) == (net, net + 12.5, 12.5)
            assert pack.label_seq == pack.pack_counter
            assert pack.accepted is (net >= 231.0)
            assert (pack.device, pack.line) == ("CW1", "L1")
        assert not cw_sink.events("missed_packs")
        assert not cw_sink.rejected()
        reading = probe_sink.readings("P1")[-1]
        assert (reading.device, reading.location) == ("PT", "product core")
        assert {r.probe for r in probe_sink.readings()} == {"P1", "P2"}


async def test_poll_mode_reads_each_group_in_one_request() -> None:
    async with Simulator() as sim:
        cw_sink, probe_sink = Collector(), Collector()
        cw = OpcUaAdapter(checkweigher(sim.endpoint, mode="poll"), cw_sink, SystemClock())
        pt = OpcUaAdapter(probes(sim.endpoint, mode="poll"), probe_sink, SystemClock())
        async with running(cw), running(pt):
            await wait_for(lambda: bool(cw_sink.events("pack_counter_baseline")), what="baseline")
            for counter, net in ((1, 238.0), (2, 244.5)):
                await write_pack(sim, counter, net)

                def packs_stored(n: int = counter) -> bool:
                    return len(cw_sink.packs()) == n

                await wait_for(packs_stored, what=f"pack {counter}")
            await sim.set_value("P2.Temperature", 1.25)
            await wait_for(lambda: any(r.celsius == 1.25 for r in probe_sink.readings("P2")))
            # Polling: a reading per poll, about every 50 ms.
            count = len(probe_sink.readings("P2"))
            await wait_for(lambda: len(probe_sink.readings("P2")) >= count + 3, what="more polls")
        assert [(p.pack_counter, p.net_g, p.gross_g) for p in cw_sink.packs()] == [
            (1, 238.0, 250.5),
            (2, 244.5, 257.0),
        ]
        # The server kept no subscription for the poll-mode devices.
        assert sim.subscriptions() == []


async def test_scanner_reads_are_handed_on_once_even_across_a_restart() -> None:
    gtin = "0501234567890"
    gtin += str(gtin_check_digit(gtin))
    label = encode_element_string([("01", gtin), ("10", "B42"), ("21", "7")])
    async with Simulator() as sim:
        sink = Collector()
        tag = {"name": "barcode", "node": "ns=2;s=SC1.LastRead"}
        group = {"publishing_interval_ms": 50, "sampling_interval_ms": 0, "tags": [tag]}
        adapter = OpcUaAdapter(
            device(sim.endpoint, "label_scanner", [group], id="SC1"), sink, SystemClock()
        )

        def scans() -> list[Record]:
            return [r for r in sink.records if isinstance(r, LabelScan | RejectedInput)]

        async with running(adapter):
            await wait_for(lambda: len(scans()) == 1, what="the initial (empty) read")
            await sim.set_value("SC1.LastRead", label)
            await wait_for(lambda: len(scans()) == 2, what="a read")
            await sim.set_value("SC1.LastRead", label)  # the same label scanned twice
            await wait_for(lambda: len(scans()) == 3, what="the double scan")
            await sim.restart()
            await wait_for(lambda: bool(sink.events("link_up")), what="recovery")
            await asyncio.sleep(0.3)
            assert len(scans()) == 3  # the value after the restart is not a new read
        valid = [r for r in scans() if isinstance(r, LabelScan)]
        assert [(s.gtin, s.batch, s.serial) for s in valid] == [(gtin, "B42", "7")] * 2


# ----------------------------------------------------------------------------- bad values


async def test_bad_status_and_impossible_values_become_rejected_inputs() -> None:
    async with Simulator() as sim:
        cw_sink, probe_sink = Collector(), Collector()
        cw = OpcUaAdapter(checkweigher(sim.endpoint), cw_sink, SystemClock())
        pt = OpcUaAdapter(probes(sim.endpoint), probe_sink, SystemClock())
        async with running(cw), running(pt):
            await wait_for(lambda: bool(cw_sink.events("pack_counter_baseline")), what="baseline")
            await wait_for(lambda: len(probe_sink.readings("P1")) == 1, what="initial reading")
            for value, status in (
                (math.nan, None),
                (math.inf, None),
                (500.0, None),  # above max 60 °C
                (3.0, "BadSensorFailure"),
                (4.5, "UncertainLastUsableValue"),
            ):
                await sim.set_value("P1.Temperature", value, status)
                await asyncio.sleep(0.1)  # each its own notification
            await wait_for(lambda: len(probe_sink.rejected("P1")) == 5, what="five rejections")
            await sim.set_value("P1.Temperature", 2.0)
            await wait_for(lambda: probe_sink.readings("P1")[-1].celsius == 2.0, what="good again")

            await write_pack(sim, 1, math.nan)
            await wait_for(lambda: bool(cw_sink.rejected("net_weight")), what="NaN weight")
            await write_pack(sim, 2, 241.0)
            await wait_for(lambda: len(cw_sink.packs()) == 1, what="the good pack")

        reasons = [r.reason for r in probe_sink.rejected("P1")]
        assert reasons == [
            "non_finite",
            "non_finite",
            "out_of_range",
            "quality_bad",
            "quality_uncertain",
        ]
        assert probe_sink.rejected("P1")[3].detail == "BadSensorFailure"
        stored = [r.celsius for r in probe_sink.readings("P1")]
        assert all(math.isfinite(c) and -40 <= c <= 60 for c in stored)
        assert len(stored) == 2  # the initial value and the good 2.0
        assert 3.0 not in stored
        assert 4.5 not in stored
        changes = [(e.detail["from"], e.detail["to"]) for e in probe_sink.events("quality_change")]
        assert changes == [("good", "bad"), ("bad", "uncertain"), ("uncertain", "good")]
        # The NaN pack is never a PackEvent: its weights are rejected and the pack recorded
        # as counted without a good weight.
        assert [(r.tag, r.reason) for r in cw_sink.rejected()] == [
            ("net_weight", "non_finite"),
            ("gross_weight", "non_finite"),  # NaN + tare
            ("net_weight", "no_weight"),
        ]
        assert [(p.pack_counter, p.net_g) for p in cw_sink.packs()] == [(2, 241.0)]


# ----------------------------------------------------------------------------- faults


async def test_server_restarts_recover_with_exactly_one_subscription() -> None:
    async with Simulator() as sim:
        sink = Collector()
        adapter = OpcUaAdapter(probes(sim.endpoint), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: adapter.state is LinkState.UP, what="first connection")
            await wait_for(lambda: len(sink.readings()) == 2, what="initial values")
            assert sim.subscriptions() == [2]
            tasks_up = len(client_tasks())
            for restart in range(1, 4):
                await sim.restart()

                def recovered(n: int = restart) -> bool:
                    return len(sink.events("link_up")) == n

                await wait_for(recovered, what="recovery")
                await wait_for(lambda: adapter.state is LinkState.UP, what="UP")
                # Exactly one subscription with exactly the two configured items.
                assert sim.subscriptions() == [2]
                # One reading per value change: no duplicate monitored items.
                value = 10.0 + restart
                before = len(sink.readings("P1"))
                await sim.set_value("P1.Temperature", value)

                def value_read(v: float = value) -> bool:
                    return any(r.celsius == v for r in sink.readings("P1"))

                await wait_for(value_read)
                await asyncio.sleep(0.2)  # several publishing intervals: no second copy
                fresh = [r.celsius for r in sink.readings("P1")[before:]]
                assert fresh.count(value) == 1, fresh
                assert len(client_tasks()) == tasks_up
        kinds = [e.kind for e in sink.records if isinstance(e, DeviceEvent)]
        assert kinds == ["link_up"] + ["link_down", "link_up"] * 3
        assert adapter.reconnects == 3
        for event in sink.events("link_up"):
            assert event.detail["down_for_s"] >= 0
        down = sink.events("link_down")[0]
        assert down.detail["cause"] == "unreachable"
        assert "lost" in down.detail["error"]


async def test_network_cut_leaves_no_orphan_subscription() -> None:
    async with Simulator() as sim, TcpProxy(sim.port) as proxy:
        sink = Collector()
        adapter = OpcUaAdapter(probes(proxy.endpoint()), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: adapter.state is LinkState.UP, what="first connection")
            assert sim.subscriptions() == [2]
            for cut in range(1, 3):
                proxy.cut()  # the server keeps the session for a reconnect (Part 4 §6.7)

                def recovered(n: int = cut) -> bool:
                    return len(sink.events("link_up")) == n

                await wait_for(recovered, what="recovery")
                # The new session took over the old subscription and deleted it.
                assert sim.subscriptions() == [2]
            await sim.set_value("P2.Temperature", 7.5)
            await wait_for(lambda: any(r.celsius == 7.5 for r in sink.readings("P2")))
        await wait_for(lambda: sim.subscriptions() == [], what="clean shutdown", timeout=2)


async def test_hung_server_is_noticed_by_the_watchdog() -> None:
    async with Simulator() as sim, TcpProxy(sim.port) as proxy:
        sink = Collector()
        config = probes(proxy.endpoint(), timeout_s=0.5)
        adapter = OpcUaAdapter(config, sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: adapter.state is LinkState.UP, what="first connection")
            proxy.blackhole = True  # TCP stays up, nothing gets through: only a probe tells
            await wait_for(lambda: bool(sink.events("link_down")), what="the watchdog")
            assert "no answer in time" in sink.events("link_down")[0].detail["error"]
            proxy.blackhole = False
            await wait_for(lambda: bool(sink.events("link_up")), what="recovery")
            assert sim.subscriptions() == [2]  # the hung session's subscription was removed
            await sim.set_value("P1.Temperature", 5.5)
            await wait_for(lambda: any(r.celsius == 5.5 for r in sink.readings("P1")))


async def test_unreachable_server_backs_off_and_cancels_promptly() -> None:
    async with Simulator() as sim:
        endpoint = sim.endpoint
    sink = Collector()
    adapter = OpcUaAdapter(probes(endpoint, reconnect_max_s=0.2), sink, SystemClock())
    async with running(adapter) as task:
        await wait_for(lambda: adapter.connect_attempts >= 4, what="several attempts")
        assert adapter.state in (LinkState.DOWN, LinkState.CONNECTING)
        assert len(sink.events("link_down")) == 1  # once per outage, not per attempt
        assert "connection refused" in adapter.last_error
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A swallowed cancellation would keep reconnecting until the test's timeout.
        assert time.monotonic() - started < 2.0
    assert adapter.state is LinkState.DOWN
    assert not client_tasks()


async def test_cancellation_closes_the_session_promptly_without_leftover_tasks() -> None:
    async with Simulator() as sim:
        before = client_tasks()
        sink = Collector()
        adapter = OpcUaAdapter(checkweigher(sim.endpoint), sink, SystemClock())
        task = asyncio.create_task(adapter.run())
        await wait_for(lambda: bool(sink.events("pack_counter_baseline")), what="connected")
        assert client_tasks() - before
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 2.0
        assert client_tasks() == before
        assert sim.subscriptions() == []  # deleted on the way out, not left to expire


# ----------------------------------------------------------------------------- security


@pytest.mark.parametrize("policy", ["Basic256Sha256", "Aes256_Sha256_RsaPss"])
async def test_pinned_server_certificate_connects_sign_and_encrypt(
    certs: dict[str, Path], policy: str
) -> None:
    async with (
        Simulator(certificate=certs["server"], private_key=certs["server_key"]) as sim,
        TcpProxy(sim.port) as proxy,
    ):
        sink = Collector()
        config = secure_device(
            proxy.endpoint(), certs, policy, server_certificate=str(certs["server"])
        )
        adapter = OpcUaAdapter(config, sink, SystemClock())
        async with running(adapter):
            await wait_for(
                lambda: len(sink.readings()) == 2, what="readings over the secure channel"
            )
            await sim.set_value("P1.Temperature", 3.75)
            await wait_for(lambda: any(r.celsius == 3.75 for r in sink.readings("P1")))
        assert adapter.last_error == ""
        assert f"SecurityPolicy#{policy}".encode() in proxy.sent
        assert b"SecurityPolicy#None" not in proxy.sent


async def test_wrong_pinned_certificate_is_refused_by_name_and_never_falls_back(
    certs: dict[str, Path],
) -> None:
    # The simulator also offers SecurityPolicy None: a fallback would succeed, so its
    # absence is what the proxy's record proves.
    async with (
        Simulator(certificate=certs["server"], private_key=certs["server_key"]) as sim,
        TcpProxy(sim.port) as proxy,
    ):
        sink = Collector()
        config = secure_device(
            proxy.endpoint(),
            certs,
            "Basic256Sha256",
            server_certificate=str(certs["impostor"]),
        )
        config = config.model_copy(update={"timeout_s": 0.5})
        adapter = OpcUaAdapter(config, sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("link_down")), what="refusal", timeout=5)
            await asyncio.sleep(0.3)
            assert adapter.state is LinkState.DOWN
            assert adapter.connect_attempts == 1  # slow retry: about reconnect_max_s (30 s)
        assert "does not match the pinned certificate" in adapter.last_error
        (event,) = sink.events("link_down")
        assert event.detail["cause"] == "security"
        assert "does not match the pinned certificate" in event.detail["error"]
        assert not sink.readings()
        assert b"SecurityPolicy#Basic256Sha256" in proxy.sent
        assert b"SecurityPolicy#None" not in proxy.sent


async def test_trust_list_accepts_the_trusted_server_and_refuses_an_untrusted_one(
    certs: dict[str, Path], tmp_path: Path
) -> None:
    trusted, untrusted = tmp_path / "trusted", tmp_path / "untrusted"
    trusted.mkdir()
    untrusted.mkdir()
    (trusted / "server.der").write_bytes(certs["server"].read_bytes())
    (untrusted / "impostor.der").write_bytes(certs["impostor"].read_bytes())
    async with Simulator(certificate=certs["server"], private_key=certs["server_key"]) as sim:
        good_sink, bad_sink = Collector(), Collector()
        good = OpcUaAdapter(
            secure_device(
                sim.endpoint, certs, "Aes128_Sha256_RsaOaep", trusted_certificates=str(trusted)
            ),
            good_sink,
            SystemClock(),
        )
        bad = OpcUaAdapter(
            secure_device(
                sim.endpoint, certs, "Basic256Sha256", trusted_certificates=str(untrusted)
            ),
            bad_sink,
            SystemClock(),
        )
        async with running(good), running(bad):
            await wait_for(lambda: len(good_sink.readings()) == 2, what="trusted server readings")
            await wait_for(lambda: bool(bad_sink.events("link_down")), what="untrusted refusal")
        assert "BadCertificateUntrusted" in bad.last_error
        assert bad.connect_attempts == 1
        assert not bad_sink.readings()


async def test_expired_pinned_certificate_and_wrong_application_uri_are_named(
    certs: dict[str, Path], tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    expired, _ = make_certificate(
        tmp_path, "old", APPLICATION_URI, server=True, not_before=now - dt.timedelta(days=30)
    )
    foreign, foreign_key = make_certificate(tmp_path, "foreign", "urn:other", server=False)
    nowhere = "opc.tcp://127.0.0.1:1/x"  # never contacted: the checks come first
    other_client = certs | {"client": foreign, "client_key": foreign_key}
    cases = [
        (
            secure_device(nowhere, certs, "Basic256Sha256", server_certificate=str(expired)),
            "expired on",
        ),
        (
            secure_device(
                nowhere, other_client, "Basic256Sha256", server_certificate=str(certs["server"])
            ),
            "do not contain application_uri",
        ),
    ]
    for config, message in cases:
        sink = Collector()
        adapter = OpcUaAdapter(config, sink, SystemClock())
        async with running(adapter):

            def link_down(s: Collector = sink) -> bool:
                return bool(s.events("link_down"))

            await wait_for(link_down, what=message)
        assert message in adapter.last_error
        assert sink.events("link_down")[0].detail["cause"] == "security"


# ----------------------------------------------------------------------------- real store


async def test_packs_and_temperatures_land_in_sqlite(tmp_path: Path) -> None:
    clock = SystemClock()
    config = StoreSection(path=tmp_path / "s.db", commit_interval_ms=20)
    async with Simulator() as sim, Store(config, clock) as store:
        committer = asyncio.create_task(store.run_committer())
        cw = OpcUaAdapter(checkweigher(sim.endpoint), store, clock)
        pt = OpcUaAdapter(probes(sim.endpoint), store, clock)

        async def count(sql: str) -> int:
            return int((await store.fetchall(sql))[0][0])

        async def at_least(sql: str, n: int) -> bool:
            return await count(sql) >= n

        baseline = "SELECT count(*) FROM device_events WHERE kind = 'pack_counter_baseline'"
        async with running(cw), running(pt):
            await wait_for(lambda: at_least(baseline, 1), timeout=5)
            await write_pack(sim, 1, 240.5)
            await wait_for(lambda: at_least("SELECT count(*) FROM packs", 1), timeout=5)
            await write_pack(sim, 2, 236.75)
            await wait_for(lambda: at_least("SELECT count(*) FROM packs", 2), timeout=5)
            await sim.set_value("P1.Temperature", 4.25)
            await sim.set_value("P2.Temperature", math.nan)
            await wait_for(lambda: at_least("SELECT count(*) FROM rejected_inputs", 1), timeout=5)
            await wait_for(
                lambda: at_least("SELECT count(*) FROM temperatures WHERE celsius = 4.25", 1),
                timeout=5,
            )
        await store.stop_committer()
        await committer
        rows = await store.fetchall(
            "SELECT device, line, pack_counter, net_g, gross_g, tare_g, label_seq FROM packs"
            " ORDER BY seq"
        )
        assert rows == [
            ("CW1", "L1", 1, 240.5, 253.0, 12.5, 1),
            ("CW1", "L1", 2, 236.75, 249.25, 12.5, 2),
        ]
        probes_seen = await store.fetchall("SELECT DISTINCT probe FROM temperatures ORDER BY 1")
        assert probes_seen == [("P1",), ("P2",)]
        rejected = await store.fetchall("SELECT source, tag, raw, reason FROM rejected_inputs")
        assert rejected == [("PT", "P2", "nan", "non_finite")]
        assert await count("SELECT count(*) FROM temperatures WHERE celsius IS NULL") == 0


async def test_a_poll_group_reads_only_when_the_sink_has_room() -> None:
    async with Simulator() as sim:
        await sim.set_value("P1.Temperature", 3.5)
        sink = HeldSink()
        adapter = OpcUaAdapter(probes(sim.endpoint, mode="poll"), sink, SystemClock())
        async with running(adapter):
            await asyncio.wait_for(sink.asked.wait(), 20)
            assert sink.readings() == [], "held before its first Read"
            sink.room.set()
            await wait_for(lambda: len(sink.readings("P1")) >= 3, timeout=20, what="three polls")
        assert sink.waits >= 3, "room is asked before every Read"
