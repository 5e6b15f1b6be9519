"""The standing-alert listing (gateway/alert_listing.py) and its text (gateway/alerts_command.py):
the order, the counts over every alert however many are listed, the byte bound of a control
answer, and a text that stays one screen."""

from __future__ import annotations

import json
from typing import Any

from gateway.alert_listing import MAX_LISTING_BYTES, alert_listing
from gateway.alerts_command import format_alerts
from gateway.control import MAX_ANSWER_BYTES
from gateway.report_output import fit_standing
from rules.alerts import Alert, AlertState
from rules.model import Severity

T0 = 1_764_000_000_000_000


def alert(n: int, rule: str, severity: Severity, active: bool, message: str = "m") -> Alert:
    return Alert(
        id=f"{rule}.{n}",
        rule=rule,
        subject=f"s{n}",
        line="L1",
        severity=severity,
        state=AlertState.UNACKNOWLEDGED if active else AlertState.CLEARED_UNACKNOWLEDGED,
        raised_us=T0 + n,
        message=message,
        cleared_us=None if active else T0 + n + 1,
    )


def test_active_first_then_severity_and_every_alert_counted() -> None:
    alerts = [
        alert(1, "emark_mean", Severity.MAJOR, active=False),
        alert(2, "label_gap", Severity.WARNING, active=True),
        alert(3, "haccp_upper", Severity.CRITICAL, active=True),
        alert(4, "emark_mean", Severity.MAJOR, active=False),
    ]
    listing = alert_listing(alerts, {}, None, limit=2)
    assert [a["id"] for a in listing["alerts"]] == ["haccp_upper.3", "label_gap.2"]
    assert listing["total"] == 4
    assert listing["active"] == 2
    assert listing["awaiting_acknowledgement"] == 4
    assert listing["more"] is True
    assert listing["by_rule"] == {
        "emark_mean": {"active": 0, "cleared": 2},
        "haccp_upper": {"active": 1, "cleared": 0},
        "label_gap": {"active": 1, "cleared": 0},
    }


def test_long_messages_keep_the_answer_under_the_clients_bound() -> None:
    text = "x" * 20_000
    alerts = [alert(n, "label_gap", Severity.WARNING, True, message=text) for n in range(300)]
    listing = alert_listing(alerts, {}, None)
    size = len(json.dumps({"ok": True, **listing}))
    assert MAX_LISTING_BYTES - 30_000 < size < MAX_ANSWER_BYTES
    assert 0 < len(listing["alerts"]) < 300
    assert listing["more"] is True
    assert listing["total"] == 300


def test_the_text_lists_the_most_urgent_and_counts_the_rest() -> None:
    alerts = [alert(n, "label_gap", Severity.WARNING, active=True) for n in range(90)]
    alerts += [alert(100 + n, "emark_mean", Severity.MAJOR, active=False) for n in range(200)]
    listing = alert_listing(alerts, {}, None)
    text = format_alerts(listing, show_all=False, printable=str).splitlines()
    assert len(text) < 30
    assert text[0] == "90 active alert(s); 200 cleared awaiting acknowledgement"
    assert "  label_gap                        90        0" in text
    assert "  emark_mean                        0      200" in text
    every = format_alerts(listing, show_all=True, printable=str).splitlines()
    assert sum("label_gap.." in line or " label_gap " in line for line in every) >= 90


def test_a_report_sent_over_the_socket_keeps_its_counts_when_trimmed() -> None:
    standing = [{"id": f"a{n}", "message": "x" * 20_000} for n in range(300)]
    alerts: dict[str, Any] = {"standing": standing, "standing_total": 300}
    document: dict[str, Any] = {"figures": {"packs": 7}, "alerts": alerts}
    fitted = fit_standing(document, MAX_LISTING_BYTES)
    assert len(json.dumps(fitted)) <= MAX_LISTING_BYTES
    assert 0 < len(fitted["alerts"]["standing"]) < 300
    assert fitted["alerts"]["standing_total"] == 300
    assert fitted["figures"] == {"packs": 7}
    assert len(document["alerts"]["standing"]) == 300, "the original is left as it was"
