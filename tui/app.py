"""``lineside tui``: the operator terminal UI, a separate process beside the gateway.

It polls the gateway's control socket once a second (:mod:`tui.client` says why the socket
and not the store) and draws the latest snapshot on the current screen. When the gateway
does not answer, the banner says so and what to check, the last data stays on screen
marked stale, and the next poll a second later tries again: the TUI neither crashes nor
needs restarting when the gateway restarts. The gateway never waits for a TUI.

Polling: one request at a time, never cancelled by the next tick (a tick that finds one
still out only redraws the ages). Each request has its own deadline: an answer not in
within :data:`ANSWER_DUE_S` makes the gateway "not answering" and every figure stale at
once, while the request may still wait for a slow answer up to the client's hard timeout.
A hung gateway (stopped, deadlocked) therefore shows as not answering within about two
seconds, and comes back as connected with its next answer.

Keys (shown in the key bar): ``1`` lines (from a line's detail too), ``2`` alerts, ``3``
system, ``Enter`` opens a line, ``Esc`` goes back (to the lines list from the alerts and
system screens), ``a`` acknowledges and ``s`` shelves the highlighted alert, ``q`` quits.
Everything works without a mouse.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ModeError, ScreenError
from textual.binding import Binding, BindingType
from textual.worker import Worker, WorkerState

from gateway.api import (
    SNAPSHOT_VERSION,
    Acknowledge,
    GatewayUnavailable,
    OperatorRequest,
    StatusSnapshot,
)
from tui import render
from tui.client import ConnectionState, GatewayLink, StatusSource
from tui.screens import AlertsScreen, LinesScreen, StatusScreen, SystemScreen

POLL_INTERVAL_S = 1.0
"""The issue asks for a refresh at least once a second; also the retry interval."""

ANSWER_DUE_S = 1.0
"""A status answer takes milliseconds (the gateway builds one snapshot for every viewer and
gives the store at most half a second). One not in within this long is late: the screen
says the gateway is not answering and marks its figures stale, so that together with the
poll interval a hung gateway shows within two seconds of its answer being due."""

CSS = """
#scroll-hint {
    background: $primary;
    color: $text;
    padding: 0 1;
    display: none;
}
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
        Binding("1", "lines", "Lines", show=True),
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
        answer_due_s: float = ANSWER_DUE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.source = source
        self.operator = render.clean(operator, 80)
        self.gateway_name = render.clean(gateway_name, 80)
        self.poll_interval_s = poll_interval_s
        self.answer_due_s = answer_due_s
        self.clock = clock
        """Seconds on a steady clock, for how long the gateway has not answered (tests
        pass their own, so what is drawn does not depend on when the test runs)."""
        self.snapshot: StatusSnapshot | None = None
        self.state = ConnectionState.CONNECTING
        self.reason = ""
        """Why the gateway is not answering, for the banner."""
        self.answered_at: float | None = None
        """:attr:`clock` time of the last good answer."""
        self.polls = 0
        """Requests finished (answered or failed), for tests to wait on."""
        self._request: Worker[None] | None = None
        self._drawn_stale_s: float | None = None
        """The gateway's silence, in seconds, on the screen as last drawn."""
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
        """Fetch a snapshot in the background, unless a request is still out: that one is
        left to finish (cancelling it would lose the very answer that shows the gateway is
        back) and the screen is redrawn so the stale ages keep counting."""
        if self._request is not None and not self._request.is_finished:
            # Only when the age has moved: a table redrawn with nothing new flickers through
            # its header-wide columns until the next idle measures them again.
            if self.state is not ConnectionState.UP and self.stale_s != self._drawn_stale_s:
                self.redraw()
            return
        # The coroutine function, not a coroutine: a worker cancelled before it starts (the
        # app closing) then leaves no never-awaited coroutine behind.
        self._request = self.run_worker(self._fetch, group="poll", exit_on_error=False)

    async def _fetch(self) -> None:
        request = asyncio.ensure_future(self.source.status())
        try:
            # The answer is due within ANSWER_DUE_S; past that the gateway is called not
            # answering now, and the request goes on waiting (up to the client's timeout).
            done, _ = await asyncio.wait({request}, timeout=self.answer_due_s)
            if not done:
                self._lost(f"no answer within {self.answer_due_s:g} s")
                self._update_subtitle()
                self.redraw()
            snapshot = await request
        except GatewayUnavailable as exc:
            # Given up after the client's timeout: it was already late, and saying so again
            # with another number of seconds would only make the banner flicker.
            gave_up = isinstance(exc.__cause__, TimeoutError) and self.reason
            self._lost(self.reason if gave_up else str(exc))
        else:
            if snapshot.get("version") != SNAPSHOT_VERSION:
                self._lost(
                    f"it sends status version {render.clean(snapshot.get('version'), 20)}, "
                    f"this TUI reads version {SNAPSHOT_VERSION}; install the same Lineside "
                    "release for both"
                )
            else:
                # Cleaned once here, so no screen can show a control character from outside.
                self.snapshot = render.sanitized(snapshot)
                self.state = ConnectionState.UP
                self.reason = ""
                self.answered_at = self.clock()
                gateway = self.snapshot["gateway"]
                self.title = f"Lineside {self.gateway_name or gateway['id']}"
        finally:
            if not request.done():
                request.cancel()  # the app is closing: the client drops the half-done request
        self.polls += 1
        self._update_subtitle()
        self.redraw()

    def _lost(self, reason: str) -> None:
        self.state = ConnectionState.DOWN
        self.reason = reason

    @property
    def stale_s(self) -> float | None:
        """How long since the gateway last answered, while it is not answering (the data on
        screen is that old); None while it answers, or before it ever has."""
        if self.state is ConnectionState.UP or self.answered_at is None:
            return None
        return max(self.clock() - self.answered_at, 0.0)

    @property
    def problem(self) -> str | None:
        """The banner: what is wrong with the connection and what to do (None: nothing)."""
        if self.state is ConnectionState.UP:
            return None
        if self.state is ConnectionState.CONNECTING:
            return f"Connecting to the gateway at {self.source.address} ..."
        stale = self.stale_s
        shown = "" if stale is None else f" Showing data from {render.age(stale)} ago (stale)."
        return (
            f"✗ Gateway not answering at {self.source.address}: {self.reason}. Retrying every "
            f"{self.poll_interval_s:g} s.{shown} Check `systemctl status lineside-gateway`."
        )

    def _update_subtitle(self) -> None:
        symbol = {
            ConnectionState.UP: "●",
            ConnectionState.DOWN: "✗",
            ConnectionState.CONNECTING: "…",
        }[self.state]
        self.sub_title = f"{symbol} {self.state}"

    def redraw(self) -> None:
        """Draw the current screen from the latest snapshot."""
        screen = self._shown_screen()
        if isinstance(screen, StatusScreen) and screen.is_mounted:
            self._drawn_stale_s = self.stale_s
            screen.show(self.snapshot, self.problem, self._drawn_stale_s)

    def _shown_screen(self) -> object:
        """The screen on show, or None while the app is closing: a poll answered late, or a
        worker failing then, finds the screens already gone, and ``self.screen`` would raise
        ScreenStackError out of the closing app."""
        try:
            return self.screen
        except (ScreenError, ModeError):
            return None

    async def action_lines(self) -> None:
        """``1``: the lines list, from anywhere; from a line's detail too, whose key bar
        calls it "Lines" (switching to the lines mode alone would show that detail again)."""
        await self.switch_mode("lines")
        while len(self.screen_stack) > 1:
            await self.pop_screen()

    # ------------------------------------------------------------------ commands

    def send_operator_command(self, request: OperatorRequest | None) -> None:
        """Send an acknowledge or shelve request from the dialog (None: cancelled)."""
        if request is None:
            return

        async def send() -> None:  # called only if the worker starts, as for polls
            await self._send(request)

        # Annotated so mypy infers the worker's result type from the function.
        _: Worker[None] = self.run_worker(send, group="command", exit_on_error=False)

    async def _send(self, request: OperatorRequest) -> None:
        # Notifications are markup by default: the operator's name and the gateway's words are
        # not, so they are cleaned and shown literally.
        try:
            answer = await self.source.command(request.wire())
        except GatewayUnavailable as exc:
            self.notify(f"Not sent: {render.clean(exc)}", severity="error", timeout=8, markup=False)
            return
        if answer.get("ok"):
            verb = "Acknowledged" if isinstance(request, Acknowledge) else "Shelved"
            operator = render.clean(request.operator, 80)
            self.notify(f"{verb} by {operator}.", timeout=4, markup=False)
            if operator:
                self.operator = operator  # offered again next time
        else:
            error = render.clean(answer.get("error"))
            self.notify(f"Refused: {error}", severity="error", timeout=8, markup=False)
        self.poll()  # show the new state now, not at the next tick

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failure while drawing is shown in the banner; the next poll carries on. A
        cancelled worker (the app closing) is no failure and is not shown."""
        error = event.worker.error
        if event.state is not WorkerState.ERROR or error is None:
            return
        if isinstance(error, asyncio.CancelledError):
            return
        screen = self._shown_screen()
        if isinstance(screen, StatusScreen) and screen.is_mounted:
            problem = f"✗ Display error: {render.clean(repr(error))}. Retrying every second."
            screen.show(None, problem, self.stale_s)


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
