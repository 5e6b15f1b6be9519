"""Device simulators: the pure scenario engine, then each server against a bare client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import socket
import statistics
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import cert_gen, security_policies
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from adapters.simulators import (
    ModbusSimulator,
    OpcUaSimulator,
    ScannerSimulator,
    SimulatorSettings,
    run_simulators,
)
from adapters.simulators.opcua_server import APPLICATION_URI
from adapters.simulators.scenario import (
    DropoutChanged,
    EventKind,
    LineSpec,
    PackEvent,
    ProbeSample,
    ScenarioEngine,
    ScenarioName,
    SimEvent,
)
from gateway.core.codecs.gs1 import Gs1Label, gtin_check_digit, parse_gs1
from gateway.core.codecs.registers import DataType, Table, WordOrder, decode_registers
from tests.support.waiting import wait_for, wait_for_value

PACK_DATE = date(2025, 3, 14)
LINE = LineSpec(pack_date=PACK_DATE)
CW_VARIABLES = (
    "NominalWeight",
    "LowerToleranceLimit1",
    "LowerToleranceLimit2",
    "LastNetWeight",
    "LastGrossWeight",
    "TareWeight",
    "LabelSequence",
    "Accepted",
    "PackCounter",
)


# ----------------------------------------------------------------------------- helpers


def packs(events: list[SimEvent], cw: str = "CW1") -> list[PackEvent]:
    return [e for e in events if isinstance(e, PackEvent) and e.checkweigher_id == cw]


def reference_packs(
    seed: int, scenario: ScenarioName, until: float, **kw: Any
) -> dict[int, PackEvent]:
    engine = ScenarioEngine(seed=seed, scenario=scenario, line=LINE, **kw)
    return {p.pack_counter: p for p in packs(engine.advance(until))}


def parse_label(text: str) -> Gs1Label:
    parsed = parse_gs1(text, today=PACK_DATE)
    assert isinstance(parsed, Gs1Label), parsed
    return parsed


@pytest.fixture
async def no_stray_tasks() -> Any:
    """Fail if a test leaves tasks running after its simulators have stopped."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()

    def strays() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}

    # Client libraries finish their own bookkeeping tasks a moment after closing.
    await wait_for(lambda: not strays(), timeout=2.0, what="background tasks to finish")


# ----------------------------------------------------------------------------- scenario


def test_same_seed_gives_same_events_and_slicing_does_not_matter() -> None:
    one = ScenarioEngine(seed=7, scenario=ScenarioName.DEMO, line=LINE)
    other = ScenarioEngine(seed=7, scenario=ScenarioName.DEMO, line=LINE)
    stepped: list[SimEvent] = []
    t = 0.0
    while t < 400:
        t += 0.37
        stepped += other.advance(t)
    assert one.advance(t) == stepped
    assert any(isinstance(e, PackEvent) for e in stepped)
    assert any(isinstance(e, ProbeSample) for e in stepped)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), cuts=st.lists(st.floats(0, 120), max_size=8))
def test_any_slicing_of_time_gives_the_same_events(seed: int, cuts: list[float]) -> None:
    whole = ScenarioEngine(seed=seed, scenario=ScenarioName.DEMO, line=LINE).advance(120)
    sliced = ScenarioEngine(seed=seed, scenario=ScenarioName.DEMO, line=LINE)
    events: list[SimEvent] = []
    for cut in sorted(cuts):
        events += sliced.advance(cut)
    events += sliced.advance(120)
    assert events == whole


def test_different_seed_gives_different_weights() -> None:
    a = packs(ScenarioEngine(seed=1, line=LINE).advance(60))
    b = packs(ScenarioEngine(seed=2, line=LINE).advance(60))
    assert [p.pack_counter for p in a] == [p.pack_counter for p in b]
    assert [p.net_g for p in a] != [p.net_g for p in b]


def test_time_must_not_go_backwards() -> None:
    engine = ScenarioEngine(line=LINE)
    engine.advance(10)
    with pytest.raises(ValueError, match="backwards"):
        engine.advance(9)


@pytest.mark.parametrize(
    ("scenario", "kinds"),
    [
        (ScenarioName.NORMAL, set()),
        (ScenarioName.UNDERWEIGHT_DRIFT, {EventKind.UNDERWEIGHT_DRIFT, EventKind.T2_BREACH}),
        (ScenarioName.TEMPERATURE_EXCURSION, {EventKind.TEMPERATURE_EXCURSION}),
        (ScenarioName.LABEL_GAP, {EventKind.LABEL_GAP}),
        (ScenarioName.DROPOUT, {EventKind.DROPOUT}),
        (ScenarioName.DEMO, set(EventKind)),
    ],
)
def test_schedule_contains_each_scripted_event(
    scenario: ScenarioName, kinds: set[EventKind]
) -> None:
    schedule = ScenarioEngine(scenario=scenario, line=LINE).schedule
    assert {e.kind for e in schedule.events} == kinds
    assert (schedule.cycle_s is not None) == (scenario is ScenarioName.DEMO)


def test_demo_shows_every_kind_within_six_minutes_and_repeats() -> None:
    schedule = ScenarioEngine(scenario=ScenarioName.DEMO, line=LINE).schedule
    assert schedule.cycle_s is not None
    first_seen = {k: min(e.start_s for e in schedule.events if e.kind is k) for k in EventKind}
    assert max(first_seen.values()) <= 360
    second_cycle = [
        e for e in schedule.occurrences(2 * schedule.cycle_s) if e.start_s >= schedule.cycle_s
    ]
    assert len(second_cycle) == len(schedule.events)
    assert all(e.end_s is None or e.end_s <= schedule.cycle_s for e in schedule.events)


def test_labels_are_valid_gs1_with_the_run_data() -> None:
    labelled = [p for p in packs(ScenarioEngine(seed=3, line=LINE).advance(120)) if p.label]
    assert len(labelled) > 100
    for p in labelled:
        assert p.label is not None
        assert p.label.startswith("]C1")
        label = parse_label(p.label)
        assert label.gtin is not None
        assert len(label.gtin) == 14
        assert gtin_check_digit(label.gtin[:13]) == int(label.gtin[13])
        assert label.batch == LINE.batch_code
        assert label.pack_date == PACK_DATE
        assert label.use_by == PACK_DATE + timedelta(days=9)
        assert label.serial == str(p.label_seq)
        # A fixed-weight pack declares its nominal quantity (the ℮ system judges the rest).
        assert label.net_weight_kg == Decimal(math.floor(p.nominal_g)) / 1000


def test_weights_centre_on_target_and_are_consistent() -> None:
    cw1 = packs(ScenarioEngine(seed=4, line=LINE).advance(600))
    nets = [p.net_g for p in cw1]
    assert 242.5 < statistics.mean(nets) < 243.5
    assert 1.2 < statistics.stdev(nets) < 1.8
    assert all(p.gross_g == round(p.net_g + p.tare_g, 1) for p in cw1)
    assert [p.pack_counter for p in cw1] == list(range(1, len(cw1) + 1))


def test_underweight_drift_goes_below_qn_and_breaches_t2_when_scheduled() -> None:
    engine = ScenarioEngine(seed=5, scenario=ScenarioName.UNDERWEIGHT_DRIFT, line=LINE)
    cw = LINE.checkweigher("CW1")
    assert (cw.t1_g, cw.t2_g) == (231.0, 222.0)  # Qn 240 g: TNE 9 g (domain-rules §1.3)
    cw1 = packs(engine.advance(200))
    drift = engine.schedule.of_kind(EventKind.UNDERWEIGHT_DRIFT)[0]
    settled = [p.net_g for p in cw1 if p.t > drift.start_s + drift.ramp_s]
    assert statistics.mean(settled) < cw.nominal_g
    below_t2 = [p for p in cw1 if p.net_g < cw.t2_g]
    breach_times = [e.start_s for e in engine.schedule.of_kind(EventKind.T2_BREACH)]
    assert len(below_t2) == len(breach_times) == 2
    for p, at in zip(below_t2, breach_times, strict=True):
        assert at <= p.t < at + 1.0  # the first pack weighed at or after the scripted time
        assert not p.accepted
        assert p.label_seq is None
        assert p.label is None
    assert all(p.accepted == (p.net_g >= cw.t1_g) for p in cw1)


def test_temperature_excursions_are_short_then_long() -> None:
    engine = ScenarioEngine(seed=6, scenario=ScenarioName.TEMPERATURE_EXCURSION, line=LINE)
    all_samples = [e for e in engine.advance(700) if isinstance(e, ProbeSample)]
    samples = [e for e in all_samples if e.probe_id == "P1"]
    windows = engine.schedule.of_kind(EventKind.TEMPERATURE_EXCURSION)
    durations = [w.duration_s for w in windows]
    assert durations[0] is not None
    assert durations[0] < 60
    assert durations[1] is not None
    assert durations[1] > 300
    for s in samples:
        inside = any(w.covers(s.t) for w in windows)
        assert (s.celsius > 5.0) == inside, s
    for e in all_samples:  # every other probe stays around its resting value
        spec = LINE.probe(e.probe_id)
        if e.probe_id != "P1":
            assert abs(e.celsius - spec.baseline_c) <= 3 * spec.noise_c + 0.06, (
                e
            )  # + rounding to 0.1


def test_label_gap_skips_exactly_three_numbers_once() -> None:
    engine = ScenarioEngine(seed=8, scenario=ScenarioName.LABEL_GAP, line=LINE)
    seqs = [p.label_seq for p in packs(engine.advance(300)) if p.label_seq is not None]
    steps = [b - a for a, b in itertools.pairwise(seqs)]
    assert sorted(set(steps)) == [1, 4]
    assert steps.count(4) == 1


def test_dropout_starts_and_ends_as_scheduled() -> None:
    engine = ScenarioEngine(scenario=ScenarioName.DROPOUT, line=LINE)
    edges = [e for e in engine.advance(120) if isinstance(e, DropoutChanged)]
    window = engine.schedule.of_kind(EventKind.DROPOUT)[0]
    assert edges == [DropoutChanged(window.start_s, True), DropoutChanged(window.end_s or 0, False)]
    assert engine.dropout_active(window.start_s)
    assert not engine.dropout_active(window.end_s or 0)


# ----------------------------------------------------------------------------- OPC UA


async def test_opcua_client_sees_packs_in_order_and_consistent(no_stray_tasks: None) -> None:
    seed = 11
    reference = reference_packs(seed, ScenarioName.NORMAL, 60)
    async with OpcUaSimulator(seed=seed, speed=10, line=LINE) as sim:
        assert sim.endpoint.startswith("opc.tcp://127.0.0.1:")
        client = Client(sim.endpoint, timeout=5)
        async with client:
            assert await client.get_namespace_index("urn:lineside:simulator") == 2
            cw = {n: client.get_node(f"ns=2;s=CW1.{n}") for n in CW_VARIABLES}
            assert await cw["NominalWeight"].read_value() == 240.0
            assert await cw["LowerToleranceLimit1"].read_value() == 231.0
            assert await cw["LowerToleranceLimit2"].read_value() == 222.0
            assert 0 < await client.get_node("ns=2;s=P1.Temperature").read_value() < 5
            assert 0 < await client.get_node("ns=2;s=P2.Temperature").read_value() < 5

            # React to counter changes like the gateway does, then read the pack's values.
            seen: list[int] = []
            changes: asyncio.Queue[int] = asyncio.Queue()

            class Handler:
                def datachange_notification(self, node: Any, val: int, data: Any) -> None:
                    changes.put_nowait(val)

            sub = await client.create_subscription(20, Handler())
            await sub.subscribe_data_change(cw["PackCounter"])
            async with asyncio.timeout(5):
                while len(seen) < 4:
                    counter = await changes.get()
                    if counter == 0:
                        continue
                    names = ("LastNetWeight", "LastGrossWeight", "TareWeight", "Accepted")
                    values = await client.read_values([cw[n] for n in names])
                    expected = reference[counter]
                    assert values == [
                        expected.net_g,
                        expected.gross_g,
                        expected.tare_g,
                        expected.accepted,
                    ]
                    seen.append(counter)
            assert seen == sorted(seen)
            await sub.delete()

            label = parse_label(await client.get_node("ns=2;s=SC1.LastRead").read_value())
            assert label.gtin == LINE.checkweigher("CW1").gtin


async def test_opcua_set_value_injects_nan_inf_and_bad_status() -> None:
    async with OpcUaSimulator(drive=False, line=LINE) as sim, Client(sim.endpoint) as client:
        node = client.get_node("ns=2;s=P1.Temperature")
        await sim.set_value("P1.Temperature", math.nan)
        assert math.isnan(await node.read_value())
        await sim.set_value("ns=2;s=CW1.LastNetWeight", -math.inf)
        assert await client.get_node("ns=2;s=CW1.LastNetWeight").read_value() == -math.inf
        await sim.set_value("P1.Temperature", 3.0, "BadSensorFailure")
        dv = await node.read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode is not None
        assert dv.StatusCode.value == StatusCodes.BadSensorFailure
        await sim.set_value("P1.Temperature", 4.5, StatusCodes.UncertainLastUsableValue)
        dv = await node.read_data_value(raise_on_bad_status=False)
        assert dv.Value is not None
        assert dv.Value.Value == 4.5
        assert dv.StatusCode is not None
        assert dv.StatusCode.is_uncertain()


async def test_opcua_restart_keeps_port_and_node_ids(no_stray_tasks: None) -> None:
    async with OpcUaSimulator(seed=12, speed=10, line=LINE) as sim:
        port = sim.port
        counter = "ns=2;s=CW1.PackCounter"
        async with Client(sim.endpoint) as client:
            before = await wait_for_value(
                client.get_node(counter).read_value, lambda v: v >= 2, what="two packs"
            )
        await sim.restart()
        assert sim.port == port
        assert sim.running
        async with Client(sim.endpoint) as client:
            assert await client.get_namespace_index("urn:lineside:simulator") == 2
            after = await wait_for_value(
                client.get_node(counter).read_value, lambda v: v > before, what="counter to move"
            )
            assert after > before


def make_certificate(directory: Path, name: str, uri: str, *, server: bool) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {},
        [
            x509.UniformResourceIdentifier(uri),
            x509.DNSName("localhost"),
            x509.DNSName(socket.gethostname()),
        ],
        [usage],
    )
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


async def test_opcua_offers_sign_and_encrypt_endpoints_with_a_certificate(tmp_path: Path) -> None:
    server_cert, server_key = make_certificate(tmp_path, "sim", APPLICATION_URI, server=True)
    client_cert, client_key = make_certificate(
        tmp_path, "gateway", "urn:lineside:test:client", server=False
    )
    policies: list[type[security_policies.SecurityPolicy]] = [
        security_policies.SecurityPolicyBasic256Sha256,
        security_policies.SecurityPolicyAes128Sha256RsaOaep,
        security_policies.SecurityPolicyAes256Sha256RsaPss,
    ]
    async with OpcUaSimulator(
        drive=False, line=LINE, certificate=server_cert, private_key=server_key
    ) as sim:
        endpoints = await Client(sim.endpoint).connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints}
        encrypt = ua.MessageSecurityMode.SignAndEncrypt
        insecure = (security_policies.SecurityPolicyNone.URI, ua.MessageSecurityMode.None_)
        assert offered == {insecure} | {(policy.URI, encrypt) for policy in policies}
        for policy in policies:
            client = Client(sim.endpoint)
            client.application_uri = "urn:lineside:test:client"
            await client.set_security(policy, str(client_cert), str(client_key), mode=encrypt)
            async with client:
                assert await client.get_node("ns=2;s=CW1.NominalWeight").read_value() == 240.0


# ----------------------------------------------------------------------------- Modbus


def modbus_client(sim: ModbusSimulator, *, timeout: float = 1.0) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=timeout, retries=0)


def number(value: float | str) -> float:
    """A decoded register value of a numeric type (``decode_registers`` may give a string)."""
    assert isinstance(value, int | float), value
    return value


async def test_modbus_registers_decode_as_documented(no_stray_tasks: None) -> None:
    seed = 21
    engine = ScenarioEngine(seed=seed, line=LINE)
    async with ModbusSimulator(seed=seed, drive=False, line=LINE) as sim:
        client = modbus_client(sim)
        await client.connect()
        try:
            rr = await client.read_input_registers(0, count=4, device_id=1)
            assert not rr.isError(), rr
            temps = [number(decode_registers([w], DataType.INT16)) / 10 for w in rr.registers]
            expected = [engine.probe_value(p, 0.0) for p in ("TT1", "TT2", "TT3", "TT4")]
            assert temps == pytest.approx(expected)
            assert temps[2] < -15  # the blast freezer: a negative int16

            rr = await client.read_holding_registers(100, count=2, device_id=1)
            p3 = decode_registers(rr.registers, DataType.FLOAT32, WordOrder.CDAB)
            assert p3 == pytest.approx(engine.probe_value("P3", 0.0), abs=1e-4)

            # The documented example: -123 in an input register is -12.3 °C.
            sim.set_registers(Table.INPUT, 0, [0xFF85], hold=True)
            rr = await client.read_input_registers(0, count=1, device_id=1)
            assert number(decode_registers(rr.registers, DataType.INT16)) / 10 == -12.3

            for address in (0, 99, 102, 199, 207):  # unmapped holding registers next to the map
                rr = await client.read_holding_registers(address, count=1, device_id=1)
                assert (rr.isError(), rr.exception_code) == (True, 0x02), address
            rr = await client.write_register(200, 1, device_id=1)
            assert rr.isError()
            assert rr.exception_code == 0x02
        finally:
            client.close()


async def test_modbus_scale_counter_and_weights_follow_the_scenario(no_stray_tasks: None) -> None:
    seed = 22
    reference = {
        p.pack_counter: p for p in packs(ScenarioEngine(seed=seed, line=LINE).advance(60), "CW2")
    }
    async with ModbusSimulator(seed=seed, speed=20, line=LINE) as sim:
        client = modbus_client(sim)
        await client.connect()
        try:

            async def read_scale() -> list[int]:
                rr = await client.read_holding_registers(200, count=7, device_id=1)
                assert not rr.isError(), rr
                return list(rr.registers)

            first = await wait_for_value(read_scale, lambda r: r[4:6] != [0, 0], what="first pack")
            later = await wait_for_value(
                read_scale, lambda r: r[4:6] != first[4:6], what="counter to increase"
            )
            for regs in (first, later):
                counter = decode_registers(regs[4:6], DataType.UINT32)
                assert isinstance(counter, int)
                pack = reference[counter]
                net = decode_registers(regs[0:2], DataType.FLOAT32, WordOrder.ABCD)
                gross = decode_registers(regs[2:4], DataType.FLOAT32, WordOrder.ABCD)
                assert net == pytest.approx(pack.net_g, abs=1e-3)
                assert gross == pytest.approx(pack.gross_g, abs=1e-3)
                assert regs[6] & 0x1  # stable
                assert bool(regs[6] & 0x2) == pack.accepted
            assert number(decode_registers(later[4:6], DataType.UINT32)) > number(
                decode_registers(first[4:6], DataType.UINT32)
            )
        finally:
            client.close()


@pytest.mark.parametrize("code", [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0B])
async def test_modbus_fault_range_answers_configured_exception(code: int) -> None:
    async with ModbusSimulator(drive=False, faults={(9000, 9010): code}, line=LINE) as sim:
        client = modbus_client(sim)
        await client.connect()
        try:
            rr = await client.read_holding_registers(9005, count=2, device_id=1)
            assert rr.isError()
            assert rr.exception_code == code
            rr = await client.read_input_registers(8999, count=2, device_id=1)  # overlaps 9000
            assert rr.isError()
            assert rr.exception_code == code
            rr = await client.read_input_registers(0, count=4, device_id=1)  # outside: fine
            assert not rr.isError()
        finally:
            client.close()


async def test_modbus_silent_mode_times_out_then_recovers() -> None:
    async with ModbusSimulator(drive=False, line=LINE) as sim:
        client = modbus_client(sim, timeout=0.3)
        await client.connect()
        try:
            assert not (await client.read_input_registers(0, count=1)).isError()
            sim.silent = True
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0, count=1)
            sim.silent = False
            assert not (await client.read_input_registers(0, count=1)).isError()
        finally:
            client.close()


async def test_modbus_restart_keeps_port_and_dropout_goes_silent(no_stray_tasks: None) -> None:
    # Dropout from 30 s to 60 s simulated = 0.3 s to 0.6 s real at speed 100.
    async with ModbusSimulator(scenario=ScenarioName.DROPOUT, speed=100, line=LINE) as sim:
        port = sim.port
        await sim.restart()
        assert sim.port == port
        await wait_for(lambda: sim.silent, what="dropout to start")
        client = modbus_client(sim, timeout=0.1)
        await client.connect()
        try:
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0, count=1)
            await wait_for(lambda: not sim.silent, what="dropout to end")
            # The client may have given up on the connection; a fresh one must work.
            client.close()
            client = modbus_client(sim)
            await client.connect()
            assert not (await client.read_input_registers(0, count=4)).isError()
        finally:
            client.close()


# ----------------------------------------------------------------------------- scanner


async def test_scanner_pushes_crlf_terminated_reads(no_stray_tasks: None) -> None:
    async with ScannerSimulator(seed=31, speed=20, line=LINE) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        try:
            async with asyncio.timeout(5):
                reads = [await reader.readuntil(b"\r\n") for _ in range(3)]
            serials = []
            for raw in reads:
                assert raw.endswith(b"\r\n")
                assert raw.count(b"\r\n") == 1
                label = parse_label(raw.decode("ascii"))
                assert label.gtin == LINE.checkweigher("CW1").gtin
                assert label.serial is not None
                serials.append(int(label.serial))
            assert serials == list(range(serials[0], serials[0] + 3))
        finally:
            writer.close()
            await writer.wait_closed()


async def test_scanner_send_injects_garbage_and_split_reads() -> None:
    async with ScannerSimulator(drive=False, line=LINE) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        try:
            async with asyncio.timeout(5):
                await sim.wait_for_clients(1)
                await sim.send_read(b"\x00\xffnot a label")
                assert await reader.readuntil(b"\r\n") == b"\x00\xffnot a label\r\n"

                whole = b"]C10105012345000015" + b"10B1\x1d2142\r\n"
                await sim.send(whole[:12])
                first = await reader.read(100)  # the first segment alone, no terminator yet
                assert first == whole[:12]
                await sim.send(whole[12:])
                rest = await reader.readuntil(b"\r\n")
                assert first + rest == whole
                assert parse_label((first + rest).decode("ascii")).serial == "42"
        finally:
            writer.close()
            await writer.wait_closed()


async def test_scanner_restart_and_dropout_keep_the_port(no_stray_tasks: None) -> None:
    async with ScannerSimulator(scenario=ScenarioName.DROPOUT, speed=100, line=LINE) as sim:
        port = sim.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            await sim.wait_for_clients(1)
            await sim.restart()
            assert sim.port == port
            assert await reader.read() == b""  # the restart closed the old connection
            writer.close()
            await wait_for(lambda: not sim.running, what="dropout to close the listener")
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
            await wait_for(lambda: sim.running, what="dropout to end")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await reader.readuntil(b"\r\n")).startswith(b"]C1")
            writer.close()
            await writer.wait_closed()


async def test_scanner_stopping_with_a_client_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dropout (or a restart, or the end) with a client connected: its handler is ended,
    and nothing is logged as an error (Python 3.11's stream server logs a handler task that
    ends cancelled as an "Exception in callback" with a traceback)."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    async with ScannerSimulator(drive=False, line=LINE) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        async with asyncio.timeout(5):
            await sim.wait_for_clients(1)
            await sim.restart()
            assert await reader.read() == b""  # the restart closed the connection
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0)  # the stream server's done-callback has run
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# ----------------------------------------------------------------------------- together


async def test_run_simulators_reports_addresses_and_stops_cleanly(no_stray_tasks: None) -> None:
    started: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    settings_ = SimulatorSettings(seed=3, scenario=ScenarioName.NORMAL, speed=10)
    runner = asyncio.create_task(
        run_simulators(settings_, on_started=started.put_nowait), name="run"
    )
    try:
        async with asyncio.timeout(15):
            addresses = await started.get()
        assert set(addresses) == {"opcua", "modbus", "scanner", "erp"}
        assert addresses["erp"].startswith("http://127.0.0.1:")
        assert addresses["opcua"].startswith("opc.tcp://127.0.0.1:")
        host, port = addresses["scanner"].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        async with asyncio.timeout(5):
            assert parse_label((await reader.readuntil(b"\r\n")).decode("ascii")).gtin
        writer.close()
        await writer.wait_closed()
        host, port = addresses["modbus"].rsplit(":", 1)
        client = AsyncModbusTcpClient(host, port=int(port), timeout=1, retries=0)
        await client.connect()
        assert not (await client.read_input_registers(0, count=4)).isError()
        client.close()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def test_settings_validate_scenario_speed_and_ports() -> None:
    assert SimulatorSettings(scenario="label_gap").scenario is ScenarioName.LABEL_GAP  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid"):
        SimulatorSettings(scenario="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="speed"):
        SimulatorSettings(speed=0)
    with pytest.raises(ValueError, match="port"):
        SimulatorSettings(modbus_port=70000)
