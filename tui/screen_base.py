"""What every operator screen shares: the app it serves, ages, the connection banner.

Each screen draws from the latest gateway snapshot (:mod:`gateway.api` has its shape) in
:meth:`StatusScreen.show`, which the app calls after every poll and when the screen comes
back into view. Ages are computed against the snapshot's own clock (``gateway.now_us``)
plus, while the gateway is not answering, how long ago its last answer came (the app's
``stale_s``), so what is drawn depends on the snapshot and that one number alone.

While the figures are stale every screen says so after its title, every andon reads
``? STALE``, every device state ``? was up``, and every probe reading shows its age. Text
from outside is always given to widgets as :class:`~rich.text.Text` (see :mod:`tui.render`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static

from gateway.api import OperatorRequest, StatusSnapshot
from tui import render

WIDE = 110
"""From this many columns the lines table also shows the product and the line mode."""

DETAIL_ALERTS = 5
"""Alerts listed on a line's detail, most urgent first: a flood of them must not push the
weights and probes out of sight (the alerts screen lists them all)."""


class Host(Protocol):
    """What the screens need from the app (:class:`tui.app.LinesideApp`)."""

    snapshot: StatusSnapshot | None
    operator: str

    def redraw(self) -> None:
        """Draw the current screen from the latest snapshot."""

    def send_operator_command(self, request: OperatorRequest | None) -> None:
        """Send an acknowledge/shelve request from a dialog (None: cancelled)."""


def host(screen: Screen[Any]) -> Host:
    """The Lineside app behind a screen."""
    return cast(Host, screen.app)


def us_age(snapshot: StatusSnapshot, ts_us: int | None, stale_s: float | None = None) -> str:
    if ts_us is None:
        return "-"
    return render.age((int(snapshot["gateway"]["now_us"]) - int(ts_us)) / 1e6 + (stale_s or 0))


def plus_stale(seconds: float | None, stale_s: float | None) -> float | None:
    """An age from the snapshot, grown by the time the gateway has not answered."""
    return None if seconds is None else seconds + (stale_s or 0)


Item = TypeVar("Item", bound=Mapping[str, object])


def unique(items: list[Item], key: str = "id") -> list[Item]:
    """``items`` without repeats of ``key``: a table refuses a row key twice, and a TUI that
    crashes on a gateway's mistake is one the operator cannot use at all."""
    seen: set[object] = set()
    out = []
    for item in items:
        if item.get(key) not in seen:
            seen.add(item.get(key))
            out.append(item)
    return out


class StatusScreen(Screen[None]):
    """A screen that shows part of the gateway snapshot, with the connection banner."""

    stale_s: float | None = None
    """Seconds since the gateway last answered while it is not answering; None when fresh."""

    def compose_banner(self) -> ComposeResult:
        """The header, and the banner that says when the gateway cannot be reached."""
        yield Header(show_clock=False)
        yield Static("", id="banner")

    def on_screen_resume(self) -> None:
        """Redraw from the app's latest snapshot when the screen comes back."""
        self.app.call_later(host(self).redraw)

    def show(
        self, snapshot: StatusSnapshot | None, problem: str | None, stale_s: float | None = None
    ) -> None:
        """Draw ``snapshot`` (None before the first answer); ``problem`` fills the banner;
        ``stale_s`` is how long the gateway has not answered (None while it answers)."""
        banner = self.query_one("#banner", Static)
        banner.display = problem is not None
        if problem is not None:
            banner.update(Text(problem))
        self.stale_s = stale_s
        if snapshot is not None:
            self.draw(snapshot)

    def draw(self, snapshot: StatusSnapshot) -> None:
        """Draw the screen's part of the snapshot (each screen draws its own part)."""


# ------------------------------------------------------------------------------ lines
