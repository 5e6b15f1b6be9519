"""Text from outside is shown literally, never parsed as markup, and never crashes the TUI.

Run numbers and products come from the ERP or from whoever started a run, alert messages
quote them, device errors quote devices, operator names are typed. On a console that
restarts the TUI whenever it exits, one run number such as ``R[/]42`` (a Rich markup error)
would be a crash loop, and ``R42 [rework]`` would silently lose its ``[rework]``.

Two kinds of test: each field in turn carries a hostile string and must appear literally
on some screen (a terminal wide enough that nothing wraps or is cut); and every string of
the snapshot at once is hostile (very long, control characters, duplicate ids) while an
operator presses through every screen and dialog at 80×24.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.strip import Strip

from tests.support.tui_source import STATUS, FixedSource
from tests.support.waiting import wait_for
from tui import render
from tui.app import LinesideApp

HOSTILE = (
    "R[/]42 [rework] [bold]B[/bold] [link=x]L[/link] [@click=app.quit]Q[/] "
    "\x1b[31mE\x1b[0m\x07\x00\r\n\tZ \u202eevil"
)
"""Markup of every kind Textual and Rich read (closing tag, style, link, action), an ANSI
colour escape, a bell, a NUL, a carriage return, a newline, a tab and a direction override."""

SHOWN = "R[/]42 [rework] [bold]B[/bold] [link=x]L[/link] [@click=app.quit]Q[/] ␛[31mE␛[0m␇␀␍␊␉Z"
"""How :data:`HOSTILE` must read on screen: the markup as typed, the control characters as
their pictures."""

CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


def screen_strips(app: LinesideApp) -> list[Strip]:
    """What the terminal is sent for the current screen, line by line."""
    return app.screen._compositor.render_strips()


def screen_text(app: LinesideApp) -> str:
    return "\n".join(strip.text for strip in screen_strips(app))


def no_control_characters_or_links(app: LinesideApp) -> None:
    """Nothing on screen is a control character, and no text became a hyperlink."""
    for strip in screen_strips(app):
        assert not CONTROL & set(strip.text), repr(strip.text)
        for segment in strip:
            style = segment.style
            assert style is None or not style.link, f"a link on screen: {segment!r}"


def at(path: tuple[Any, ...]) -> Callable[[dict[str, Any], str], None]:
    """A setter of the snapshot value at ``path`` (``"*"`` means every item of a list)."""

    def put(snapshot: dict[str, Any], value: str) -> None:
        def walk(node: Any, rest: tuple[Any, ...]) -> None:
            key, *more = rest
            targets = range(len(node)) if key == "*" else [key]
            for target in targets:
                if more:
                    walk(node[target], tuple(more))
                else:
                    node[target] = value

        walk(snapshot, path)

    return put


FIELDS: dict[str, tuple[Callable[[dict[str, Any], str], None], ...]] = {
    "run number": (at(("lines", "*", "run", "run_number")),),
    "run description": (at(("lines", "*", "run", "description")),),
    "product description": (at(("lines", "*", "run", "products", "*", "description")),),
    "product tier": (at(("lines", "*", "run", "products", "*", "tier")),),
    "batch code": (at(("lines", 0, "run", "batch_codes", 0)),),
    "species": (at(("lines", "*", "run", "species")),),
    "line name": (at(("lines", "*", "name")),),
    "line mode": (at(("lines", "*", "mode")),),
    "line alert message": (at(("lines", 0, "active_alerts", "*", "message")),),
    "alert message": (at(("alerts", "active", "*", "message")),),
    "alert subject": (at(("alerts", "active", "*", "subject")),),
    "alert ref": (at(("alerts", "active", "*", "ref")),),
    "alert action": (at(("alerts", "active", "*", "action")),),
    "line alert action": (at(("lines", 0, "active_alerts", "*", "action")),),
    "operator name": (at(("alerts", "active", "*", "acknowledged_by")),),
    "operator comment": (at(("alerts", "active", "*", "comment")),),
    "device error": (at(("system", "devices", "*", "last_error")),),
    "ERP error": (at(("system", "erp", "last_error")),),
    "uplink endpoint": (at(("system", "uplink", "endpoint")),),
    "uplink error": (at(("system", "uplink", "last_error")),),
    "probe location": (
        at(("lines", 0, "probes", "*", "location")),
        at(("lines", 0, "worst_probe", "location")),
    ),
    "probe fault": (),  # a list: see set_field
    "line id": (at(("lines", 1, "id")),),
    "device id": (at(("system", "devices", 0, "id")),),
}


def set_field(snapshot: dict[str, Any], field: str, value: str) -> None:
    for put in FIELDS[field]:
        put(snapshot, value)
    if field == "probe fault":
        snapshot["lines"][0]["probes"][0]["faults"] = [value]
        snapshot["lines"][0]["probes"][0]["state"] = "fault"


async def visit_every_screen(app: LinesideApp, pilot: Pilot[None]) -> str:
    """Press through every screen an operator sees; the text of each, joined."""
    seen = []

    async def look(*keys: str) -> None:
        await pilot.press(*keys)
        await pilot.pause()
        seen.append(screen_text(app))
        no_control_characters_or_links(app)

    await wait_for(lambda: app.polls >= 1)
    await look()  # the lines
    await look("enter")  # L1's detail
    await look("end")  # its lower half
    await look("n")  # L2's detail
    await look("escape", "2")  # the alerts, the first one in the panel
    await look("a")  # the acknowledge dialog
    await look("escape", "3")  # the system, the first device in the panel
    await look("1")
    return "\n".join(seen)


async def test_each_field_is_shown_literally() -> None:
    """Each field carries the hostile string after a tag of its own (``F3:``), so a field
    whose text were parsed as markup, or cut, would be missing from the screens' text."""
    snapshot = copy.deepcopy(STATUS)
    for n, field in enumerate(FIELDS):
        set_field(snapshot, field, f"F{n}:{HOSTILE}")
    app = LinesideApp(FixedSource(snapshot))
    async with app.run_test(size=(220, 60)) as pilot:  # wide: nothing is wrapped or cut
        text = await visit_every_screen(app, pilot)
        assert app.is_running
    missing = []
    for n, field in enumerate(FIELDS):
        expected = f"F{n}:{SHOWN}"
        if field == "probe location":
            expected = render.clean(expected, 24)  # a column of its own width
        if expected not in text:
            missing.append(field)
    assert not missing, f"not shown literally: {missing}"


@pytest.mark.parametrize(
    "value",
    [HOSTILE, "R[/]42", "[", "R42 [rework]", "\x1b]0;owned\x07\x1b[2J", "W" * 20_000, ""],
    ids=["everything", "closing-tag", "open-bracket", "rework", "osc", "long", "empty"],
)
async def test_a_snapshot_of_hostile_strings_everywhere_is_drawn_without_crashing(
    value: str,
) -> None:
    """Every string in the snapshot (ids, states and severities too) is ``value``, so ids
    repeat and states are unknown: the TUI draws it, and every screen and dialog works."""

    def hostile(node: Any) -> Any:
        if isinstance(node, str):
            return value
        if isinstance(node, dict):
            return {k: hostile(v) for k, v in node.items()}
        if isinstance(node, list):
            return [hostile(v) for v in node]
        return node

    snapshot = hostile(copy.deepcopy(STATUS))
    source = FixedSource(snapshot)
    app = LinesideApp(source, gateway_name="")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        text = await visit_every_screen(app, pilot)
        # An operator name is outside text too: typed, sent, and echoed in a notification.
        await pilot.press("2", "a", *"[b]Ann[/b]", "enter")
        await wait_for(lambda: bool(source.commands))
        await pilot.pause()
        assert "Acknowledged by [b]Ann[/b]." in screen_text(app)
        no_control_characters_or_links(app)
        assert app.is_running
    assert app.return_code in (0, None)
    if value == "R42 [rework]":
        assert "R42 [rework]" in text
