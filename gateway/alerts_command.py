"""``lineside alerts``: the standing alerts, summary first, as text or as JSON.

The list comes from the running gateway over its control socket (the ``alerts`` request), so
an operator who may use the socket but cannot read the store or the config's secrets can list
them. With ``--config`` and no gateway answering (it is stopped), it is read from the store.

Text: one line of counts, the active alerts one by one, then the cleared alerts awaiting
acknowledgement as a count per rule (each one only with ``--all``). The JSON document's keys
are in docs/command-output.md.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gateway.alert_listing import alert_listing
from gateway.core.errors import CommandLineError
from gateway.rules_engine import fold_alerts
from rules.alert_refs import short_refs

ALERTS_DOCUMENT_VERSION = 1


class AlertsUnavailable(CommandLineError):
    """Neither the gateway nor the store could be read (message for people)."""


def listing_from_store(
    store_path: Path, *, line: str | None, rule: str | None, limit: int
) -> dict[str, Any]:
    """The standing alerts folded from the store's transitions (a read-only connection)."""
    from gateway.service import ALERT_HISTORY  # noqa: PLC0415 (the gateway's own restore query)

    try:
        db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute(ALERT_HISTORY).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise AlertsUnavailable(f"cannot read {store_path}: {exc}") from None
    alerts = [a for a in fold_alerts(rows) if a.active or not a.acknowledged]
    alerts = [a for a in alerts if (line is None or a.line == line)]
    alerts = [a for a in alerts if (rule is None or a.rule == rule)]
    return alert_listing(alerts, short_refs(a.id for a in alerts), None, limit)


def alerts_document(listing: dict[str, Any], *, source: str) -> dict[str, Any]:
    """The ``--json`` document (version 1)."""
    return {
        "version": ALERTS_DOCUMENT_VERSION,
        "source": source,
        "total": listing.get("total", 0),
        "active": listing.get("active", 0),
        "awaiting_acknowledgement": listing.get("awaiting_acknowledgement", 0),
        "by_rule": listing.get("by_rule", {}),
        "alerts": listing.get("alerts", []),
        "more": bool(listing.get("more")),
    }


ACTIVE_SHOWN = 15
"""Active alerts listed one by one by default (most urgent first); the rest are counted."""


def _alert_line(alert: dict[str, Any], printable: Any) -> str:
    seen = f" x{alert['occurrences']}" if alert.get("occurrences", 1) > 1 else ""
    return (
        f"  {printable(alert.get('ref') or alert.get('id')):<8}"
        f"{printable(alert.get('severity')).upper():<9}{printable(alert.get('state')):<23}"
        f"{printable(alert.get('line') or '-'):<6}{printable(alert.get('rule'))}{seen}  "
        f"{printable(alert.get('message'))}"
    )


def format_alerts(listing: dict[str, Any], *, show_all: bool, printable: Any) -> str:
    """The text layout: counts, the most urgent active alerts, then a count per rule of
    active and cleared ones (``show_all``: every alert, one line each)."""
    alerts: list[dict[str, Any]] = listing.get("alerts", [])
    total = int(listing.get("total", 0))
    if not total:
        return "no active alerts, none awaiting acknowledgement"
    active = int(listing.get("active", 0))
    out = [
        f"{active} active alert(s); {total - active} cleared awaiting acknowledgement",
        "",
        "Active" + ("" if show_all or active <= ACTIVE_SHOWN else f" (most urgent {ACTIVE_SHOWN})"),
    ]
    shown_active = [a for a in alerts if a.get("active")]
    if not show_all:
        shown_active = shown_active[:ACTIVE_SHOWN]
    out += [_alert_line(a, printable) for a in shown_active]
    if not active:
        out.append("  none")
    if show_all:
        cleared = [a for a in alerts if not a.get("active")]
        if cleared:
            out += ["", "Cleared, awaiting acknowledgement"]
            out += [_alert_line(a, printable) for a in cleared]
    by_rule: dict[str, dict[str, int]] = listing.get("by_rule", {})
    if by_rule:
        out += ["", f"  {'per rule':<28}{'active':>7}{'cleared':>9}"]
        for rule, counts in sorted(
            by_rule.items(), key=lambda item: (-item[1]["active"], -item[1]["cleared"], item[0])
        ):
            out.append(f"  {printable(rule):<28}{counts['active']:>7}{counts['cleared']:>9}")
    if listing.get("more") and show_all:
        out += ["", f"(first {len(alerts)} of {total} listed; narrow with --line or --rule)"]
    if not show_all:
        out += ["", "(every alert: --all; acknowledge a rule's: lineside ack --rule RULE)"]
    return "\n".join(out)
