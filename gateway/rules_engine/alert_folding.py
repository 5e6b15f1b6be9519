"""Alert views rebuilt from stored alert transitions (a restart, the report, ``lineside
alerts`` against a stopped gateway's store)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from rules.alert_updates import Published
from rules.alerts import Alert, AlertState
from rules.model import Severity


def fold_alerts(records: Iterable[tuple[Any, ...]]) -> list[Alert]:
    """Alert views from stored transitions.

    ``records`` are rows ``(ts_us, alert_id, rule, subject, line, severity, state, message,
    detail)`` in commit order. The newest state of each alert wins.
    """
    alerts: dict[str, Alert] = {}
    for ts_us, alert_id, rule, subject, line, severity, state, message, detail_text in records:
        detail = json.loads(detail_text) if isinstance(detail_text, str) else {}
        current = alerts.get(alert_id)
        if current is None:
            current = Alert(
                id=alert_id,
                rule=rule,
                subject=subject,
                line=line,
                severity=severity,
                state=AlertState.UNACKNOWLEDGED,
                raised_us=ts_us,
                message=message,
            )
        changes: dict[str, Any] = {
            key: detail[key]
            for key in ("occurrences", "first_us", "last_us", "value")
            if isinstance(detail.get(key), int | float) and not isinstance(detail[key], bool)
        }
        if state in ("raised", "updated"):
            changes |= {
                "message": message,
                "severity": severity,
                "published": Published(
                    Severity(severity),
                    changes.get("value"),
                    changes.get("occurrences", 1),
                    ts_us,
                ),
            }
        elif state == "cleared":
            changes |= {"cleared_us": ts_us}
        elif state == "acknowledged":
            changes |= {
                "acknowledged_by": detail.get("operator"),
                "acknowledged_us": ts_us,
                "comment": detail.get("comment") or "",
            }
        elif state == "shelved":
            changes |= {"shelved_until_us": detail.get("until_us")}
        elif state == "unshelved":
            changes |= {"shelved_until_us": None}
        current = dataclasses.replace(current, **changes)
        alerts[alert_id] = dataclasses.replace(current, state=_state_of(current))
    return list(alerts.values())


def _state_of(alert: Alert) -> AlertState:
    if alert.shelved_until_us is not None:
        return AlertState.SHELVED
    if alert.cleared_us is not None:
        return AlertState.CLEARED if alert.acknowledged else AlertState.CLEARED_UNACKNOWLEDGED
    return AlertState.ACKNOWLEDGED if alert.acknowledged else AlertState.UNACKNOWLEDGED


__all__ = ["fold_alerts"]
