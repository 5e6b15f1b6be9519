"""Role interpreters: tag values to pack events, readings and label scans; bad values rejected."""

from __future__ import annotations

import pytest

from adapters.base import Quality, TagSample
from adapters.roles import (
    CheckweigherInterpreter,
    LabelInterpreter,
    TemperatureInterpreter,
    interpreter_for,
)
from gateway.config import LinesideConfig, parse_config
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.records import (
    DeviceEvent,
    LabelScan,
    PackEvent,
    RejectedInput,
    TemperatureReading,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs


def _config(role: str, tags: list[tuple[str, dict[str, object]]]) -> LinesideConfig:
    return parse_config(
        {
            "gateway": {"id": "g", "site": "s"},
            "store": {"path": "x.db"},
            "lines": [{"id": "L1"}],
            "devices": [
                {
                    "id": "d1",
                    "kind": "modbus_tcp",
                    "line": "L1",
                    "role": role,
                    "host": "h",
                    "tags": [
                        {"name": n, "address": i, **extra} for i, (n, extra) in enumerate(tags)
                    ],
                }
            ],
        }
    )


def checkweigher() -> CheckweigherInterpreter:
    config = _config(
        "checkweigher",
        [
            ("pack_counter", {}),
            ("net_weight", {"type": "float32", "min": 0, "max": 5000}),
            ("accepted", {}),
            ("label_sequence", {}),
        ],
    )
    device = config.devices[0]
    limits = {t.name: t for t in device.tags}  # type: ignore[union-attr]
    interpreter = interpreter_for(device, limits)
    assert isinstance(interpreter, CheckweigherInterpreter)
    return interpreter


def cycle(cw: CheckweigherInterpreter, counter: int, net: float, ts: int, seq: int = 0) -> list:
    return cw.interpret(
        [
            TagSample("net_weight", net),
            TagSample("accepted", 1),
            TagSample("label_sequence", seq or counter),
            TagSample("pack_counter", counter),
        ],
        ts,
    )


def test_first_counter_is_a_baseline_then_one_pack_per_increment() -> None:
    cw = checkweigher()
    [baseline] = cycle(cw, 10, 241.0, T0)
    assert isinstance(baseline, DeviceEvent)
    assert baseline.kind == "pack_counter_baseline"
    [pack] = cycle(cw, 11, 242.5, T0 + 1)
    assert isinstance(pack, PackEvent)
    assert (pack.pack_counter, pack.net_g, pack.accepted, pack.label_seq) == (11, 242.5, True, 11)
    assert cycle(cw, 11, 242.5, T0 + 2) == [], (
        "the same counter is the same pack: not counted twice"
    )


def test_counter_jump_records_missed_packs() -> None:
    cw = checkweigher()
    cw.last_counter = 100  # known from the store at start-up
    records = cycle(cw, 104, 240.0, T0)
    assert [type(r) for r in records] == [DeviceEvent, PackEvent]
    assert records[0].kind == "missed_packs"
    assert records[0].detail == {"missed": 3, "previous": 100, "counter": 104}


def test_counter_reset_is_recorded() -> None:
    cw = checkweigher()
    cw.last_counter = 500
    records = cycle(cw, 1, 240.0, T0)
    assert [r.kind for r in records if isinstance(r, DeviceEvent)] == ["pack_counter_reset"]
    assert isinstance(records[-1], PackEvent)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "non_finite"),
        (float("inf"), "non_finite"),
        (-1.0, "out_of_range"),
        (9e9, "out_of_range"),
    ],
    ids=["nan", "inf", "negative", "absurd"],
)
def test_bad_weight_is_rejected_and_the_pack_is_not_stored_as_good(
    value: float, reason: str
) -> None:
    cw = checkweigher()
    cw.last_counter = 1
    records = cycle(cw, 2, value, T0)
    rejected = [r for r in records if isinstance(r, RejectedInput)]
    assert [r.reason for r in rejected] == [reason, "no_weight"]
    assert not any(isinstance(r, PackEvent) for r in records)
    assert cw.rejected[reason] == 1


def test_gross_minus_tare_when_no_net() -> None:
    config = _config(
        "checkweigher",
        [("pack_counter", {}), ("gross_weight", {}), ("tare", {})],
    )
    device = config.devices[0]
    cw = interpreter_for(device, {t.name: t for t in device.tags})  # type: ignore[union-attr]
    assert isinstance(cw, CheckweigherInterpreter)
    cw.last_counter = 0
    [pack] = cw.interpret(
        [TagSample("gross_weight", 262.0), TagSample("tare", 18.5), TagSample("pack_counter", 1)],
        T0,
    )
    assert isinstance(pack, PackEvent)
    assert pack.net_g == pytest.approx(243.5)


def probes() -> TemperatureInterpreter:
    config = _config(
        "temperature_probe",
        [("P1", {"min": -40, "max": 60, "location": "core", "stuck_after_s": 60})],
    )
    device = config.devices[0]
    interpreter = interpreter_for(device, {t.name: t for t in device.tags})  # type: ignore[union-attr]
    assert isinstance(interpreter, TemperatureInterpreter)
    return interpreter


def test_temperature_readings_and_quality_changes() -> None:
    tt = probes()
    [reading] = tt.interpret([TagSample("P1", 2.5)], T0)
    assert isinstance(reading, TemperatureReading)
    assert (reading.probe, reading.celsius, reading.location) == ("P1", 2.5, "core")
    records = tt.interpret([TagSample("P1", 3.0, Quality.BAD, "BadSensorFailure")], T0 + 1)
    assert [type(r) for r in records] == [DeviceEvent, RejectedInput]
    event, rejected = records
    assert isinstance(event, DeviceEvent)
    assert isinstance(rejected, RejectedInput)
    assert event.kind == "quality_change"
    assert rejected.reason == "quality_bad"
    assert rejected.detail == "BadSensorFailure"
    records = tt.interpret([TagSample("P1", 3.0)], T0 + 2)
    assert [type(r) for r in records] == [DeviceEvent, TemperatureReading]


def test_stuck_probe_is_rejected_and_reported_once() -> None:
    tt = probes()
    tt.interpret([TagSample("P1", 4.0)], T0)
    [still_good] = tt.interpret([TagSample("P1", 4.0)], T0 + 30_000_000)
    assert isinstance(still_good, TemperatureReading)
    [stuck] = tt.interpret([TagSample("P1", 4.0)], T0 + 61_000_000)
    assert isinstance(stuck, RejectedInput)
    assert stuck.reason == "stuck"
    [event] = tt.tick(T0 + 62_000_000)
    assert isinstance(event, DeviceEvent)
    assert event.kind == "stuck_value"
    assert tt.tick(T0 + 63_000_000) == [], "reported once"
    [moving] = tt.interpret([TagSample("P1", 4.1)], T0 + 64_000_000)
    assert isinstance(moving, TemperatureReading)


def scanner() -> LabelInterpreter:
    config = parse_config(
        {
            "gateway": {"id": "g", "site": "s"},
            "store": {"path": "x.db"},
            "lines": [{"id": "L1"}],
            "devices": [
                {
                    "id": "s1",
                    "kind": "scanner_tcp",
                    "line": "L1",
                    "role": "label_scanner",
                    "host": "h",
                    "port": 1,
                    "separators": ["|"],
                }
            ],
        }
    )
    interpreter = interpreter_for(config.devices[0], {})
    assert isinstance(interpreter, LabelInterpreter)
    return interpreter


def test_valid_label_becomes_a_scan() -> None:
    gtin13 = "501234567890"
    gtin = "0" + gtin13 + str(gtin_check_digit("0" + gtin13))
    raw = encode_element_string(
        [
            ("01", gtin),
            ("10", "B2611-07"),
            ("13", "261122"),
            ("17", "261201"),
            ("21", "1042"),
            ("3103", "000243"),
        ],
        separator="|",
    )
    record = scanner().read(raw.encode(), T0)
    assert isinstance(record, LabelScan)
    assert (record.gtin, record.batch, record.pack_date, record.use_by, record.serial) == (
        gtin,
        "B2611-07",
        "2026-11-22",
        "2026-12-01",
        "1042",
    )
    assert record.net_weight_g == pytest.approx(243.0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "gs1_empty"),
        (b"]C10195011015300004", "gs1_bad_check_digit"),
        (b"\xff\xfe\x00garbage", "gs1_not_text"),
        (b"]C1991234", "gs1_unknown_ai"),
    ],
    ids=["empty", "check-digit", "binary", "unknown-ai"],
)
def test_invalid_label_is_rejected_with_its_raw_bytes(raw: bytes, reason: str) -> None:
    record = scanner().read(raw, T0)
    assert isinstance(record, RejectedInput)
    assert record.reason == reason
    assert record.raw == raw.hex(" ")
    assert record.detail
