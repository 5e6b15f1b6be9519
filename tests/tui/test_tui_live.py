"""The TUI against a running gateway: the real simulators, the gateway on a temporary store,
a real mosquitto for the andon topic, and the TUI driven by Textual's pilot with the keys an
operator would press."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from gateway.api import AlertView
from gateway.config import load_config
from sync.protocol import andon_topic
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO
from tests.support.processes import end_group
from tests.support.sim_site import simulated_site
from tests.support.waiting import wait_for
from tui.app import LinesideApp
from tui.client import ConnectionState, GatewayLink
from tui.screens import AlertsScreen, LineScreen, LinesScreen, OperatorDialog, SystemScreen

SPEED = 20.0
"""The demo scenario plays 20 times faster than life: its label gap comes 12 s in."""


class AndonWatcher:
    """Subscribes to a line's andon topic and keeps every message with its arrival time."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="andon-watcher")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((time.monotonic(), json.loads(message.payload)))

    def after(self, moment: float) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for at, payload in self.messages if at >= moment]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def stored_transitions(db_path: Path, alert_id: str) -> list[tuple[str, dict[str, Any]]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT state, detail FROM alerts WHERE alert_id = ? ORDER BY seq", (alert_id,)
        ).fetchall()
    finally:
        db.close()
    return [(state, json.loads(detail)) for state, detail in rows]


def active(app: LinesideApp, rule: str) -> AlertView | None:
    if app.snapshot is None:
        return None
    return next((a for a in app.snapshot["alerts"]["active"] if a["rule"] == rule), None)


def selected_alert(screen: AlertsScreen) -> AlertView:
    alert = screen.selected()
    assert alert is not None, "an alert is highlighted"
    return alert


def current_screen(app: LinesideApp) -> Screen[object]:
    """``app.screen`` read afresh: mypy keeps an ``isinstance`` narrowing of ``app.screen``
    across the key presses that change it."""
    return app.screen


async def test_an_operator_acknowledges_an_alert_with_the_keyboard(
    tmp_path: Path, broker: Mosquitto
) -> None:
    uplink = f'\n[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    watcher = AndonWatcher(broker, andon_topic("demo-site", "demo-gw1", "L1"))
    try:
        async with simulated_site(tmp_path, speed=SPEED, extra_config=uplink) as handle:
            site = await handle.site()
            app = LinesideApp(GatewayLink(site.config.control_socket_path), gateway_name="gw")
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for(lambda: active(app, "label_gap") is not None, timeout=60)
                gap = active(app, "label_gap")
                assert gap is not None
                assert not gap["acknowledged"]

                await pilot.press("2")
                assert isinstance(app.screen, AlertsScreen)
                await wait_for(lambda: app.screen.query_one(DataTable).row_count > 0)
                table = app.screen.query_one(DataTable)
                while selected_alert(app.screen)["id"] != gap["id"]:
                    before = table.cursor_row
                    await pilot.press("down")
                    assert table.cursor_row != before, "the alert is in the table"

                await pilot.press("a")
                assert isinstance(app.screen, OperatorDialog)
                assert app.screen.focused is app.screen.query_one("#operator", Input)
                await pilot.press("enter")  # no name yet: refused, nothing sent
                assert isinstance(app.screen, OperatorDialog)
                assert "required" in str(app.screen.query_one("#dialog-error", Static).content)
                # Short words: each key waits (up to 2 s) for this busy process to go idle.
                await pilot.press(*"Ann", "tab", *"done")
                pressed = time.monotonic()
                await pilot.press("enter")
                assert isinstance(app.screen, AlertsScreen)

                def acknowledged_on_the_andon() -> bool:
                    return any(
                        all(a["id"] != gap["id"] for a in msg.get("alerts", []))
                        for msg in watcher.after(pressed)
                    )

                await wait_for(acknowledged_on_the_andon, timeout=5)
                first = min(at for at, _ in watcher.messages if at >= pressed)
                assert first - pressed < 1.0, "the andon hears of it within a second"

                async def in_store() -> bool:
                    return any(
                        state == "acknowledged"
                        for state, _ in stored_transitions(site.db_path, gap["id"])
                    )

                await wait_for(in_store, timeout=5)
                await wait_for(
                    lambda: any(
                        a["id"] == gap["id"] and a["acknowledged_by"] == "Ann"
                        for a in app.snapshot["alerts"]["recent"]  # type: ignore[index]
                    ),
                    timeout=5,
                )
    finally:
        watcher.close()
    transitions = stored_transitions(site.db_path, gap["id"])
    states = [state for state, _ in transitions]
    assert states[0] == "raised"
    assert "acknowledged" in states
    assert states[-1] == "cleared", "a latched gap clears when acknowledged"
    detail = next(d for s, d in transitions if s == "acknowledged")
    assert detail["operator"] == "Ann"
    assert detail["comment"] == "done"


async def test_the_tui_waits_for_the_gateway_then_picks_it_up(tmp_path: Path) -> None:
    async with simulated_site(tmp_path, speed=SPEED, start_gateway=False) as handle:
        socket_path = load_config(handle.config_path).control_socket_path
        app = LinesideApp(GatewayLink(socket_path), poll_interval_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            banner = app.screen.query_one("#banner", Static)
            await wait_for(lambda: app.state is ConnectionState.DOWN and app.polls >= 3)
            assert banner.display
            assert "not answering" in str(banner.content)
            assert "Retrying" in str(banner.content)
            assert app.snapshot is None
            assert isinstance(app.screen, LinesScreen), "no crash: still on the lines screen"

            handle.start()
            await handle.site()
            await wait_for(lambda: app.state is ConnectionState.UP, timeout=15)
            lines = app.screen.query_one("#lines", DataTable)
            await wait_for(lambda: lines.row_count == 2, timeout=5)
            assert not app.screen.query_one("#banner", Static).display
            assert "connected" in app.sub_title

            # Keyboard navigation through every screen.
            await pilot.press("enter")
            assert isinstance(app.screen, LineScreen)
            assert app.screen.line == "L1"
            await wait_for(
                lambda: "Run " in str(app.screen.query_one("#run", Static).content), timeout=5
            )
            await pilot.press("n")
            assert app.screen.line == "L2"
            await pilot.press("escape")
            assert isinstance(current_screen(app), LinesScreen)
            await pilot.press("3")
            assert isinstance(current_screen(app), SystemScreen)
            devices = app.screen.query_one("#devices", DataTable)
            await wait_for(lambda: devices.row_count == 4, timeout=5)
            await pilot.press("2")
            assert isinstance(current_screen(app), AlertsScreen)
            await pilot.press("1")
            assert isinstance(current_screen(app), LinesScreen)

            # The gateway stops: the TUI says so, keeps the last data, and keeps trying.
            handle.stop.set()
            assert handle.task is not None
            await handle.task
            await wait_for(lambda: app.state is ConnectionState.DOWN, timeout=10)
            assert "stale" in str(app.screen.query_one("#banner", Static).content)
            assert app.snapshot is not None


@contextlib.contextmanager
def gateway_in_its_own_group(config_path: Path, log_path: Path) -> Iterator[int]:
    """``lineside run`` as a child in a process group of its own (so that it, and only it,
    can be stopped and ended as a group); yields the group id. Its log goes to a file: a
    full pipe would stall it and make it look hung."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc.pid
    finally:
        end_group(proc)


def andons(app: LinesideApp) -> list[str]:
    table = app.screen.query_one("#lines", DataTable)
    return [str(table.get_row_at(row)[1]) for row in range(table.row_count)]


async def test_a_hung_gateway_is_shown_not_answering_and_stale_then_recovers(
    tmp_path: Path,
) -> None:
    """The demo's back end stopped with SIGSTOP once showed "● connected", GREEN and old
    figures for as long as it was stopped: each poll was cancelled by the next before its
    timeout could say the gateway was lost."""
    async with simulated_site(tmp_path, speed=SPEED, start_gateway=False) as handle:
        socket_path = load_config(handle.config_path).control_socket_path
        with gateway_in_its_own_group(handle.config_path, tmp_path / "gateway.log") as group:
            app = LinesideApp(GatewayLink(socket_path))
            async with app.run_test(size=(80, 24)):
                await wait_for(lambda: app.state is ConnectionState.UP, timeout=60)
                await wait_for(lambda: len(andons(app)) == 2, timeout=5)
                assert not any("STALE" in andon for andon in andons(app))
                polls = app.polls
                await wait_for(lambda: app.polls > polls, timeout=5)  # just answered

                os.killpg(group, signal.SIGSTOP)
                await wait_for(
                    lambda: app.state is ConnectionState.DOWN,
                    timeout=3,
                    what="the TUI to call a stopped gateway not answering within 3 s",
                )
                await wait_for(lambda: all(a == "? STALE" for a in andons(app)), timeout=0.5)
                assert "not answering" in app.sub_title
                banner = app.screen.query_one("#banner", Static)
                assert banner.display
                assert "not answering" in str(banner.content)
                assert "stale" in str(banner.content)
                title = app.screen.query_one("#title", Static)
                assert "? STALE" in str(title.content)

                os.killpg(group, signal.SIGCONT)
                await wait_for(lambda: app.state is ConnectionState.UP, timeout=10)
                await wait_for(lambda: not any("STALE" in a for a in andons(app)), timeout=2)
                assert "connected" in app.sub_title
                assert not app.screen.query_one("#banner", Static).display
                assert "STALE" not in str(app.screen.query_one("#title", Static).content)
