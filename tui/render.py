"""Pure formatting for the operator screens: values in, text out.

Every state is written as a word and a symbol as well as a colour, so the screen reads on a
monochrome terminal, to a colour-blind operator, and in a photo of the screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

ANDON = {
    "red": ("■ RED", "bold white on red"),
    "amber": ("▲ AMBER", "bold black on dark_orange"),
    "green": ("● GREEN", "bold black on green"),
}
"""Andon colour -> (symbol and word, style)."""

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
}

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


def alert_order(alert: dict[str, Any]) -> tuple[int, int, int]:
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
    label, style = table.get(key, (key, ""))
    return Text(label, style=style)


def andon(colour: str) -> Text:
    """An andon colour as a badge: symbol, word and colour."""
    return styled(ANDON, colour)


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


def run_product(line: dict[str, Any]) -> str:
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


def label_status(labels: dict[str, Any]) -> Text:
    """The label sequence in a few characters: state and last number or gap count."""
    state = str(labels.get("state", "no scans"))
    text = styled(LABELS, state)
    if state == "gap":
        text.append(f" {labels.get('missing_count', 0)}")
    elif labels.get("last") is not None:
        text.append(f" #{labels['last']}", style="")
    return text


def worst_probe(line: dict[str, Any]) -> Text:
    """The line's worst probe: temperature and a symbol for its state."""
    probe = line.get("worst_probe")
    if not probe:
        return Text("-", style="dim")
    state = str(probe.get("state"))
    symbol, style = PROBE.get(state, (state, ""))
    if state in ("ok", "waiting"):
        return Text(celsius(probe.get("celsius")), style="" if state == "ok" else "yellow")
    return Text(f"{symbol.split()[0]}{celsius(probe.get('celsius'))}", style=style)


def emark_counts(line: dict[str, Any]) -> Text:
    """Packs below T1 and T2 in the open ℮ batch, red when any is below T2."""
    emark = line.get("emark") or {}
    t1, t2 = int(emark.get("below_t1") or 0), int(emark.get("below_t2") or 0)
    style = "bold red" if t2 else ("dark_orange" if t1 else "")
    return Text(f"{t1}/{t2}", style=style)
