"""A device down too long is an alert (issue 17): ``device_down`` from the adapters' link
events, raised after the device's time, cleared once it has stayed back for 5 s, the same
from a replay."""

from __future__ import annotations

from gateway.config import RulesSection
from gateway.core.clock import ManualClock
from gateway.core.records import AlertRecord
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, to_us
from rules.devices import WatchedDevice
from tests.support.line_shift import DEVICES, RUN, START, LineShift

S = 1_000_000


def summary(alerts: list[AlertRecord]) -> list[tuple[str, str, str, str, int]]:
    return [(a.alert_id, a.subject, a.state, str(a.severity), a.ts_us) for a in alerts]


def test_a_device_down_longer_than_its_time_raises_and_clears_when_back() -> None:
    line = LineShift()
    line.pack(243.0)
    line.advance(5)
    down_at = line.clock.wall_us()
    line.link("cw1", "link_down", error="connection refused")
    line.advance(29)
    assert line.alerts("device_down") == [], "29 s: a reconnect, not yet an alert"
    line.advance(2)
    [raised] = line.alerts("device_down")
    assert (raised.state, raised.subject, raised.line) == ("raised", "cw1", "L1")
    assert raised.severity == "major", "a checkweigher: packs go unrecorded"
    assert raised.ts_us == down_at + 30 * S, "stamped at the outage's start plus 30 s"
    assert "checkweigher cw1 down since 06:00:05 UTC" in raised.message
    assert "connection refused" in raised.message
    assert "Action: Check the device's power" in raised.message
    assert raised.detail["config"] == {"down_alert_after_s": 30.0}
    assert line.engine.andon("L1") == "amber"
    line.advance(30)
    up_at = line.clock.wall_us()
    line.link("cw1", "link_up", down_for_s=61.0)
    line.advance(4)
    assert len(line.alerts("device_down")) == 1, "back, not yet for 5 s"
    line.advance(1)
    [_, cleared] = line.alerts("device_down")
    assert (cleared.state, cleared.alert_id) == ("cleared", raised.alert_id)
    assert cleared.ts_us == up_at + 5 * S
    assert cleared.message == "checkweigher cw1 is back after 61 s down (06:00:05–06:01:06 UTC)"
    assert line.engine.andon("L1") == "green"


def test_a_blip_raises_nothing_and_a_scanner_is_a_warning() -> None:
    line = LineShift()
    line.link("cw1", "link_down")
    line.advance(10)
    line.link("cw1", "link_up")
    line.link("scan1", "link_down")
    line.advance(40)
    assert [(a.subject, a.state, a.severity) for a in line.alerts("device_down")] == [
        ("scan1", "raised", "warning")
    ]


def test_a_line_whose_devices_are_all_down_is_not_green() -> None:
    line = LineShift()
    for device in ("cw1", "probes", "scan1"):
        line.link(device, "link_down", error="no route to host")
    line.advance(31)
    assert sorted(a.subject for a in line.alerts("device_down")) == ["cw1", "probes", "scan1"]
    assert line.engine.andon("L1") == "amber"
    assert line.engine.device_watch.down == ("cw1", "probes", "scan1")


def test_replaying_the_same_records_gives_the_same_alerts() -> None:
    live = LineShift()
    for _ in range(5):
        live.pack(243.0)
        live.advance(2)
    for device in ("cw1", "probes", "scan1"):
        live.link(device, "link_down", error="switch rebooted")
    live.advance(60)
    for device in ("scan1", "probes", "cw1"):
        live.link(device, "link_up", down_for_s=60.0)
        live.advance(1)
    live.advance(5)
    live.pack(243.0)
    expected = summary(live.alerts("device_down"))
    assert [s[2] for s in expected] == ["raised"] * 3 + ["cleared"] * 3

    # The same records, in store order, through a new engine's evaluate only (no ticks:
    # as the gateway's restart replays them, gateway/rules_replay.py).
    clock = ManualClock(wall_us=to_us(START))
    again = RulesEngine(RulesSection(), RunIndex([RUN]), clock, devices=DEVICES)
    out = [r for record in live.records for r in again.evaluate(record)]
    replayed = summary([r for r in out if isinstance(r, AlertRecord) and r.rule == "device_down"])
    assert sorted(replayed) == sorted(expected)


def test_a_link_that_drops_again_at_once_is_still_down() -> None:
    """A peer that accepts each connection and resets it: up and down every 0.3 s."""
    line = LineShift()
    line.link("scan1", "link_down", error="connection reset")
    for _ in range(200):  # a minute of it
        line.advance(0.1, tick_every=0.1)
        line.link("scan1", "link_up")
        line.advance(0.2, tick_every=0.2)
        line.link("scan1", "link_down", error="connection reset")
    [raised] = line.alerts("device_down")
    assert raised.state == "raised"
    assert raised.ts_us == to_us(START) + 30 * S
    line.link("scan1", "link_up")
    line.advance(6)
    [_, cleared] = line.alerts("device_down")
    assert cleared.state == "cleared"
    assert "back after 60 s down" in cleared.message


def test_a_restored_alert_clears_when_its_device_is_back() -> None:
    """The outage began before the records replayed at a restart: the link_up still clears."""
    line = LineShift()
    line.link("probes", "link_down")
    line.advance(31)
    [raised] = line.alerts("device_down")
    stored = [
        (r.ts_us, r.alert_id, r.rule, r.subject, r.line, str(r.severity), r.state, r.message, "{}")
        for r in line.alerts()
    ]
    restarted = LineShift()
    restarted.clock.advance(60)
    restarted.engine.restore(stored)
    assert [a.id for a in restarted.engine.book.active()] == [raised.alert_id]
    restarted.link("probes", "link_up")
    [cleared] = restarted.alerts("device_down")
    assert (cleared.alert_id, cleared.state) == (raised.alert_id, "cleared")


def test_a_device_still_down_after_a_restart_keeps_its_one_alert() -> None:
    line = LineShift()
    line.link("cw1", "link_down")
    line.advance(31)
    [raised] = line.alerts("device_down")
    stored = [
        (r.ts_us, r.alert_id, r.rule, r.subject, r.line, str(r.severity), r.state, r.message, "{}")
        for r in line.alerts()
    ]
    restarted = LineShift()
    restarted.clock.advance(40)
    restarted.engine.replay(line.records)
    assert restarted.engine.restore(stored) == [], "an engine rule: kept, not cleared"
    restarted.advance(5)
    assert [a.id for a in restarted.engine.book.active()] == [raised.alert_id]
    assert restarted.alerts("device_down") == [], "nothing raised twice"


def test_a_device_with_no_down_time_is_never_alerted() -> None:
    line = LineShift(devices=(WatchedDevice("cw1", "L1", "checkweigher", 0.0),))
    line.link("cw1", "link_down")
    line.advance(120)
    line.link("scan1", "link_down")  # not configured: not watched
    line.advance(60)
    assert line.alerts("device_down") == []
