"""The TUI's behaviour with a fixed status source (the seam the control socket fills):
what it sends for acknowledge and shelve, what it refuses, and what it says when the
gateway answers something it cannot read."""

from __future__ import annotations

import copy
from typing import Any

from textual.widgets import Input, Static

from tests.support.tui_source import STATUS, FixedSource
from tests.support.waiting import wait_for
from tui.app import LinesideApp
from tui.screens import AlertsScreen, OperatorDialog


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
