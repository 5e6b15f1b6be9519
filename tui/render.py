"""Pure formatting for the operator screens: values in, text out.

Every state is written as a word and a symbol as well as a colour, so the screen reads on a
monochrome terminal, to a colour-blind operator, and in a photo of the screen.

Text from outside (run numbers and products from the ERP, alert messages, device errors,
operator names) is never markup: the snapshot's strings are cleaned once as they arrive
(:func:`sanitized`: control characters made visible, length capped) and every widget gets
a :class:`~rich.text.Text`, never a ``str``, which Textual would parse as markup.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from gateway.api import FLOOD_ABOVE

MAX_TEXT = 500
"""Longest external string kept (the longest alert message is about 200 characters): a
runaway value must not push every other figure off the screen."""


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as one safe line: control characters visible, at most ``limit`` characters.

    An escape sequence reaching the terminal could recolour or move the screen; a newline or
    tab would break a table row. Control characters are shown as their Unicode pictures
    (ESC as ``␛``, newline as ``␊``), so what was sent can still be read.
    """
    text = str(value)
    if not text.isprintable():
        text = "".join(_visible(ch) for ch in text)
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def _visible(ch: str) -> str:
    if ch.isprintable() or ch == " ":
        return ch
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "␡"
    # Format characters (Cf) include the direction overrides, which make text on screen
    # read other than it is; line and paragraph separators would break a row.
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
        return f"<U+{code:04X}>"
    return ch  # other non-printables (unassigned, private use) cannot move the cursor


def sanitized(value: Any) -> Any:
    """A copy of a snapshot with every string (keys too) passed through :func:`clean`."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: sanitized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitized(v) for v in value]
    return value


def plain(value: object, limit: int = MAX_TEXT, style: str = "") -> Text:
    """External text for a widget or table cell: literal, never markup."""
    return Text(clean("-" if value is None else value, limit), style=style, end="")


def faded(cell: Text | str, stale: bool) -> Text:
    """A table cell, dimmed when the figures are stale (the words say so elsewhere)."""
    text = cell.copy() if isinstance(cell, Text) else plain(cell)
    if stale:
        text.stylize("dim")
    return text


ANDON = {
    "red": ("■ RED", "bold white on red"),
    "amber": ("▲ AMBER", "bold black on dark_orange"),
    "green": ("● GREEN", "bold black on green"),
    "no data": ("○ NO DATA", "bold black on grey70"),
    "stale": ("? STALE", "bold black on grey70"),
}
"""Andon colour -> (symbol and word, style). ``no data`` and ``stale`` are the TUI's own:
a line without a working device, and any line while the gateway is not answering, are never
shown GREEN, since nothing says they are."""

WORKING = frozenset({"up", "degraded"})
"""Device link states in which readings arrive."""

SEVERITY = {
    "critical": ("‼ CRIT", "bold red"),
    "major": ("! MAJOR", "dark_orange"),
    "warning": ("· WARN", "yellow"),
}

LINK = {
    "up": ("✓ up", "green"),
    "degraded": ("~ degraded", "dark_orange"),
    "connecting": ("… connecting", "yellow"),
    "down": ("✗ DOWN", "bold red"),
    "disabled": ("- disabled", "dim"),
    "ok": ("✓ ok", "green"),
    "full": ("✗ FULL", "bold red"),
    "closed": ("- closed", "dim"),
}

PROBE = {
    "ok": ("✓ ok", "green"),
    "high": ("▲ HIGH", "bold red"),
    "low": ("▼ LOW", "bold red"),
    "fault": ("✗ FAULT", "bold red"),
    "waiting": ("… no data", "yellow"),
    "held": ("? last ok", "yellow"),
}
"""Probe states; ``held`` is the TUI's own: the last reading was within the limits, but it
is older than the probe's readings should be, so it says nothing about now."""

LABELS = {
    "ok": ("✓ ok", "green"),
    "gap": ("✗ GAP", "bold red"),
    "duplicate": ("! DUP", "dark_orange"),
    "no scans": ("- none", "dim"),
}

ALERT_STATE_SHORT = {
    "active-unacknowledged": "UNACKED",
    "active-acknowledged": "acked",
    "cleared-unacknowledged": "CLR unacked",
    "cleared": "cleared",
    "shelved": "shelved",
    "suppressed": "suppressed",
}
"""ISA-18.2 alarm states in a table column: unacknowledged ones in capitals."""

_SEVERITY_RANK = {"critical": 0, "major": 1, "warning": 2}


def alert_order(alert: Mapping[str, Any]) -> tuple[int, int, int]:
    """Sort key for active alerts: unacknowledged first, then by severity, newest first."""
    return (
        1 if alert.get("acknowledged") else 0,
        _SEVERITY_RANK.get(str(alert.get("severity")), 3),
        -int(alert.get("raised_us") or 0),
    )


ALERT_STATE = {
    "active-unacknowledged": "ACTIVE, not acked",
    "active-acknowledged": "active, acked",
    "cleared-unacknowledged": "cleared, not acked",
    "cleared": "cleared",
    "shelved": "shelved",
    "suppressed": "suppressed",
}

_BLOCKS = " ▁▂▃▄▅▆▇█"
_SPARK = "▁▂▃▄▅▆▇█"


def styled(table: dict[str, tuple[str, str]], key: str | None) -> Text:
    """``key`` as its symbol-and-word text in its style (the key itself when unknown)."""
    if key is None:
        return Text("-", style="dim")
    label, style = table.get(key, (clean(key, 20), ""))
    return Text(label, style=style)


def andon(colour: str) -> Text:
    """An andon colour as a badge: symbol, word and colour."""
    return styled(ANDON, colour)


def link(state: str | None, stale: bool = False) -> Text:
    """A device, ERP, uplink or store state; while stale, what it was, marked unknown."""
    if stale and state is not None:
        return Text(f"? was {clean(state, 20)}", style="dim")
    return styled(LINK, state)


def line_devices(snapshot: Mapping[str, Any], line: str) -> list[Mapping[str, Any]]:
    """The devices configured on ``line`` (from the system part of the snapshot)."""
    return [d for d in snapshot["system"]["devices"] if d.get("line") == line]


def line_andon(snapshot: Mapping[str, Any], line: Mapping[str, Any], stale: bool) -> Text:
    """The line's andon badge as the operator should read it.

    While the gateway is not answering every line is ``STALE``. A line with no working
    device (none configured, or all down) has no readings that could turn it red: the
    gateway's GREEN there means only "no alert", so it is shown as ``NO DATA``.
    """
    if stale:
        return andon("stale")
    colour = str(line.get("andon"))
    working = any(d.get("state") in WORKING for d in line_devices(snapshot, line["id"]))
    if colour == "green" and not working:
        return andon("no data")
    return andon(colour)


def probe_age(probe: Mapping[str, Any], stale_s: float | None) -> float | None:
    """How old the probe's reading is now, or None when it is recent enough to be current.

    A reading is old while the gateway is not answering (``stale_s``: seconds since its last
    answer, added to the age), while the probe's device is not working, or when it is older
    than two missed readings plus the TUI's own second of polling.
    """
    age_s = probe.get("age_s")
    if age_s is None:
        return None
    age_s = float(age_s) + (stale_s or 0.0)
    if stale_s is not None or probe.get("link", "up") not in WORKING:
        return age_s
    interval = probe.get("interval_s")
    if interval is not None and age_s > 2 * float(interval) + 2.0:
        return age_s
    return None


def probe_state(probe: Mapping[str, Any], stale_s: float | None) -> Text:
    """The probe's state; an old reading within the limits is ``? last ok``, never ``✓ ok``."""
    state = str(probe.get("state"))
    if state == "ok" and probe_age(probe, stale_s) is not None:
        state = "held"
    return styled(PROBE, state)


def probe_name(probe: Mapping[str, Any]) -> str:
    """Where the probe sits, as configured, with its tag; its device and tag without one."""
    location = probe.get("location")
    if location:
        return f"{location} ({probe.get('probe')})"
    return f"{probe.get('device')}/{probe.get('probe')}"


def stale_note(stale_s: float | None) -> Text:
    """After a screen's title: how long the figures have not been updated (empty if fresh)."""
    if stale_s is None:
        return Text("")
    return Text(f"  ? STALE: no answer for {age(stale_s)}", style="bold yellow")


def grams(value: float | None, places: int = 1) -> str:
    """A weight in grams, or ``-``."""
    return "-" if value is None else f"{value:.{places}f}"


def percent(value: float | None) -> str:
    """A percentage with two decimals, or ``-``."""
    return "-" if value is None else f"{value:.2f}"


def celsius(value: float | None) -> str:
    """A temperature, or ``-``."""
    return "-" if value is None else f"{value:.1f}°C"


def age(seconds: float | None) -> str:
    """A duration for operators: 12s, 5m, 3h, 2d; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def limits(lower: float | None, upper: float | None) -> str:
    """A probe's limits, e.g. ``≤ 5.0°C`` or ``-2.0..5.0°C``."""
    if lower is not None and upper is not None:
        return f"{lower:.1f}..{upper:.1f}°C"
    if upper is not None:
        return f"≤ {upper:.1f}°C"
    if lower is not None:
        return f"≥ {lower:.1f}°C"
    return "no limits"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as a one-line sparkline (blank when there are none)."""
    shown = list(values)[-width:]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low
    if span <= 0:
        return _SPARK[len(_SPARK) // 2] * len(shown)
    top = len(_SPARK) - 1
    return "".join(_SPARK[round((v - low) / span * top)] for v in shown)


def histogram(
    weights: Sequence[float],
    *,
    qn: float | None,
    t1: float | None,
    t2: float | None,
    width: int,
) -> tuple[str, str, str]:
    """Pack weights as a one-line histogram with an axis marking T2, T1 and Qn.

    Returns ``(bars, axis, scale)``: the bars (one block character per bin, height by count),
    an axis line with ``2``, ``1`` and ``Q`` under the bins holding T2, T1 and Qn, and a scale
    line with the low and high ends in grams. The range covers every weight and the three
    limits, so an underweight pack is always visible left of its limit.
    """
    if not weights or width < 8:
        return "", "", ""
    marks = [m for m in (t2, t1, qn) if m is not None]
    low = min([*weights, *marks])
    high = max([*weights, *marks])
    if high - low < 1e-9:
        high = low + 1.0
    step = (high - low) / width

    def column(value: float) -> int:
        return min(int((value - low) / step), width - 1)

    counts = [0] * width
    for weight in weights:
        counts[column(weight)] += 1
    most = max(counts)
    top = len(_BLOCKS) - 1
    bars = "".join(_BLOCKS[max(1, round(c / most * top))] if c else _BLOCKS[0] for c in counts)
    axis = [" "] * width
    for value, mark in ((t2, "2"), (t1, "1"), (qn, "Q")):
        if value is not None:
            axis[column(value)] = mark
    left, right = f"{low:.1f} g", f"{high:.1f} g"
    gap = max(width - len(left) - len(right), 1)
    return bars, "".join(axis), f"{left}{' ' * gap}{right}"


def run_product(line: Mapping[str, Any]) -> str:
    """The product on the line's checkweigher: the run product whose Qn is set, else all."""
    run = line.get("run")
    if not run:
        return "-"
    products = run.get("products") or []
    qn = (line.get("emark") or {}).get("qn_g")
    chosen = [p for p in products if qn is not None and p.get("nominal_g") == qn]
    if chosen:
        return str(chosen[0].get("description") or chosen[0].get("plu"))
    if len(products) == 1:
        return str(products[0].get("description") or products[0].get("plu"))
    return f"{len(products)} products" if products else "-"


def label_status(labels: Mapping[str, Any]) -> Text:
    """The label sequence in a few characters: state and last number or gap count."""
    state = str(labels.get("state", "no scans"))
    text = styled(LABELS, state)
    if state == "gap":
        text.append(f" {labels.get('missing_count', 0)}")
    elif labels.get("last") is not None:
        text.append(f" #{labels['last']}", style="")
    return text


def worst_probe(line: Mapping[str, Any], stale_s: float | None = None) -> Text:
    """The line's worst probe: temperature, a symbol for its state, and its age when old
    (``?2.6°C 35s``: a figure that says nothing about now must not look current)."""
    probe = line.get("worst_probe")
    if not probe:
        return Text("-", style="dim")
    state = str(probe.get("state"))
    symbol, style = PROBE.get(state, (clean(state, 12), ""))
    # The symbol alone (▲ of "▲ HIGH"); an unknown state, even an empty one, is a "?".
    mark = (symbol.split() or ["?"])[0]
    old = probe_age(probe, stale_s)
    if old is not None:
        mark = "?" if state in ("ok", "waiting") else mark
        text = Text(f"{mark}{celsius(probe.get('celsius'))} {age(old)}", style="yellow")
        if state not in ("ok", "waiting"):
            text.stylize(style)
        return text
    if state in ("ok", "waiting"):
        return Text(celsius(probe.get("celsius")), style="" if state == "ok" else "yellow")
    return Text(f"{mark}{celsius(probe.get('celsius'))}", style=style)


def emark_counts(line: Mapping[str, Any]) -> Text:
    """Packs below T1 and T2 in the open ℮ batch, red when any is below T2."""
    emark = line.get("emark") or {}
    t1, t2 = int(emark.get("below_t1") or 0), int(emark.get("below_t2") or 0)
    style = "bold red" if t2 else ("dark_orange" if t1 else "")
    return Text(f"{t1}/{t2}", style=style)


def alert_ref(alert: Mapping[str, Any]) -> Text:
    """The alert's short reference (what ``lineside ack REF`` takes), or ``-``."""
    ref = alert.get("ref")
    if not ref:
        return Text("-", style="dim")
    return plain(ref, 16, style="bold")


def occurrences(alert: Mapping[str, Any]) -> str:
    """``×600`` when the condition came back more than once while the alert stood, else ``""``."""
    try:
        count = int(alert.get("occurrences") or 1)
    except (TypeError, ValueError):
        return ""
    return f"×{count}" if count > 1 else ""


def alert_message(alert: Mapping[str, Any]) -> str:
    """The alert's message without the corrective action the gateway appends to it
    (``… . Action: …``): the screens show the action on a line of its own."""
    message = str(alert.get("message") or "")
    action = alert.get("action")
    suffix = f". Action: {action}"
    if action and message.endswith(suffix):
        return message[: -len(suffix)]
    return message


def alert_action(alert: Mapping[str, Any] | None) -> Text:
    """``Action: …`` for the alert's corrective action (empty when the rule has none)."""
    action = (alert or {}).get("action")
    if not action:
        return Text("")
    text = Text("Action: ", style="bold", end="")
    text.append_text(plain(action))
    return text


def flooding(load: Mapping[str, Any] | None) -> bool:
    """More alerts raised in the last ten minutes than an operator can handle (EEMUA 191)."""
    return int((load or {}).get("last_10_min") or 0) > FLOOD_ABOVE


def flood_badge(load: Mapping[str, Any] | None) -> Text:
    """``■ FLOOD`` while the last ten minutes are in flood (more than ten raised), else empty."""
    if not flooding(load):
        return Text("")
    return Text("■ FLOOD", style="bold white on red")


def alarm_rate(load: Mapping[str, Any] | None) -> Text:
    """A line's alarm load in one phrase: ``alarms: 3 / 10 min`` and the flood badge."""
    if not load:
        return Text("alarms: -", style="dim")
    text = Text(f"alarms: {int(load.get('last_10_min') or 0)} / 10 min")
    text.append(f" (avg {float(load.get('per_10_min') or 0.0):.2f})", style="dim")
    if flooding(load):
        text.append(" ")
        text.append_text(flood_badge(load))
    return text


def alarm_summary(load: Mapping[str, Any] | None) -> Text:
    """The gateway's alarm load (last 24 h) for the system screen, in ISA-18.2 terms."""
    if not load:
        return Text("no figures from the gateway", style="dim")
    last = int(load.get("last_10_min") or 0)
    flood_pct = float(load.get("flood_pct") or 0.0)
    stale = int(load.get("stale") or 0)
    text = Text(f"{last} raised in the last 10 min")
    if flooding(load):
        text.append(" ")
        text.append_text(flood_badge(load))
    text.append(
        f"\n        avg {float(load.get('per_10_min') or 0.0):.2f} / 10 min"
        f", peak {int(load.get('peak_10_min') or 0)}"
        f", flood {flood_pct:.1f} % of 10-min periods, stale "
    )
    # Stale: active for more than a day (ISA-18.2's target is fewer than five).
    text.append(str(stale), style="bold dark_orange" if stale else "")
    return text
