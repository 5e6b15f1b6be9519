"""A checkweigher's program, mode, rejects and changeover; a probe's fault codes."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Quality, TagSample
from adapters.modbus.client import tag_sample
from adapters.pack_signals import Edge, RejectPairing, count_of, flag, program_text
from adapters.roles import CheckweigherInterpreter, TemperatureInterpreter, interpreter_for
from gateway.config import ModbusTag, ModbusTcpDevice, parse_config
from gateway.core.records import (
    SENSOR_FAULT_CODE,
    DeviceEvent,
    PackEvent,
    RecordFlag,
    RejectedInput,
    TemperatureReading,
)

T0 = 1_767_225_600_000_000
S = 1_000_000


def _device(role: str, tags: list[dict[str, Any]]) -> ModbusTcpDevice:
    config = parse_config(
        {
            "gateway": {"id": "g", "site": "s"},
            "store": {"path": "x.db"},
            "lines": [{"id": "L1"}],
            "devices": [
                {"id": "d1", "kind": "modbus_tcp", "line": "L1", "role": role, "host": "h"}
                | {"tags": tags}
            ],
        }
    )
    device = config.devices[0]
    assert isinstance(device, ModbusTcpDevice)
    return device


def checkweigher(*extra: dict[str, Any]) -> CheckweigherInterpreter:
    device = _device(
        "checkweigher",
        [
            {"name": "pack_counter", "address": 0, "type": "uint32"},
            {"name": "net_weight", "address": 2, "type": "float32"},
            *extra,
        ],
    )
    interpreter = interpreter_for(device, {t.name: t for t in device.tags})
    assert isinstance(interpreter, CheckweigherInterpreter)
    return interpreter


STATUS = [
    {"name": "rejected", "address": 10, "bit": 0},
    {"name": "catch_weight_mode", "address": 10, "bit": 2},
    {"name": "changeover", "address": 10, "bit": 5},
]
PROGRAM = {"name": "program", "address": 11}
REJECTS = {"name": "reject_counter", "address": 12, "type": "uint32"}


def feed(cw: CheckweigherInterpreter, ts: int, counter: int | None, **values: object) -> list:
    samples = [TagSample(name, value) for name, value in values.items()]
    if counter is not None:
        samples.append(TagSample("pack_counter", counter))
    return cw.interpret(samples, ts)


def packs(records: list) -> list[PackEvent]:
    return [r for r in records if isinstance(r, PackEvent)]


def events(records: list, kind: str) -> list[DeviceEvent]:
    return [r for r in records if isinstance(r, DeviceEvent) and r.kind == kind]


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (12.0, "12"),
        (12.5, "12.5"),
        (" P12 ", "P12"),
        (b"41240", "41240"),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_program_text(value: object, text: str | None) -> None:
    assert program_text(value) == text


def test_flags_and_counts() -> None:
    assert [flag(v) for v in (True, False, 1, 0, 4, 1.0, None)] == [
        True,
        False,
        True,
        False,
        True,
        None,
        None,
    ]
    assert [count_of(v) for v in (7, 7.0, 7.5, True, "7")] == [7, 7, None, None, None]


# ----------------------------------------------------------------------------- pairing


@pytest.mark.parametrize(
    ("base", "counter", "rejects", "accepted", "why"),
    [
        pytest.param((10, 3), 11, 3, True, "", id="k1-r0-accepted"),
        pytest.param((10, 3), 11, 4, False, "", id="k1-r1-rejected"),
        pytest.param((10, 3), 13, 3, True, "", id="k3-r0-all-accepted"),
        pytest.param((10, 3), 13, 6, False, "", id="k3-r3-all-rejected"),
        pytest.param((10, 3), 13, 4, None, "1 of the last 3 packs", id="k3-r1-unknown"),
        pytest.param((10, 3), 11, 5, None, "moved by 2 while", id="more-rejects-than-packs"),
        pytest.param((10, 3), 11, 0, None, "went back from 3 to 0", id="reject-counter-reset"),
        pytest.param((10, None), 11, 3, None, "no earlier reject count", id="no-baseline"),
        pytest.param((10, 3), 11, None, None, "not read with this pack", id="unread"),
    ],
)
def test_reject_pairing_rule(
    base: tuple[int, int | None], counter: int, rejects: int | None, accepted: bool | None, why: str
) -> None:
    pairing = RejectPairing()
    pairing.baseline(*base)
    verdict = pairing.pack(counter, rejects, counter_reset=False)
    assert verdict.accepted is accepted
    assert why in verdict.doubt
    assert bool(verdict.doubt) == (accepted is None)


def test_an_unread_count_is_spanned_by_the_next_one() -> None:
    pairing = RejectPairing()
    pairing.baseline(10, 3)
    assert pairing.pack(11, None, counter_reset=False).accepted is None
    assert pairing.pack(12, 5, counter_reset=False).accepted is False  # 2 packs, 2 rejects
    assert pairing.pack(13, 5, counter_reset=False).accepted is True


def test_a_pack_counter_reset_restarts_the_pairing() -> None:
    pairing = RejectPairing()
    pairing.baseline(10, 3)
    assert pairing.pack(1, 3, counter_reset=True).accepted is None
    assert pairing.pack(2, 4, counter_reset=False).accepted is False


def test_edges() -> None:
    edge = Edge()
    assert [edge.update(s) for s in (False, False, True, True, False)] == [
        None,
        None,
        True,
        None,
        False,
    ]
    assert Edge().update(True) is True  # started in changeover: reported


# ----------------------------------------------------------------------------- packs


def test_status_word_program_and_mode_fill_the_pack() -> None:
    cw = checkweigher(*STATUS, PROGRAM)
    feed(cw, T0, 10, net_weight=250.0, rejected=False, catch_weight_mode=False, program=12)
    [pack] = packs(feed(cw, T0 + 1, 11, net_weight=251.5, rejected=False, program=12))
    assert (pack.program, pack.catch_weight, pack.accepted) == ("12", False, True)
    [pack] = packs(
        feed(cw, T0 + 2, 12, net_weight=180.0, rejected=True, catch_weight_mode=True, program=13)
    )
    assert (pack.program, pack.catch_weight, pack.accepted) == ("13", True, False)
    assert pack.flags == 0


def test_a_device_without_the_new_tags_gives_the_same_packs_as_before() -> None:
    cw = checkweigher({"name": "accepted", "address": 10})
    feed(cw, T0, 10, net_weight=250.0, accepted=1)
    [pack] = packs(feed(cw, T0 + 1, 11, net_weight=251.0, accepted=0))
    assert (pack.accepted, pack.program, pack.catch_weight, pack.flags) == (False, None, None, 0)
    plain = checkweigher()
    feed(plain, T0, 10, net_weight=250.0)
    [pack] = packs(feed(plain, T0 + 1, 11, net_weight=251.0))
    assert pack.accepted is None
    assert pack.flags == 0


def test_reject_counter_decides_accepted() -> None:
    cw = checkweigher(REJECTS)
    feed(cw, T0, 100, net_weight=250.0, reject_counter=7)
    [pack] = packs(feed(cw, T0 + 1, 101, net_weight=251.0, reject_counter=7))
    assert (pack.accepted, pack.flags) == (True, 0)
    [pack] = packs(feed(cw, T0 + 2, 102, net_weight=170.0, reject_counter=8))
    assert (pack.accepted, pack.flags) == (False, 0)


def test_unpairable_rejects_make_the_pack_uncertain() -> None:
    cw = checkweigher(REJECTS)
    feed(cw, T0, 100, net_weight=250.0, reject_counter=7)
    records = feed(cw, T0 + 1, 103, net_weight=251.0, reject_counter=8)
    [pack] = packs(records)
    assert pack.accepted is None
    assert pack.flags & RecordFlag.VALUES_UNCERTAIN
    [missed] = events(records, "missed_packs")
    assert missed.detail["missed"] == 2
    [event] = events(records, "pack_values_uncertain")
    assert "1 of the last 3 packs were rejected" in event.detail["reasons"][0]
    assert cw.uncertain_packs == 1
    [pack] = packs(feed(cw, T0 + 2, 104, net_weight=252.0, reject_counter=8))
    assert (pack.accepted, pack.flags) == (True, 0)


def test_a_flag_read_with_the_pack_beats_the_counter() -> None:
    cw = checkweigher({"name": "rejected", "address": 10, "bit": 0}, REJECTS)
    feed(cw, T0, 100, net_weight=250.0, rejected=False, reject_counter=7)
    [pack] = packs(feed(cw, T0 + 1, 103, net_weight=251.0, rejected=True, reject_counter=8))
    assert (pack.accepted, pack.flags) == (False, 0)


def test_first_pack_after_a_restart_without_a_reject_baseline_is_uncertain() -> None:
    cw = checkweigher(REJECTS)
    cw.last_counter = 100  # from the store
    [pack] = packs(feed(cw, T0, 101, net_weight=250.0, reject_counter=7))
    assert pack.accepted is None
    assert pack.flags & RecordFlag.VALUES_UNCERTAIN
    [pack] = packs(feed(cw, T0 + 1, 102, net_weight=250.0, reject_counter=7))
    assert (pack.accepted, pack.flags) == (True, 0)


def test_changeover_edges_are_events_pack_or_not() -> None:
    cw = checkweigher(*STATUS)
    assert events(feed(cw, T0, 10, net_weight=250.0, changeover=False), "changeover") == []
    assert feed(cw, T0 + 1, None, changeover=False) == []
    [rising] = events(feed(cw, T0 + 2, None, changeover=True), "changeover")
    assert rising.detail == {"source": "device", "active": True}
    assert (rising.device, rising.line, rising.ts_us) == ("d1", "L1", T0 + 2)
    assert feed(cw, T0 + 3, None, changeover=True) == []
    # A bad read is no edge: the state is unknown, not off.
    bad = cw.interpret([TagSample("changeover", None, Quality.BAD, "timeout")], T0 + 4)
    assert events(bad, "changeover") == []
    records = feed(cw, T0 + 5, 11, net_weight=251.0, changeover=False)
    [falling] = events(records, "changeover")
    assert falling.detail == {"source": "device", "active": False}
    assert len(packs(records)) == 1


def test_a_device_already_in_changeover_at_start_reports_it() -> None:
    cw = checkweigher(*STATUS)
    [event] = events(feed(cw, T0, 10, net_weight=250.0, changeover=True), "changeover")
    assert event.detail["active"] is True


# ----------------------------------------------------------------------------- fault codes


def probe() -> tuple[TemperatureInterpreter, ModbusTag]:
    device = _device(
        "temperature_probe",
        [
            {
                "name": "T1",
                "address": 0,
                "type": "int16",
                "scale": 0.1,
                "min": -40,
                "max": 60,
                "stuck_after_s": 10,
                "fault_codes": [32767, -32768],
            }
        ],
    )
    interpreter = interpreter_for(device, {t.name: t for t in device.tags})
    assert isinstance(interpreter, TemperatureInterpreter)
    return interpreter, device.tags[0]


def test_a_fault_code_is_not_a_temperature_nor_out_of_range() -> None:
    interpreter, tag = probe()
    [reading] = interpreter.interpret([tag_sample(tag, 68)], T0)
    assert isinstance(reading, TemperatureReading)
    assert repr(reading.celsius) == "6.8"
    [rejected] = interpreter.interpret([tag_sample(tag, 32767)], T0 + S)
    assert isinstance(rejected, RejectedInput)
    assert (rejected.reason, rejected.raw, rejected.source, rejected.tag) == (
        SENSOR_FAULT_CODE,
        "32767",
        "d1",
        "T1",
    )
    assert rejected.line == "L1"
    [low] = interpreter.interpret([tag_sample(tag, -32768)], T0 + 2 * S)
    assert isinstance(low, RejectedInput)
    assert low.reason == SENSOR_FAULT_CODE
    # 3276.6 °C is no code: out of range as before.
    [high] = interpreter.interpret([tag_sample(tag, 32766)], T0 + 3 * S)
    assert isinstance(high, RejectedInput)
    assert high.reason == "out_of_range"


def test_a_held_fault_code_is_no_stuck_value_and_a_value_after_it_is_fresh() -> None:
    interpreter, tag = probe()
    interpreter.interpret([tag_sample(tag, 68)], T0)
    for second in range(1, 30):
        interpreter.interpret([tag_sample(tag, 32767)], T0 + second * S)
        assert interpreter.tick(T0 + second * S) == []
    [reading] = interpreter.interpret([tag_sample(tag, 68)], T0 + 30 * S)
    assert isinstance(reading, TemperatureReading)
    assert interpreter.tick(T0 + 39 * S) == []  # stuck counts from the value after the code
    assert interpreter.rejected[SENSOR_FAULT_CODE] == 29
