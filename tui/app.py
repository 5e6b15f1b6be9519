"""``lineside tui``: the operator terminal UI, a separate process beside the gateway.

It polls the gateway's control socket once a second (:mod:`tui.client` says why the socket
and not the store) and draws the latest snapshot on the current screen. When the gateway
does not answer, the banner says so and what to check, the last data stays on screen
marked stale, and the next poll a second later tries again: the TUI neither crashes nor
needs restarting when the gateway restarts. The gateway never waits for a TUI.

Keys (shown in the key bar): ``1`` lines, ``2`` alerts, ``3`` system, ``Enter`` opens a
line, ``Esc`` goes back, ``a`` acknowledges and ``s`` shelves the highlighted alert,
``q`` quits. Everything works without a mouse.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import Worker

from gateway.status import SNAPSHOT_VERSION
from tui.client import ConnectionState, GatewayLink, GatewayUnavailable, StatusSource
from tui.screens import AlertsScreen, LinesScreen, StatusScreen, SystemScreen

POLL_INTERVAL_S = 1.0
"""The issue asks for a refresh at least once a second; also the retry interval."""

CSS = """
#banner {
    background: $error;
    color: $text;
    text-style: bold;
    padding: 0 1;
    display: none;
}
.title { text-style: bold; padding: 0 1; }
.note { padding: 0 1; color: $text-muted; }
.panel { padding: 0 1; margin-bottom: 1; }
DataTable { height: auto; max-height: 60%; }
#alert-detail { border-top: solid $primary; }
OperatorDialog { align: center middle; }
#dialog {
    width: 70;
    max-width: 100%;
    height: auto;
    border: thick $primary;
    background: $surface;
    padding: 0 1;
}
#dialog-error { height: auto; }
#dialog-buttons { height: auto; align-horizontal: right; }
#dialog-buttons Button { margin-left: 1; }
"""


class LinesideApp(App[None]):
    """The operator UI for one gateway."""

    TITLE = "Lineside"
    CSS = CSS
    MODES: ClassVar[dict[str, Any]] = {
        "lines": LinesScreen,
        "alerts": AlertsScreen,
        "system": SystemScreen,
    }
    DEFAULT_MODE = "lines"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('lines')", "Lines", show=True),
        Binding("2", "switch_mode('alerts')", "Alerts", show=True),
        Binding("3", "switch_mode('system')", "System", show=True),
        Binding("q", "quit", "Quit", show=True),
        # On a terminal in raw mode Ctrl-C is a key, not a signal: it quits as people expect.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        source: StatusSource,
        *,
        operator: str = "",
        gateway_name: str = "",
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.source = source
        self.operator = operator
        self.gateway_name = gateway_name
        self.poll_interval_s = poll_interval_s
        self.snapshot: dict[str, Any] | None = None
        self.state = ConnectionState.CONNECTING
        self.problem: str | None = f"Connecting to the gateway at {source.address} ..."
        self.last_update: datetime | None = None
        self.polls = 0
        self.stop_on_signals = False
        """Whether SIGTERM and SIGHUP end the app (set when it owns the process)."""

    def on_mount(self) -> None:
        """Poll now, then once a second."""
        if self.stop_on_signals:
            # systemd stopping the console unit (SIGTERM) ends the TUI as `q` does.
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, self.exit)
            loop.add_signal_handler(signal.SIGHUP, _hung_up)
        self.title = f"Lineside {self.gateway_name}".strip()
        self._update_subtitle()
        self.poll()
        self.set_interval(self.poll_interval_s, self.poll)

    async def on_unmount(self) -> None:
        """Close the connection to the gateway."""
        await self.source.close()

    # ------------------------------------------------------------------ polling

    def poll(self) -> None:
        """Fetch a snapshot in the background (one at a time; a slow answer is not doubled)."""
        self.run_worker(self._fetch(), group="poll", exclusive=True, exit_on_error=False)

    async def _fetch(self) -> None:
        try:
            snapshot = await self.source.status()
        except GatewayUnavailable as exc:
            self._lost(str(exc))
        else:
            if snapshot.get("version") != SNAPSHOT_VERSION:
                self._lost(
                    f"it sends status version {snapshot.get('version')}, this TUI reads version "
                    f"{SNAPSHOT_VERSION}; install the same Lineside release for both"
                )
            else:
                self.snapshot = snapshot
                self.state = ConnectionState.UP
                self.problem = None
                self.last_update = datetime.now(UTC)
                gateway = snapshot["gateway"]
                self.title = f"Lineside {self.gateway_name or gateway['id']}"
        self.polls += 1
        self._update_subtitle()
        self.redraw()

    def _lost(self, reason: str) -> None:
        self.state = ConnectionState.DOWN
        stale = ""
        if self.snapshot is not None and self.last_update is not None:
            stale = f" Showing data from {self.last_update.astimezone():%H:%M:%S} (stale)."
        self.problem = (
            f"✗ Gateway not answering at {self.source.address}: {reason}. Retrying every "
            f"{self.poll_interval_s:g} s.{stale} Check `systemctl status lineside-gateway`."
        )

    def _update_subtitle(self) -> None:
        symbol = {"connected": "●", "no gateway": "✗", "connecting": "…"}[str(self.state)]
        self.sub_title = f"{symbol} {self.state}"

    def redraw(self) -> None:
        """Draw the current screen from the latest snapshot."""
        screen = self.screen
        if isinstance(screen, StatusScreen) and screen.is_mounted:
            screen.show(self.snapshot, self.problem)

    # ------------------------------------------------------------------ commands

    def send_operator_command(self, request: dict[str, Any] | None) -> None:
        """Send an acknowledge or shelve request from the dialog (None: cancelled)."""
        if request is None:
            return
        self.run_worker(self._send(request), group="command", exit_on_error=False)

    async def _send(self, request: dict[str, Any]) -> None:
        try:
            answer = await self.source.command(request)
        except GatewayUnavailable as exc:
            self.notify(f"Not sent: {exc}", severity="error", timeout=8)
            return
        if answer.get("ok"):
            verb = "Acknowledged" if request["command"] == "acknowledge" else "Shelved"
            self.notify(f"{verb} by {request['operator']}.", timeout=4)
            if request.get("operator"):
                self.operator = str(request["operator"])  # offered again next time
        else:
            self.notify(f"Refused: {answer.get('error')}", severity="error", timeout=8)
        self.poll()  # show the new state now, not at the next tick

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failure while drawing is shown in the banner; the next poll carries on."""
        if event.worker.error is not None:
            self.problem = f"✗ Display error: {event.worker.error!r}. Retrying every second."
            screen = self.screen
            if isinstance(screen, StatusScreen) and screen.is_mounted:
                screen.show(None, self.problem)


def _hung_up() -> None:
    """The terminal has gone (SIGHUP): there is no screen to restore, and restoring it
    through Textual's writer thread can block on the dead terminal, so leave at once. The
    gateway is another process; the demo's back end stops when this process's end of its
    lifeline closes."""
    os._exit(128 + signal.SIGHUP)


def run_tui(socket_path: Path, *, operator: str = "", title: str = "") -> int:
    """Run the TUI against the gateway listening on ``socket_path``; the exit code.

    ``title`` names the gateway in the title bar; by default the gateway's own id.
    """
    app = LinesideApp(GatewayLink(socket_path), operator=operator, gateway_name=title)
    app.stop_on_signals = True
    app.run()
    return 0
