"""The standing alerts as ``lineside alerts`` lists them: one document, whoever builds it.

The running gateway builds it from its alert book (the ``alerts`` control request,
:meth:`gateway.control.AlertControl.list_alerts`); ``lineside alerts --config`` builds the
same from the store when no gateway answers. Standing alerts are those still active and
those cleared but not acknowledged yet: what ``lineside ack`` may name. The document lists
the active ones first, then the most urgent; every count covers all of them, however many
are listed (docs/command-output.md).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateway.api import MAX_LIST_ALERTS
from gateway.status import alert_json
from rules.alerts import Alert

MAX_LISTING_BYTES = 768 * 1024
"""The listed alerts' JSON stays below this, whatever their messages' length, so a control
answer stays below the client's 1 MiB bound (``gateway.api.MAX_ANSWER_BYTES``)."""

SEVERITY_ORDER = {"critical": 0, "major": 1, "warning": 2}


class Actions(Protocol):
    """Where a rule's corrective action comes from (``RulesSection.action``)."""

    def action(self, rule: str) -> str: ...  # pragma: no cover


def urgency(alert: Alert) -> tuple[bool, bool, int, int]:
    """Sort key: active before cleared, unacknowledged first, then severity, then age."""
    severity = SEVERITY_ORDER[str(alert.severity)]
    return (not alert.active, alert.acknowledged, severity, alert.raised_us)


def alert_listing(
    alerts: Iterable[Alert],
    refs: Mapping[str, str],
    actions: Actions | None,
    limit: int = MAX_LIST_ALERTS,
) -> dict[str, Any]:
    """``alerts`` (most urgent first; ``limit`` and :data:`MAX_LISTING_BYTES` at most),
    ``total``, ``active``,
    ``awaiting_acknowledgement``, ``by_rule`` (``{rule: {"active": n, "cleared": n}}``)
    and ``more``."""
    chosen = sorted(alerts, key=urgency)
    by_rule: dict[str, Counter[str]] = {}
    for alert in chosen:
        by_rule.setdefault(alert.rule, Counter())["active" if alert.active else "cleared"] += 1
    listed: list[dict[str, Any]] = []
    size = 0
    for alert in chosen[:limit]:
        item = alert_json(
            alert, refs.get(alert.id, ""), actions.action(alert.rule) if actions else ""
        )
        size += len(json.dumps(item)) + 2
        if size > MAX_LISTING_BYTES:
            break
        listed.append(item)
    return {
        "alerts": listed,
        "total": len(chosen),
        "active": sum(a.active for a in chosen),
        "awaiting_acknowledgement": sum(not a.acknowledged for a in chosen),
        "by_rule": {
            rule: {"active": counts["active"], "cleared": counts["cleared"]}
            for rule, counts in sorted(by_rule.items())
        },
        "more": len(chosen) > len(listed),
    }
