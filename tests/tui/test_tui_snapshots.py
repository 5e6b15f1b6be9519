"""Snapshot tests of every TUI screen at 80×24 and 120×40.

The screens draw a status snapshot recorded from the demo gateway (``data/tui_status.json``:
line L1 with an active label gap and a probe above its limit, a cleared ℮ alert, and line
L2 with no devices), served by a fixed source in place of the control socket; variants of
it show a gateway that stopped answering, a device down, and a flood of alerts. Update the
pictures after a deliberate change with ``pytest tests/tui/test_tui_snapshots.py
--snapshot-update`` and look at them in ``tests/tui/__snapshots__/`` before committing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tests.support.tui_source import (
    SIZES,
    STATUS,
    FixedSource,
    SetClock,
    SilentSource,
    alert_flood,
    chattering,
    device_down,
)
from tui.app import LinesideApp
from tui.client import ConnectionState

STALE_FOR_S = 35.0
"""How long the silent gateway has not answered when the stale screens are drawn."""


def troubled(status: dict[str, Any]) -> dict[str, Any]:
    """The recorded status with a device down, the uplink down and a backlog."""
    status = copy.deepcopy(status)
    system = status["system"]
    system["devices"][2]["state"] = "down"
    system["devices"][2]["last_error"] = "[Errno 111] Connect call failed ('10.1.4.20', 502)"
    system["uplink"]["state"] = "down"
    system["uplink"]["last_error"] = "[Errno 113] No route to host"
    system["outbox"] = {"depth": 18342, "oldest_age_s": 1260.0}
    system["erp"]["staleness_s"] = 95.0
    return status


def app_with(snapshot: dict[str, Any] | None) -> LinesideApp:
    return LinesideApp(FixedSource(snapshot), operator="", gateway_name="demo-gw1")


def tables_measured(pilot: Pilot[None]) -> bool:
    """Whether every table on the screen has measured its columns for the rows it holds.

    A DataTable fills its cells at once but measures its columns when its message queue is
    next idle; until then it draws them at their headers' widths. (Textual's own flags: there
    is no public way to ask.)"""
    return not any(
        table._require_update_dimensions or table._updated_cells
        for table in pilot.app.screen.query(DataTable)
    )


async def settled(pilot: Pilot[None], *, within_s: float = 10.0) -> None:
    """Wait until every table has measured its columns and two pictures of the screen 50 ms
    apart agree, then once more after the tables have drawn every line afresh.

    Pictures alone were not enough: on a busy machine two were once taken before the
    tables' idle measure, alike, and the snapshot showed header-wide columns. Nor was the
    measure: a table keeps the lines it drew before measuring in a cache that the measure
    does not clear (Textual 8's DataTable clears it when the table changes or resizes), so a
    screen drawn between the rows' arrival and the measure kept header-wide columns, in a
    stressed run, until its next redraw; on this manual clock there is none. The live TUI
    redraws a stale screen as its age moves (tui/app.py), which draws the lines again."""
    previous = None
    flushed = False
    for _ in range(int(within_s / 0.05)):
        await pilot.pause(0.05)
        picture = pilot.app.export_screenshot()
        if picture == previous and tables_measured(pilot):
            if flushed:
                return
            for table in pilot.app.screen.query(DataTable):
                table.notify_style_update()  # clears every cache of the table, and redraws
            flushed = True
            picture = None
        previous = picture
    raise AssertionError(f"the screen still changed after {within_s:g} s")


def after(*keys: str) -> Callable[[Pilot[None]], Any]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, LinesideApp)
        while app.polls < 1:
            await pilot.pause(0.01)
        await pilot.press(*keys)
        # A focused Input's cursor blinks every 0.5 s, so a picture shows it or not by when
        # it is taken (a loaded machine once took it in the other phase): hold it shown.
        for field in app.screen.query(Input):
            field.cursor_blink = False
        await settled(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_lines_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(STATUS), terminal_size=size, run_before=after())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_line_detail_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(STATUS), terminal_size=size, run_before=after("enter"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_alerts_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(STATUS), terminal_size=size, run_before=after("2"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_acknowledge_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(STATUS), terminal_size=size, run_before=after("2", "a"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_system_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(troubled(STATUS)), terminal_size=size, run_before=after("3"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_gateway(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(None), terminal_size=size, run_before=after())


def silent_app() -> tuple[LinesideApp, SetClock]:
    """An app whose gateway answers once and then hangs, on a clock the test moves."""
    clock = SetClock()
    app = LinesideApp(SilentSource(STATUS), operator="", gateway_name="demo-gw1", clock=clock)
    return app, clock


def stale_after(clock: SetClock, *keys: str) -> Callable[[Pilot[None]], Any]:
    """The first answer, then STALE_FOR_S without one (the late answer is noticed in real
    time, its age read from ``clock``), then ``keys``."""

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, LinesideApp)
        while app.polls < 1:
            await pilot.pause(0.01)
        clock.now += STALE_FOR_S
        while app.state is not ConnectionState.DOWN:
            await pilot.pause(0.05)
        await pilot.press(*keys)
        # A focused Input's cursor blinks every 0.5 s, so a picture shows it or not by when
        # it is taken (a loaded machine once took it in the other phase): hold it shown.
        for field in app.screen.query(Input):
            field.cursor_blink = False
        await settled(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_stale_lines_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    app, clock = silent_app()
    assert snap_compare(app, terminal_size=size, run_before=stale_after(clock))


def test_stale_line_detail_screen(snap_compare: Any) -> None:
    app, clock = silent_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=stale_after(clock, "enter"))


def test_stale_system_screen(snap_compare: Any) -> None:
    app, clock = silent_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=stale_after(clock, "3"))


def test_device_down_lines_screen(snap_compare: Any) -> None:
    assert snap_compare(app_with(device_down(STATUS)), terminal_size=(80, 24), run_before=after())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_device_down_line_detail_probes(snap_compare: Any, size: tuple[int, int]) -> None:
    """Scrolled down to the probes: their readings aged, "? last ok" not "✓ ok"."""
    assert snap_compare(
        app_with(device_down(STATUS)), terminal_size=size, run_before=after("enter", "end")
    )


def test_line_without_devices(snap_compare: Any) -> None:
    """L2 has no devices: NO DATA, not GREEN."""
    assert snap_compare(app_with(STATUS), terminal_size=(80, 24), run_before=after("enter", "n"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_alert_flood(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(alert_flood(STATUS)), terminal_size=size, run_before=after("2"))


def test_alert_flood_line_detail(snap_compare: Any) -> None:
    """A line's detail lists the five most urgent and counts the rest."""
    assert snap_compare(
        app_with(alert_flood(STATUS)), terminal_size=(80, 24), run_before=after("enter")
    )


def test_chattering_flood_alerts_screen(snap_compare: Any) -> None:
    """Alerts that keep coming back: each row's ref and count (×600), the FLOOD marker in
    the title, and the action of the highlighted alert."""
    assert snap_compare(app_with(chattering(STATUS)), terminal_size=(80, 24), run_before=after("2"))


def test_chattering_flood_line_detail(snap_compare: Any) -> None:
    """The line's alarm load (raised in the last 10 min, FLOOD), refs, counts, action."""
    assert snap_compare(
        app_with(chattering(STATUS)), terminal_size=(80, 24), run_before=after("enter")
    )


def test_chattering_flood_system_screen(snap_compare: Any) -> None:
    """The gateway's alarm load: last 10 min with FLOOD, average, % in flood, stale."""
    assert snap_compare(app_with(chattering(STATUS)), terminal_size=(80, 24), run_before=after("3"))
