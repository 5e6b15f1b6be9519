"""What operators do with alerts (issue 17): acknowledge and shelve by alert, short reference,
rule or line; line modes naming who changed them, without clearing a CRITICAL nobody has
acknowledged; corrective actions carried with each alert."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.config import RulesSection, parse_config
from gateway.control import AlertControl, CommandError
from gateway.core.errors import ConfigError
from gateway.core.records import AlertRecord, DeviceEvent, Record
from rules.alert_refs import REF_LENGTH, alert_ref
from tests.support.line_shift import PACK_DATE, PROBE, LineShift


def wrong_labels_and_dates() -> LineShift:
    """label_weight (WARNING, latching) and shelf_life_use_by (CRITICAL, latching) on L1,
    giveaway (WARNING, a lasting condition)."""
    line = LineShift()
    for _ in range(25):
        line.pack(252.0, label_g=252.0)  # 5 % giveaway; each label says its own weight
        line.advance(6)
    line.label(900, use_by=PACK_DATE + timedelta(days=12))
    return line


def states(records: list[Record]) -> list[str]:
    return [r.state for r in records if isinstance(r, AlertRecord)]


def active_rules(line: LineShift) -> list[str]:
    return sorted(a.rule for a in line.engine.book.active("L1"))


# -- acknowledging and shelving ------------------------------------------------------------


def test_one_alert_per_condition_acknowledged_by_rule_and_line() -> None:
    line = wrong_labels_and_dates()
    assert active_rules(line) == ["giveaway", "label_weight", "shelf_life_use_by"]
    [weight] = [a for a in line.engine.book.active() if a.rule == "label_weight"]
    assert weight.occurrences == 25, "25 wrong labels: one alert"
    chosen = line.engine.select(rule="label_weight", line="L1")
    assert chosen == [weight.id]
    out = [r for alert_id in chosen for r in line.engine.acknowledge(alert_id, "Ann", "")]
    assert states(out) == ["acknowledged", "cleared"], "latching: cleared with it"
    assert active_rules(line) == ["giveaway", "shelf_life_use_by"]
    # By line: everything of L1 still awaiting an acknowledgement.
    for alert_id in line.engine.select(line="L1"):
        line.engine.acknowledge(alert_id, "Ann", "checked")
    assert line.engine.book.unacknowledged() == []
    assert active_rules(line) == ["giveaway"], "a lasting condition stays, acknowledged"
    with pytest.raises(KeyError, match="no alert awaiting acknowledgement for line L1"):
        line.engine.select(line="L1")


def test_short_refs_name_alerts_for_ack_and_shelve() -> None:
    line = wrong_labels_and_dates()
    refs = line.engine.refs()
    assert len(refs) == 3
    assert all(len(r) == REF_LENGTH for r in refs.values())
    [giveaway] = [a for a in line.engine.book.active() if a.rule == "giveaway"]
    assert refs[giveaway.id] == alert_ref(giveaway.id)
    shelved = line.engine.shelve(refs[giveaway.id].upper(), "Bob", 30, "filler being set up")
    assert states(shelved) == ["shelved"]
    [acked] = line.engine.acknowledge(refs[giveaway.id], "Bob", "")
    assert isinstance(acked, AlertRecord)
    assert acked.alert_id == giveaway.id
    with pytest.raises(KeyError):
        line.engine.acknowledge("0000000", "Bob", "")


def test_the_summary_for_the_andon_carries_refs_and_counts() -> None:
    line = wrong_labels_and_dates()
    summary = line.engine.summary("L1")
    assert summary[0]["rule"] == "shelf_life_use_by", "most severe first"
    weight = next(s for s in summary if s["rule"] == "label_weight")
    assert weight["occurrences"] == 25
    assert weight["ref"] == alert_ref(str(weight["id"]))


class Store:
    """What AlertControl needs of the store: ``write`` (a sequence number per record)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def write(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records)


def control(line: LineShift) -> tuple[AlertControl, Store]:
    store = Store()
    return AlertControl(line.engine, store, {"L1", "L2"}), store  # type: ignore[arg-type]


async def test_the_control_socket_acknowledges_by_rule_and_line() -> None:
    line = wrong_labels_and_dates()
    alerts, store = control(line)
    answer = await alerts.acknowledge(
        {"rule": "label_weight", "line": "L1", "operator": "Ann", "comment": "labeller fixed"}
    )
    assert answer["ok"]
    assert len(answer["alerts"]) == 1
    assert states(store.records) == ["acknowledged", "cleared"]
    ref = line.engine.refs()[line.engine.select(rule="giveaway")[0]]
    answer = await alerts.shelve(
        {"alert_id": ref, "operator": "Ann", "minutes": 15, "comment": "setting up"}
    )
    assert answer["ok"]
    for bad, error in [
        ({"operator": "Ann"}, "alert_id, rule or line is required"),
        ({"alert_id": ref, "rule": "giveaway", "operator": "Ann"}, "not both"),
        ({"rule": "giveaway", "line": "L9", "operator": "Ann"}, "unknown line"),
        ({"rule": "label_gap", "operator": "Ann"}, "no alert awaiting acknowledgement"),
        ({"rule": "giveaway"}, "operator is required"),
    ]:
        with pytest.raises(CommandError, match=error):
            await alerts.acknowledge(bad)


# -- line modes ----------------------------------------------------------------------------


async def test_a_line_mode_change_names_its_operator() -> None:
    line = LineShift()
    alerts, store = control(line)
    with pytest.raises(CommandError, match="operator is required"):
        await alerts.line_mode({"line": "L1", "mode": "washdown"})
    await alerts.line_mode({"line": "L1", "mode": "washdown", "operator": "Cleo"})
    [event] = [r for r in store.records if isinstance(r, DeviceEvent)]
    assert (event.kind, event.device, event.line) == ("line_mode", "operator", "L1")
    assert event.detail == {
        "mode": "washdown",
        "previous_mode": "production",
        "operator": "Cleo",
        # No control connection here: the kernel's word on who it was is "unknown".
        "os_user": "unknown",
        "os_uid": None,
    }


def below_t2_then(mode: str, *, acknowledged: bool) -> LineShift:
    line = LineShift()
    for _ in range(12):
        line.pack(243.0)
        line.advance(2)
    line.pack(219.0)  # below T2 = 222 g
    [t2] = line.alerts("emark_t2")
    if acknowledged:
        line.out += line.engine.acknowledge(t2.alert_id, "Ann", "pack pulled")
    line.line_mode(mode)
    return line


@pytest.mark.parametrize("mode", ["washdown", "changeover"])
def test_washdown_closes_the_batch_but_leaves_an_unacknowledged_t2_for_the_operator(
    mode: str,
) -> None:
    line = below_t2_then(mode, acknowledged=False)
    assert len([r for r in line.out if type(r).__name__ == "EmarkBatchRecord"]) == 1
    [t2] = [a for a in line.engine.book.active("L1") if a.rule == "emark_t2"]
    assert not t2.acknowledged
    assert [a.state for a in line.alerts("emark_t2")] == ["raised"], "not cleared"
    assert line.engine.andon("L1") == "red", "in any mode"
    out = line.engine.acknowledge(t2.id, "Ann", "pack 13 pulled")
    assert states(out) == ["acknowledged", "cleared"]
    assert line.engine.andon("L1") == "green"


def test_an_acknowledged_t2_clears_with_its_batch() -> None:
    line = below_t2_then("washdown", acknowledged=True)
    assert [a.state for a in line.alerts("emark_t2")] == ["raised", "acknowledged", "cleared"]
    assert line.engine.andon("L1") == "green"


def test_the_held_t2_survives_a_replay_and_clears_when_acknowledged() -> None:
    line = below_t2_then("washdown", acknowledged=False)
    stored = [
        (r.ts_us, r.alert_id, r.rule, r.subject, r.line, str(r.severity), r.state, r.message, "{}")
        for r in line.alerts()
    ]
    restarted = LineShift()
    restarted.clock.advance(120)
    restarted.engine.replay(line.records)
    restarted.engine.restore(stored)
    [t2] = [a for a in restarted.engine.book.active("L1") if a.rule == "emark_t2"]
    out = restarted.engine.acknowledge(t2.id, "Ann", "")
    assert states(out) == ["acknowledged", "cleared"]


# -- corrective actions --------------------------------------------------------------------


def test_a_critical_haccp_alert_says_what_to_do() -> None:
    line = LineShift()
    line.temperature(7.0)
    line.advance(61)
    line.temperature(7.2)
    [breach] = line.alerts("haccp_upper")
    assert breach.message.endswith(
        "Action: Move the product to chill, check the probe with a hand thermometer, hold the "
        "product packed since the last good reading and notify QA"
    )
    assert breach.detail["action"].startswith("Move the product to chill")
    [alert] = line.engine.book.active("L1")
    assert "now 7.2 °C" in alert.message, "the live value, not only the raising one"


def test_actions_are_configurable_and_removable() -> None:
    config = RulesSection(
        probes=(PROBE,),
        actions={"haccp_upper": "Ring QA on 2041", "emark_t2": "", "giveaway": "Lower target"},
    )
    assert config.action("haccp_upper") == "Ring QA on 2041"
    assert config.action("emark_t2") == "", "an empty text removes the default"
    assert config.action("giveaway") == "Lower target"
    assert config.action("emark_mean").startswith("Raise the checkweigher's target")
    assert config.action("label_gap") == ""
    line = LineShift(config)
    line.temperature(7.0)
    line.advance(61)
    [breach] = line.alerts("haccp_upper")
    assert breach.message.endswith(". Action: Ring QA on 2041")


def test_an_action_for_an_unknown_rule_is_a_config_error() -> None:
    raw = {
        "gateway": {"id": "g", "site": "s"},
        "store": {"path": "/tmp/x.db"},
        "lines": [{"id": "L1"}],
        "rules": {"actions": {"hacp_upper": "typo"}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    [problem] = caught.value.problems
    assert problem.location == "rules.actions"
    assert "no such rule: hacp_upper" in problem.reason
