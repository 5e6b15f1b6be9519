"""The TUI's behaviour with a fixed status source (the seam the control socket fills):
what it sends for acknowledge and shelve, what it refuses, what it says when the gateway
answers something it cannot read or does not answer at all, and where each key leads."""

from __future__ import annotations

import asyncio
import copy
import gc
import warnings
from types import SimpleNamespace
from typing import Any, cast

from textual.screen import Screen
from textual.widgets import Input, Static
from textual.worker import WorkerState

from gateway.api import Acknowledge
from tests.support.tui_source import STATUS, FixedSource, SetClock, SilentSource
from tests.support.waiting import wait_for
from tui.app import LinesideApp
from tui.client import ConnectionState
from tui.screens import AlertsScreen, LineScreen, LinesScreen, OperatorDialog, SystemScreen


class RefusingSource(FixedSource):
    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        self.commands.append(request)
        return {"ok": False, "error": "unknown alert 'x'"}


async def test_shelving_asks_for_minutes_and_sends_them() -> None:
    source = FixedSource(STATUS)
    app = LinesideApp(source, operator="Bob")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: app.polls >= 1)
        await pilot.press("2", "s")
        dialog = app.screen
        assert isinstance(dialog, OperatorDialog)
        assert dialog.query_one("#operator", Input).value == "Bob", "the name is offered"
        minutes = dialog.query_one("#minutes", Input)
        minutes.value = "0"
        await pilot.press("enter")
        assert isinstance(app.screen, OperatorDialog), "0 minutes is refused"
        assert "1 to 1440" in str(dialog.query_one("#dialog-error", Static).content)
        minutes.value = "45"
        await pilot.press(*"sensor swapped", "enter")
        await wait_for(lambda: bool(source.commands))
    [sent] = source.commands
    assert sent["command"] == "shelve"
    assert sent["minutes"] == 45
    assert sent["operator"] == "Bob"
    assert sent["comment"] == "sensor swapped"
    assert sent["alert_id"] == min(STATUS["alerts"]["active"], key=_critical_first)["id"]


def _critical_first(alert: dict[str, Any]) -> int:
    return {"critical": 0, "major": 1, "warning": 2}[alert["severity"]]


async def test_a_refused_acknowledgement_is_shown_and_escape_sends_nothing() -> None:
    source = RefusingSource(STATUS)
    app = LinesideApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: app.polls >= 1)
        await pilot.press("2", "a")
        assert isinstance(app.screen, OperatorDialog)
        await pilot.press("escape")
        assert isinstance(app.screen, AlertsScreen)
        assert source.commands == []
        await pilot.press("a", *"Ann", "enter")
        await wait_for(lambda: len(source.commands) == 1)
        await wait_for(lambda: any("Refused" in str(n.message) for n in app._notifications))


async def test_a_gateway_of_another_release_is_named_not_misdrawn() -> None:
    newer = copy.deepcopy(STATUS)
    newer["version"] = 99
    app = LinesideApp(FixedSource(newer))
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: app.polls >= 1)
        banner = app.screen.query_one("#banner", Static)
        assert banner.display
        assert "status version 99" in str(banner.content)
        assert app.snapshot is None


async def test_an_acknowledged_alert_cannot_be_acknowledged_again() -> None:
    status = copy.deepcopy(STATUS)
    for alert in status["alerts"]["active"]:
        alert["acknowledged"] = True
        alert["acknowledged_by"] = "Ann"
        alert["state"] = "active-acknowledged"
    source = FixedSource(status)
    app = LinesideApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: app.polls >= 1)
        await pilot.press("2", "a")
        assert isinstance(app.screen, AlertsScreen), "no dialog"
        assert source.commands == []


class HeldSource(FixedSource):
    """Answers at once, then holds each answer until the test releases it."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        super().__init__(snapshot)
        self.asked = 0
        self.release = asyncio.Event()

    async def status(self) -> dict[str, Any]:
        self.asked += 1
        if self.asked > 1:
            await self.release.wait()
        return await super().status()


def current(app: LinesideApp) -> Screen[Any]:
    """``app.screen`` read afresh (mypy keeps an earlier ``isinstance`` narrowing)."""
    return app.screen


async def test_a_gateway_that_stops_answering_is_not_answering_and_stale() -> None:
    """The answer is late, not failed: the request is neither cancelled by the next tick
    (once shown as "Display error: CancelledError()") nor repeated, and the screen says the
    gateway is not answering and how old its figures are."""
    clock = SetClock()
    source = SilentSource(STATUS)
    app = LinesideApp(source, clock=clock, poll_interval_s=0.1, answer_due_s=0.3)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: app.state is ConnectionState.UP)
        clock.now += 12
        await wait_for(lambda: app.state is ConnectionState.DOWN, timeout=2)
        banner = app.screen.query_one("#banner", Static)
        await wait_for(lambda: "12s ago (stale)" in str(banner.content), timeout=1)
        assert "not answering" in str(banner.content)
        assert "not answering" in app.sub_title
        assert "? STALE: no answer for 12s" in str(app.screen.query_one("#title", Static).content)
        clock.now += 10
        await wait_for(lambda: "22s ago (stale)" in str(banner.content), timeout=1)
        assert "Display error" not in str(banner.content)
        assert source.answered == 1, "one request out at a time, however many ticks"


async def test_a_late_answer_brings_the_gateway_back() -> None:
    source = HeldSource(STATUS)
    app = LinesideApp(source, poll_interval_s=0.1, answer_due_s=0.3)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: app.state is ConnectionState.UP)
        await wait_for(lambda: app.state is ConnectionState.DOWN, timeout=2)
        assert source.asked == 2
        source.release.set()
        await wait_for(lambda: app.state is ConnectionState.UP, timeout=2)
        assert not app.screen.query_one("#banner", Static).display
        assert "STALE" not in str(app.screen.query_one("#title", Static).content)


async def test_every_key_goes_back_where_its_label_says() -> None:
    app = LinesideApp(FixedSource(STATUS))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: app.polls >= 1)
        await pilot.press("enter")
        assert isinstance(current(app), LineScreen)
        await pilot.press("1")  # "1 Lines" on a line's detail: the lines list
        assert isinstance(current(app), LinesScreen)
        await pilot.press("enter", "escape")
        assert isinstance(current(app), LinesScreen)
        await pilot.press("enter", "2")
        assert isinstance(current(app), AlertsScreen)
        await pilot.press("1")  # not back to the detail the alerts were opened from
        assert isinstance(current(app), LinesScreen)
        await pilot.press("enter", "3")
        assert isinstance(current(app), SystemScreen)
        await pilot.press("escape")
        assert isinstance(current(app), LinesScreen)
        await pilot.press("2", "a")
        assert isinstance(current(app), OperatorDialog)
        await pilot.press("escape")
        assert isinstance(current(app), AlertsScreen)
        await pilot.press("escape")
        assert isinstance(current(app), LinesScreen)
        await pilot.press("3", "2")
        assert isinstance(current(app), AlertsScreen)


async def test_an_answer_or_a_failure_after_the_app_has_closed_is_no_crash() -> None:
    """A poll answered, or a worker failing, once the screens are gone (the app closing) once
    raised ScreenStackError out of the closing app; there is nothing left to draw on."""
    app = LinesideApp(FixedSource(STATUS), poll_interval_s=0.1)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: app.polls >= 1)
    assert not app.screen_stack
    app.redraw()
    # What Textual hands the handler when a worker fails: its state and its error.
    failed = SimpleNamespace(worker=SimpleNamespace(error=RuntimeError("drawing failed")))
    failed.state = WorkerState.ERROR
    app.on_worker_state_changed(cast(Any, failed))


async def test_requests_cancelled_before_they_start_leave_nothing_unawaited() -> None:
    """The app closing can cancel a poll or a command that has been queued but has not yet
    run. Such a request must simply never happen: no coroutine left behind for the garbage
    collector to warn about (the warning surfaces in whatever runs next)."""
    source = FixedSource(STATUS)
    app = LinesideApp(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with app.run_test(size=(80, 24)):
            await wait_for(lambda: app.polls >= 1)
            app.poll()
            app.send_operator_command(
                Acknowledge.unchecked(alert_id="x", operator="Ann", comment="")
            )
            # Cancelled in the same step they were queued in: neither task has begun.
            app.workers.cancel_group(app, "poll")
            app.workers.cancel_group(app, "command")
            await asyncio.sleep(0)
        gc.collect()
    unawaited = [w for w in caught if "was never awaited" in str(w.message)]
    assert unawaited == []
    assert source.commands == [], "the cancelled command was never sent"
