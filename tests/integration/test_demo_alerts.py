"""The demo's scripted scenarios, through the real simulators and gateway, raise the matching
alerts: the underweight drift (running mean below Qn), the long probe excursion, the label gap.
Packs below T2 are rejected by the checkweigher, so they never leave the line with the ℮ mark
and raise no ℮ alert; what the simulated labeller and the ERP's run say agrees, so no label,
batch or use-by alert may appear.

The simulators play the demo scenario 20 times faster than life; the HACCP debounce is
scaled to match, so the short excursion (40 s of scenario time) stays below it and the
long one (6.5 min) does not.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.report import build_report, format_report
from tests.support.sim_site import simulated_site
from tests.support.waiting import wait_for

SPEED = 20.0


def alert_rules(db_path: Path) -> set[str]:
    if not db_path.exists():
        return set()
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {r for (r,) in db.execute("SELECT rule FROM alerts WHERE state = 'raised'")}
    except sqlite3.OperationalError:
        return set()
    finally:
        db.close()


async def test_demo_scenarios_raise_the_matching_alerts(tmp_path: Path) -> None:
    async with simulated_site(tmp_path, speed=SPEED, debounce_s=3) as handle:
        db_path = handle.db_path
        await handle.site()
        expected = {"emark_mean", "haccp_upper", "label_gap"}
        await wait_for(lambda: expected <= alert_rules(db_path), timeout=90)
    raised = alert_rules(db_path)
    assert not raised & {"label_weight", "label_batch", "shelf_life_use_by", "emark_t2"}, raised
    db = sqlite3.connect(db_path)
    [run] = {r for (r,) in db.execute("SELECT DISTINCT run_number FROM packs") if r}
    rejected_t2 = db.execute(
        "SELECT count(*) FROM packs WHERE net_g < 222 AND accepted = 0"
    ).fetchone()[0]
    assert rejected_t2 >= 1, "the scenario's below-T2 packs reached the checkweigher"
    report = format_report(build_report(db_path, run))
    assert "emark_mean" in report
    assert "41240" in report  # the 240 g product's giveaway line
