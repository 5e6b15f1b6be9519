"""The shed ledger: what is shed, how it is counted, and what is stored about it."""

from __future__ import annotations

from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
    RunVersion,
    Severity,
    TemperatureReading,
)
from gateway.shedding import (
    ALERT_ID,
    SHED_EVENT_KIND,
    ShedLedger,
    device_of,
    sheddable,
)


def scan(ts_us: int, device: str = "scan1") -> LabelScan:
    return LabelScan(ts_us=ts_us, line="L1", device=device, raw=b"x")


def reading(ts_us: int, device: str = "PT") -> TemperatureReading:
    return TemperatureReading(ts_us=ts_us, line="L2", device=device, probe="P1", celsius=2.0)


def rejected(ts_us: int, source: str = "scan1") -> RejectedInput:
    return RejectedInput(ts_us=ts_us, source=source, tag="barcode", raw="00", reason="gs1_x")


def events(records: list[Record]) -> list[DeviceEvent]:
    return [r for r in records if isinstance(r, DeviceEvent)]


def alerts(records: list[Record]) -> list[AlertRecord]:
    return [r for r in records if isinstance(r, AlertRecord)]


def test_device_readings_and_events_are_sheddable_but_not_continuity_or_link_events() -> None:
    assert sheddable(scan(1))
    assert sheddable(reading(1))
    assert sheddable(rejected(1))
    assert sheddable(PackEvent(ts_us=1, line="L1", device="CW1", net_g=250.0))
    assert sheddable(DeviceEvent(ts_us=1, device="PT", kind="quality_change"))
    for kept in ("link_up", "link_down", "missed_packs", "pack_counter_baseline", "records_shed"):
        assert not sheddable(DeviceEvent(ts_us=1, device="CW1", kind=kept)), kept
    alert = AlertRecord(
        ts_us=1,
        alert_id="a",
        rule="r",
        subject="s",
        severity=Severity.MAJOR,
        state="raised",
        message="m",
    )
    assert not sheddable(alert)
    assert not sheddable(
        RunVersion(ts_us=1, run_number="R1", line="L1", status="running", source="erp", payload={})
    )
    assert device_of(rejected(1, source="CW9")) == "CW9"
    assert device_of(alert) is None


def test_first_shed_raises_the_alert_once_and_relief_stores_counts_then_clears() -> None:
    ledger = ShedLedger()
    first = ledger.shed(scan(100), now_us=5_000, pending=100_000, limit=100_000)
    [raised] = alerts(first)
    assert (raised.alert_id, raised.state, raised.severity) == (ALERT_ID, "raised", Severity.MAJOR)
    assert raised.ts_us == 5_000
    assert raised.detail["max_pending_rows"] == 100_000
    assert [ledger.raised] == [True]
    more = [
        *ledger.shed(scan(101), 5_001, 100_001, 100_000),
        *ledger.shed(rejected(102), 5_002, 100_001, 100_000),
        *ledger.shed(reading(150), 5_003, 100_002, 100_000),
    ]
    assert more == [], "one alert per episode, events only when it ends"
    assert ledger.totals == {
        ("scan1", "label_scans"): 2,
        ("scan1", "rejected_inputs"): 1,
        ("PT", "temperatures"): 1,
    }
    assert ledger.total == 4
    assert ledger.by_device() == {
        "PT": {"temperatures": 1},
        "scan1": {"label_scans": 2, "rejected_inputs": 1},
    }

    out = ledger.relieved(now_us=9_000, pending=40_000)
    [pt, scanner] = events(out)
    assert (pt.device, pt.line, pt.kind, pt.ts_us) == ("PT", "L2", SHED_EVENT_KIND, 9_000)
    assert pt.detail == {"count": 1, "first_us": 150, "last_us": 150, "kinds": {"temperatures": 1}}
    assert scanner.detail == {
        "count": 3,
        "first_us": 100,
        "last_us": 102,
        "kinds": {"label_scans": 2, "rejected_inputs": 1},
    }
    [cleared] = alerts(out)
    assert out[-1] is cleared, "the counts are stored before the alert clears"
    assert (cleared.alert_id, cleared.state, cleared.ts_us) == (ALERT_ID, "cleared", 9_000)
    assert cleared.detail == {"pending": 40_000, "shed": {"PT": 1, "scan1": 3}}
    assert [ledger.raised] == [False]

    assert ledger.relieved(10_000, 0) == [], "nothing shed since: nothing to store"
    again = ledger.shed(scan(200), 11_000, 100_000, 100_000)
    assert [a.state for a in alerts(again)] == ["raised"], "a new episode raises again"
    assert ledger.total == 5, "totals count since start"


def test_a_long_episode_is_stored_window_by_window() -> None:
    ledger = ShedLedger(window_us=1_000)
    out: list[Record] = []
    for ts in range(0, 2_500, 100):  # 25 records over 2.5 windows of record time
        out += ledger.shed(scan(ts), now_us=ts, pending=10, limit=10)
    out += ledger.relieved(now_us=9_999, pending=0)
    shed_events = events(out)
    assert [e.detail["count"] for e in shed_events] == [10, 10, 5]
    assert [(e.detail["first_us"], e.detail["last_us"]) for e in shed_events] == [
        (0, 900),
        (1_000, 1_900),
        (2_000, 2_400),
    ]
    assert sum(e.detail["count"] for e in shed_events) == ledger.total == 25
    assert [a.state for a in alerts(out)] == ["raised", "cleared"]
