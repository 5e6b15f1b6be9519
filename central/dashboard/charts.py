"""The dashboard's charts: data in, SVG bytes out (no I/O, no clock reads).

Rendered with matplotlib's object API (``Figure`` + the SVG canvas, never ``pyplot``: no
global state shared between requests served on different threads). Text from the warehouse
(PLU codes, probe names) is untrusted: matplotlib writes it escaped into the SVG, and a
``$`` is escaped first so it is never read as mathtext. Each chart has a title, axis labels
with units and a legend; docs/dashboard.md says where each series comes from.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import date2num
from matplotlib.figure import Figure

# The SVG's element ids from a fixed salt, not a random one: the same data gives the same
# bytes (a chart can be cached and compared). Nothing else in the process draws with it.
mpl.rcParams["svg.hashsalt"] = "lineside-dashboard"

_SIZE = (7.2, 3.4)
"""Inches; at 100 dpi a chart fills the page's main column without scaling its text much."""

_COLOURS = {"bars": "#4c78a8", "qn": "#2b8a3e", "t1": "#e8890c", "t2": "#c92a2a", "line": "#4c78a8"}


def plain(text: str) -> str:
    """``text`` for a matplotlib label: a ``$`` escaped so no mathtext is parsed from data."""
    return text.replace("\\", "\\\\").replace("$", r"\$")


@dataclass(frozen=True, slots=True)
class Limits:
    """The ℮ reference lines of one product, grams (None: not known for the product)."""

    qn_g: float | None
    t1_g: float | None
    t2_g: float | None


@dataclass(frozen=True, slots=True)
class Interval:
    """A span of time to shade (a temperature breach)."""

    start: datetime
    end: datetime


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=_SIZE, dpi=100, layout="constrained")
    axes = fig.add_subplot()
    axes.set_title(plain(title), fontsize=11)
    axes.grid(visible=True, alpha=0.3)
    return fig, axes


def _svg(fig: Figure) -> bytes:
    FigureCanvasSVG(fig)
    out = io.BytesIO()
    # No date in the metadata: the same data gives the same bytes.
    fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _num(when: datetime) -> float:
    """``when`` as matplotlib's date number (the axis is then shown as dates in UTC)."""
    return float(date2num(when))  # type: ignore[no-untyped-call]  # matplotlib.dates is unannotated


def _dates(axes: Axes) -> None:
    axes.xaxis_date(tz="UTC")
    axes.tick_params(axis="x", labelsize=8)


def _legend(axes: Axes) -> None:
    # Beside the plot, not over it: the data stays visible whatever its shape.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def weight_histogram(title: str, weights: Sequence[float], limits: Limits) -> bytes:
    """Histogram of net weights (g) with the Qn, T1 and T2 lines of the product."""
    fig, axes = _figure(title)
    ax = axes
    if not weights:
        _empty(ax, "no accepted packs")
        return _svg(fig)
    edges = min(40, max(5, int(len(weights) ** 0.5)))
    ax.hist(
        list(weights),
        bins=edges,
        color=_COLOURS["bars"],
        alpha=0.85,
        label=f"packs (n={len(weights)})",
    )
    for name, value, style in (
        ("Qn", limits.qn_g, "-"),
        ("T1", limits.t1_g, "--"),
        ("T2", limits.t2_g, ":"),
    ):
        if value is not None:
            ax.axvline(
                value,
                color=_COLOURS[name.lower()],
                linestyle=style,
                linewidth=2,
                label=f"{name} {value:g} g",
            )
    ax.set_xlabel("net weight (g)")
    ax.set_ylabel("packs")
    _legend(ax)
    return _svg(fig)


def giveaway_trend(title: str, points: Sequence[tuple[datetime, float]]) -> bytes:
    """Giveaway (%) over time, one point per run or hour, oldest first."""
    fig, axes = _figure(title)
    ax = axes
    if not points:
        _empty(ax, "no giveaway figures in this period")
        return _svg(fig)
    xs = [_num(p[0]) for p in points]
    ys = [p[1] for p in points]
    ax.plot(xs, ys, marker="o", color=_COLOURS["line"], label="giveaway (%)")
    ax.axhline(3.0, color=_COLOURS["t2"], linestyle="--", linewidth=1, label="3 % compliance limit")
    _dates(ax)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("giveaway (% of nominal)")
    _legend(ax)
    return _svg(fig)


def temperature_chart(
    title: str,
    points: Sequence[tuple[datetime, float]],
    *,
    low_c: float | None,
    high_c: float | None,
    breaches: Sequence[Interval],
) -> bytes:
    """One probe's readings (°C) against its limits, breach intervals shaded."""
    fig, axes = _figure(title)
    ax = axes
    if not points:
        _empty(ax, "no readings during the run")
        return _svg(fig)
    ax.plot(
        [_num(p[0]) for p in points],
        [p[1] for p in points],
        color=_COLOURS["line"],
        linewidth=1.0,
        label="reading (°C)",
    )
    if high_c is not None:
        ax.axhline(high_c, color=_COLOURS["t2"], linestyle="--", label=f"upper limit {high_c:g} °C")
    if low_c is not None:
        ax.axhline(low_c, color=_COLOURS["t1"], linestyle="--", label=f"lower limit {low_c:g} °C")
    for index, span in enumerate(breaches):
        label = "breach" if index == 0 else None
        ax.axvspan(
            _num(span.start),
            _num(span.end),
            color=_COLOURS["t2"],
            alpha=0.35,
            label=label,
        )
    _dates(ax)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("temperature (°C)")
    _legend(ax)
    return _svg(fig)


__all__ = ["Interval", "Limits", "giveaway_trend", "plain", "temperature_chart", "weight_histogram"]
