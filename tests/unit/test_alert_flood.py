"""Issue 17: a 600-pack shift of a fixed-weight product whose every label carries the pack's
own weight (AI 3103) instead of its nominal quantity, packed with too much giveaway.

Before alerts were kept per condition, the same shift (this test's records, run through the
engine of commit a411df1) gave 1181 alert transitions: 600 ``label_weight`` alerts (one per
label, each to be acknowledged on its own), one ``giveaway`` alert and 580 updates of it (one
per pack), with every 10-minute period of the shift in flood: 12.5 raised per 10 minutes on
average over 8 hours, 100 per 10 minutes over one hour (ISA-18.2 and EEMUA 191 call more than
10 a flood). Now it is one alert per condition, updated only when a figure moves enough to
matter (docs/alarms.md): 10 transitions.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gateway.config import RulesSection
from gateway.core.records import AlertRecord
from gateway.runs import to_us
from rules.alarm_rates import Raise, alarm_load
from tests.support.line_shift import START, LineShift


def shift(packs: int, every_s: int) -> LineShift:
    line = LineShift(RulesSection())
    weights = random.Random(7)
    for _ in range(packs):
        net = round(weights.gauss(249.0, 2.0), 1)  # Qn 240 g: about 3.75 % giveaway
        line.pack(net, label_g=net)  # the label says the pack's weight, not 240 g
        line.advance(every_s)
    return line


@pytest.mark.parametrize("every_s", [6, 48], ids=["600-packs-in-1h", "600-packs-in-8h"])
def test_a_shift_of_wrong_labels_is_one_alert_not_600(every_s: int) -> None:
    line = shift(600, every_s)
    alerts = line.alerts()
    counts = Counter((a.rule, a.state) for a in alerts)
    assert {a.alert_id for a in alerts if a.rule == "label_weight"} == {alerts[0].alert_id}, (
        "one label_weight alert"
    )
    assert counts[("label_weight", "raised")] == 1
    assert counts[("giveaway", "raised")] == 1
    assert len(alerts) < 30, counts
    assert len(alerts) == 10, counts  # label_weight: raised, 8 updates (2, 5 … 500); giveaway
    # The one alert knows how often and since when, and shows the latest label.
    [weight] = [a for a in line.engine.book.active() if a.rule == "label_weight"]
    assert weight.occurrences == 600
    assert weight.first_us == to_us(START)
    assert weight.message.startswith("label 600 says ")
    # The flood measure over the shift: the ISA-18.2 figures.
    end = line.clock.wall_us()
    report = alarm_load(
        [Raise(a.ts_us, a.line, a.rule) for a in alerts if a.state == "raised"],
        start_us=to_us(START),
        end_us=end,
        active=[(a.raised_us, a.line) for a in line.engine.book.active()],
        lines=["L1"],
    )
    assert report.total == report.lines["L1"]
    load = report.total
    assert load.raised == 2
    assert load.flood_periods == 0
    assert load.peak_10_min <= 2
    assert load.per_10_min < 1, "under ISA-18.2's 'very likely acceptable' one per 10 min"
    assert load.stale == 0


def test_acknowledging_the_condition_is_one_act() -> None:
    line = shift(50, 6)
    [weight] = line.engine.select(rule="label_weight", line="L1")
    out = line.engine.acknowledge(weight, "Ann", "labeller set to print the nominal weight")
    assert [r.state for r in out if isinstance(r, AlertRecord)] == ["acknowledged", "cleared"]
    line.pack(243.0, label_g=240.0)  # fixed: a right label raises nothing
    assert not [a for a in line.engine.book.active() if a.rule == "label_weight"]
    line.pack(243.0, label_g=243.0)  # wrong again: a new alert, a new demand
    assert [a.state for a in line.alerts("label_weight")][-1] == "raised"
