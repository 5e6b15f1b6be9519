"""The operator screens: lines, one line in detail, alerts, and the system.

Each screen draws from the latest gateway snapshot (:mod:`gateway.status` has its shape) in
:meth:`StatusScreen.show`, which the app calls after every poll and when the screen comes
back into view. Ages are computed against the snapshot's own clock (``gateway.now_us``)
plus, while the gateway is not answering, how long ago its last answer came (the app's
``stale_s``), so what is drawn depends on the snapshot and that one number alone.

While the figures are stale every screen says so after its title, every andon reads
``? STALE``, every device state ``? was up``, and every probe reading shows its age. Text
from outside is always given to widgets as :class:`~rich.text.Text` (see :mod:`tui.render`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from tui import render

WIDE = 110
"""From this many columns the lines table also shows the product and the line mode."""

DETAIL_ALERTS = 5
"""Alerts listed on a line's detail, most urgent first: a flood of them must not push the
weights and probes out of sight (the alerts screen lists them all)."""


class Host(Protocol):
    """What the screens need from the app (:class:`tui.app.LinesideApp`)."""

    snapshot: dict[str, Any] | None
    operator: str

    def redraw(self) -> None:
        """Draw the current screen from the latest snapshot."""

    def send_operator_command(self, request: dict[str, Any] | None) -> None:
        """Send an acknowledge/shelve request from a dialog (None: cancelled)."""


def host(screen: Screen[Any]) -> Host:
    """The Lineside app behind a screen."""
    return cast(Host, screen.app)


def _us_age(snapshot: dict[str, Any], ts_us: int | None, stale_s: float | None = None) -> str:
    if ts_us is None:
        return "-"
    return render.age((int(snapshot["gateway"]["now_us"]) - int(ts_us)) / 1e6 + (stale_s or 0))


def _plus(seconds: float | None, stale_s: float | None) -> float | None:
    """An age from the snapshot, grown by the time the gateway has not answered."""
    return None if seconds is None else seconds + (stale_s or 0)


def _unique(items: list[dict[str, Any]], key: str = "id") -> list[dict[str, Any]]:
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
        self, snapshot: dict[str, Any] | None, problem: str | None, stale_s: float | None = None
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

    def draw(self, snapshot: dict[str, Any]) -> None:
        """Draw the screen's part of the snapshot (each screen draws its own part)."""


# ------------------------------------------------------------------------------ lines


class LinesScreen(StatusScreen):
    """One row per line: run, product, packs, weight, giveaway, ℮, temperature, labels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: the table's own Enter would otherwise hide this from the key bar
        Binding("enter", "open_line", "Line detail", show=True, priority=True),
    ]

    def compose(self) -> ComposeResult:
        yield from self.compose_banner()
        yield Static("Lines", classes="title", id="title")
        yield DataTable(id="lines", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lines-note", classes="note")
        yield Footer()

    def draw(self, snapshot: dict[str, Any]) -> None:
        table = self.query_one("#lines", DataTable)
        wide = self.size.width >= WIDE
        columns = ["Line", "Andon", "Run", "Packs", "Mean", "GA %", "T1/T2", "Temp", "Labels"]
        if wide:
            columns[3:3] = ["Product"]
            columns.append("Mode")
        selected = table.cursor_row
        # Columns afresh each time: a column only ever widens to its widest cell, and one
        # widened by a stale age or a long run number would push the rest off the screen.
        table.clear(columns=True)
        table.add_columns(*columns)
        stale = self.stale_s is not None
        self.query_one("#title", Static).update(
            Text.assemble("Lines", render.stale_note(self.stale_s))
        )
        lines = _unique(snapshot["lines"])
        for line in lines:
            run = line.get("run") or {}
            cells: list[Text] = [
                render.plain(line["id"], 12),
                render.line_andon(snapshot, line, stale),
                # Cut so a long run number cannot push the figures off an 80-column
                # screen; the line's detail shows it whole.
                render.plain(run.get("run_number") if run else "no run", 24 if wide else 16),
                Text(str(line["packs"])),
                Text(render.grams(line.get("mean_g"))),
                Text(render.percent(line.get("giveaway_pct"))),
                render.emark_counts(line),
                render.worst_probe(line, self.stale_s),
                render.label_status(line.get("labels") or {}),
            ]
            if wide:
                cells[3:3] = [render.plain(render.run_product(line), 28)]
                cells.append(render.plain(line.get("mode", ""), 12))
            # The andon badge keeps its contrast: "? STALE" is the marker, not a figure.
            andon = cells[1]
            cells = [cell if cell is andon else render.faded(cell, stale) for cell in cells]
            table.add_row(*cells, key=line["id"])
        if lines:
            table.move_cursor(row=min(max(selected, 0), len(lines) - 1))
        active = snapshot["alerts"]["active"]
        unacked = sum(1 for a in active if not a["acknowledged"])
        self.query_one("#lines-note", Static).update(
            Text.assemble(
                (f"{len(active)} active alert(s), {unacked} not acknowledged", "bold")
                if active
                else ("no active alerts", "green"),
                "   GA = giveaway over Qn; T1/T2 = packs below T1/T2 in the open ℮ batch",
                "; ? = a reading too old to be current" if self._any_old(lines) else "",
            )
        )

    def _any_old(self, lines: list[dict[str, Any]]) -> bool:
        return any(
            line.get("worst_probe") and render.probe_age(line["worst_probe"], self.stale_s)
            for line in lines
        )

    def action_open_line(self) -> None:
        """Open the highlighted line's detail."""
        table = self.query_one("#lines", DataTable)
        if table.row_count == 0:
            return
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        if row_key.value is not None:
            self.app.push_screen(LineScreen(row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a row opens that line."""
        if event.row_key.value is not None:
            self.app.push_screen(LineScreen(event.row_key.value))


# ------------------------------------------------------------------------------ one line


class LineScreen(StatusScreen):
    """One line: the run, live weights against Qn/T1/T2, giveaway, probes, labels, alerts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", show=True),
        Binding("n", "step(1)", "Next line", show=True),
        Binding("p", "step(-1)", "Prev line", show=True),
    ]
    # `1` (the app's) also goes back to the lines list: it is labelled "Lines".

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def compose(self) -> ComposeResult:
        yield from self.compose_banner()
        with VerticalScroll(id="detail"):
            yield Static("", id="run", classes="panel")
            yield Static("", id="line-alerts", classes="panel")
            yield Static("", id="weights", classes="panel")
            yield Static("", id="probes", classes="panel")
            yield Static("", id="labels", classes="panel")
        yield Static("", id="scroll-hint")
        yield Footer()

    def on_mount(self) -> None:
        """Keep the scroll hint true as the operator scrolls."""
        self.watch(self.query_one("#detail", VerticalScroll), "scroll_y", self._scroll_hint)

    def on_resize(self) -> None:
        """A taller or shorter terminal changes whether there is more to scroll to."""
        self.call_after_refresh(self._scroll_hint)

    def _scroll_hint(self, _scroll_y: float | None = None) -> None:
        """Say when the detail is taller than the terminal: at 80×24 the probes and labels
        are below the fold, and nothing else would show they are there."""
        detail = self.query_one("#detail", VerticalScroll)
        hint = self.query_one("#scroll-hint", Static)
        below = detail.scroll_y < detail.max_scroll_y
        above = detail.scroll_y > 0
        if below:
            words = "▼ more below: ↓ / PgDn scrolls" + (", ↑ / PgUp back" if above else "")
        elif above:
            words = "▲ more above: ↑ / PgUp / Home scrolls back"
        else:
            words = ""
        hint.update(Text(words, style="bold"))
        hint.display = bool(words)

    def action_step(self, delta: int) -> None:
        """Show the next or previous line."""
        snapshot = host(self).snapshot
        if not snapshot:
            return
        ids = [line["id"] for line in snapshot["lines"]]
        if self.line in ids:
            self.line = ids[(ids.index(self.line) + delta) % len(ids)]
            self.draw(snapshot)

    def draw(self, snapshot: dict[str, Any]) -> None:
        line = next((x for x in snapshot["lines"] if x["id"] == self.line), None)
        if line is None:
            self.query_one("#run", Static).update(
                Text(f"Line {render.clean(self.line)} is not configured.")
            )
            return
        width = max(self.size.width - 6, 20)
        stale_s = self.stale_s
        self.query_one("#run", Static).update(self._run(snapshot, line, stale_s))
        self.query_one("#weights", Static).update(self._weights(snapshot, line, width, stale_s))
        self.query_one("#probes", Static).update(self._probes(line, stale_s))
        self.query_one("#labels", Static).update(self._labels(line))
        self.query_one("#line-alerts", Static).update(self._alerts(snapshot, line, stale_s))
        self.call_after_refresh(self._scroll_hint)

    @staticmethod
    def _run(snapshot: dict[str, Any], line: dict[str, Any], stale_s: float | None) -> Text:
        text = Text.assemble(
            (f"{line['id']} {line.get('name', '')}", "bold"),
            "  ",
            render.line_andon(snapshot, line, stale_s is not None),
        )
        text.append(f"  mode {line.get('mode', '-')}")
        text.append("\nDevices  ", "bold")
        devices = render.line_devices(snapshot, line["id"])
        if stale_s is not None:
            text.append("unknown while the gateway is not answering", "yellow")
        elif not devices:
            text.append("none configured on this line: no readings", "yellow")
        for n, device in enumerate(devices if stale_s is None else []):
            text.append(f"{'  ' if n else ''}{device['id']} ")
            text.append_text(render.link(device.get("state")))
        text.append("\n")
        run = line.get("run")
        if not run:
            text.append("No run active on this line (packs are stored without a run).", "yellow")
            return text
        provisional = "  (PROVISIONAL: ERP unreachable)" if run.get("provisional") else ""
        text.append(f"Run {run['run_number']} {run['status']}{provisional}\n", "bold")
        text.append(f"{run.get('description') or ''}\n")
        text.append(
            f"Batch {', '.join(run.get('batch_codes') or []) or '-'}   "
            f"species {run.get('species') or '-'}   packed {run.get('pack_date') or '-'}   "
            f"use by {run.get('use_by') or '-'}\n"
        )
        for product in run.get("products") or []:
            qn = (
                "catch weight"
                if product.get("catch_weight")
                else (f"{render.grams(product.get('nominal_g'), 0)} g")
            )
            text.append(
                f"  {product.get('plu')}  {product.get('description') or ''}  {qn}"
                f"  {product.get('tier') or ''}\n"
            )
        text.rstrip()
        return text

    @staticmethod
    def _weights(
        snapshot: dict[str, Any], line: dict[str, Any], width: int, stale_s: float | None
    ) -> Text:
        emark = line.get("emark") or {}
        packs = line.get("recent_packs") or []
        weights = [p["net_g"] for p in packs]
        text = Text.assemble(
            ("Weights", "bold"),
            f"  packs {line['packs']}  mean {render.grams(line.get('mean_g'))} g"
            f"  giveaway {render.percent(line.get('giveaway_pct'))} %",
        )
        if packs:
            # Packs come when product flows, not on a clock: their age is shown, not judged.
            text.append(f"  last pack {_us_age(snapshot, packs[-1].get('ts_us'), stale_s)} ago")
        text.append("\n")
        text.append(
            f"Qn {render.grams(emark.get('qn_g'))} g   T1 {render.grams(emark.get('t1_g'))} g"
            f"   T2 {render.grams(emark.get('t2_g'))} g   ℮ batch {emark.get('batch_packs', 0)}"
            " packs, below T1/T2 "
        )
        text.append_text(render.emark_counts(line))
        text.append("\n")
        if not weights:
            text.append("no packs weighed yet", "dim")
            return text
        bars, axis, scale = render.histogram(
            weights,
            qn=emark.get("qn_g"),
            t1=emark.get("t1_g"),
            t2=emark.get("t2_g"),
            width=min(width, 100),
        )
        text.append(f"{bars}\n", "cyan")
        text.append(f"{axis}\n", "bold")
        text.append(f"{scale}\n", "dim")
        text.append(f"(2 = T2, 1 = T1, Q = Qn; the last {len(weights)} packs)\n", "dim")
        text.append("last packs ")
        text.append(render.sparkline(weights, max(width - 11, 5)), "cyan")
        trend = line.get("giveaway_trend") or []
        if trend:
            text.append("\ngiveaway % ")
            text.append(render.sparkline(trend, max(width - 22, 5)), "magenta")
            text.append(f" now {render.percent(trend[-1])}")
        return text

    @staticmethod
    def _probes(line: dict[str, Any], stale_s: float | None) -> Text:
        text = Text.assemble(("Probes\n", "bold"))
        probes = line.get("probes") or []
        if not probes:
            text.append("no HACCP probes configured for this line", "dim")
            return text
        for probe in probes:
            name = render.clean(render.probe_name(probe), 24)
            old = render.probe_age(probe, stale_s)
            text.append(f"  {name:<20} {render.celsius(probe['celsius']):>7}")
            text.append(f" {render.age(old) + ' old' if old is not None else '':<7}", "yellow")
            text.append(f" limit {render.limits(probe['lower_c'], probe['upper_c']):<11} ")
            text.append_text(render.probe_state(probe, stale_s))
            if probe.get("faults"):
                text.append(f" ({', '.join(probe['faults'])})", "red")
            text.append("\n")
        text.rstrip()
        return text

    @staticmethod
    def _labels(line: dict[str, Any]) -> Text:
        labels = line.get("labels") or {}
        text = Text.assemble(("Labels  ", "bold"))
        text.append_text(render.label_status(labels))
        text.append(
            f"   last number {labels.get('last') if labels.get('last') is not None else '-'}"
            f"   read {labels.get('read', 0)}   duplicates {labels.get('duplicates', 0)}"
        )
        missing = labels.get("missing") or []
        if missing:
            count = labels.get("missing_count", len(missing))
            newest = "" if count <= len(missing) else f", the newest {len(missing)}"
            text.append(f"\n  missing {count}{newest}: {', '.join(str(n) for n in missing)}", "red")
        return text

    @staticmethod
    def _alerts(snapshot: dict[str, Any], line: dict[str, Any], stale_s: float | None) -> Text:
        text = Text.assemble(("Active alerts", "bold"), "   ")
        # The line's alarm load: alerts raised in the last ten minutes, FLOOD over ten.
        text.append_text(render.alarm_rate(line.get("alarm_load")))
        alerts = sorted(line.get("active_alerts") or [], key=render.alert_order)
        if not alerts:
            text.append("\n  none", "green")
            return text
        for alert in alerts[:DETAIL_ALERTS]:
            text.append("\n  ")
            text.append_text(render.styled(render.SEVERITY, alert["severity"]))
            text.append(" ")
            text.append_text(render.alert_ref(alert))
            ack = "acked" if alert["acknowledged"] else "NOT ACKED"
            age = _us_age(snapshot, alert["raised_us"], stale_s)
            count = render.occurrences(alert)
            text.append(f" {ack:<9} {age:>4}  ")
            if count:
                text.append(f"{count} ", "bold")
            text.append(render.alert_message(alert))
        if len(alerts) > DETAIL_ALERTS:
            text.append(f"\n  … and {len(alerts) - DETAIL_ALERTS} more", "bold")
        # What to do about the most urgent one (the first listed) that has an action.
        first = next((a for a in alerts if a.get("action")), None)
        if first is not None:
            text.append("\n  ")
            text.append_text(render.alert_ref(first))
            text.append(" ")
            text.append_text(render.alert_action(first))
        text.append("\n  (2: alerts screen, or lineside ack REF, to acknowledge)", "dim")
        return text


# ------------------------------------------------------------------------------ alerts


class AlertsScreen(StatusScreen):
    """Active and recent alerts; acknowledge and shelve the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "acknowledge", "Acknowledge", show=True),
        Binding("s", "shelve", "Shelve", show=True),
        Binding("escape", "app.lines", "Lines", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield from self.compose_banner()
        yield Static("Alerts: active first, then recent", classes="title", id="title")
        yield DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
        yield Static("", id="alert-detail", classes="panel")
        yield Footer()

    def _alerts(self) -> list[dict[str, Any]]:
        snapshot = host(self).snapshot
        if not snapshot:
            return []
        active = sorted(snapshot["alerts"]["active"], key=render.alert_order)
        return _unique(active + list(snapshot["alerts"]["recent"]))

    def selected(self) -> dict[str, Any] | None:
        """The highlighted alert, if any."""
        table = self.query_one("#alerts", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((a for a in self._alerts() if a["id"] == key), None)

    def draw(self, snapshot: dict[str, Any]) -> None:
        table = self.query_one("#alerts", DataTable)
        keep = self.selected()
        wide = self.size.width >= WIDE
        columns = ["Sev", "Ref", "State", "Line", "Age", "Message"]
        if wide:
            columns[4:4] = ["Rule"]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
        table.clear()
        stale = self.stale_s is not None
        alerts = self._alerts()
        active = snapshot["alerts"]["active"]
        unacked = sum(1 for a in active if not a.get("acknowledged"))
        load = snapshot["alerts"].get("load")
        # Counted, since in a flood the table shows only the first screenful.
        title = Text.assemble(
            f"Alerts: {len(active)} active ({unacked} unacked), "
            f"{len(snapshot['alerts']['recent'])} recent",
        )
        if render.flooding(load):
            title.append(f"  {int((load or {}).get('last_10_min') or 0)} raised in 10 min ")
            title.append_text(render.flood_badge(load))
        title.append_text(render.stale_note(self.stale_s))
        self.query_one("#title", Static).update(title)
        # The message fills what the other columns leave; the panel below shows it whole.
        message_width = max(self.size.width - (66 if wide else 46), 16)
        for alert in alerts:
            state = render.ALERT_STATE_SHORT.get(alert["state"], alert["state"])
            message = render.plain(render.alert_message(alert), message_width)
            count = render.occurrences(alert)
            if count:  # "×600 device … down": how often, before what
                message = Text.assemble((f"{count} ", "bold"), message)
                message.truncate(message_width, overflow="ellipsis")
            cells: list[Text] = [
                render.styled(render.SEVERITY, alert["severity"]),
                render.alert_ref(alert),
                render.plain(state, 12, style="bold" if not alert["acknowledged"] else "dim"),
                render.plain(alert.get("line") or "-", 8),
                Text(_us_age(snapshot, alert["raised_us"], self.stale_s)),
                message,
            ]
            if wide:
                cells[4:4] = [render.plain(alert["rule"], 20)]
            table.add_row(*(render.faded(cell, stale) for cell in cells), key=alert["id"])
        if keep is not None:
            ids = [a["id"] for a in alerts]
            if keep["id"] in ids:
                table.move_cursor(row=ids.index(keep["id"]))
        self._detail()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """Show the highlighted alert in full below the table."""
        self._detail()

    def _detail(self) -> None:
        alert = self.selected()
        panel = self.query_one("#alert-detail", Static)
        if alert is None:
            panel.update(Text("No alerts.", style="green"))
            return
        snapshot = host(self).snapshot
        text = Text.assemble(
            render.styled(render.SEVERITY, alert["severity"]),
            " ",
            render.alert_ref(alert),
            (f" {alert['rule']} [{alert['subject']}]\n", "bold"),  # Text: brackets are literal
            f"{render.alert_message(alert)}\n",
        )
        if alert.get("action"):
            text.append_text(render.alert_action(alert))
            text.append("\n")
        text.append(render.ALERT_STATE.get(alert["state"], alert["state"]))
        count = render.occurrences(alert)
        if count and snapshot is not None:
            first = _us_age(snapshot, alert.get("first_us"), self.stale_s)
            last = _us_age(snapshot, alert.get("last_us"), self.stale_s)
            text.append(f"   {count} (first {first} ago, last {last} ago)", "bold")
        if alert.get("ref"):
            text.append(f"   lineside ack {alert['ref']}", "dim")
        if alert["acknowledged_by"]:
            text.append(f"\nacknowledged by {alert['acknowledged_by']}")
            if alert.get("comment"):
                text.append(f": {alert['comment']}")
        if alert.get("shelved_until_us") and snapshot is not None:
            remaining = (alert["shelved_until_us"] - snapshot["gateway"]["now_us"]) / 1e6
            text.append(f"   shelved for {render.age(remaining - (self.stale_s or 0))} more")
        panel.update(text)

    def action_acknowledge(self) -> None:
        """Ask for the operator's name and a comment, then acknowledge the alert."""
        alert = self.selected()
        if alert is None:
            self.notify("No alert selected.", severity="warning")
            return
        if alert["acknowledged"]:
            self.notify("This alert is already acknowledged.", severity="information")
            return
        self.app.push_screen(
            OperatorDialog(alert, operator=host(self).operator, shelve=False),
            host(self).send_operator_command,
        )

    def action_shelve(self) -> None:
        """Ask for the operator's name, minutes and a reason, then shelve the alert."""
        alert = self.selected()
        if alert is None or not alert["active"]:
            self.notify("Only an active alert can be shelved.", severity="warning")
            return
        self.app.push_screen(
            OperatorDialog(alert, operator=host(self).operator, shelve=True),
            host(self).send_operator_command,
        )


class OperatorDialog(ModalScreen[dict[str, Any] | None]):
    """Who acknowledges (or shelves), with a comment: Enter confirms, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=True),
    ]

    def __init__(self, alert: dict[str, Any], *, operator: str, shelve: bool) -> None:
        super().__init__()
        self.alert = alert
        self.operator = operator
        self.shelve = shelve

    def compose(self) -> ComposeResult:
        verb = "Shelve" if self.shelve else "Acknowledge"
        with Vertical(id="dialog"):
            title = Text(f"{verb} ", style="bold")
            title.append_text(render.alert_ref(self.alert))
            title.append(f": {render.alert_message(self.alert)}", style="bold")
            yield Static(title)
            if self.alert.get("action"):
                yield Static(render.alert_action(self.alert), id="dialog-action")
            yield Static(Text("Enter confirms, Esc cancels.", style="dim"))
            yield Label("Operator name")
            yield Input(value=self.operator, placeholder="your name", id="operator")
            if self.shelve:
                yield Label("Shelve for minutes (1-1440)")
                yield Input(value="30", id="minutes", type="integer")
            yield Label("Comment (what was done)")
            yield Input(placeholder="optional", id="comment")
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button(verb, variant="primary", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start where typing is needed: the name if it is empty, else the comment."""
        target = "#operator" if not self.operator else "#comment"
        self.query_one(target, Input).focus()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        """Enter in any field confirms."""
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """The buttons, for mouse users."""
        if event.button.id == "confirm":
            self._confirm()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without doing anything."""
        self.dismiss(None)

    def _confirm(self) -> None:
        operator = self.query_one("#operator", Input).value.strip()
        if not operator:
            self.query_one("#dialog-error", Static).update(
                Text("The operator name is required (it is recorded).", style="bold red")
            )
            self.query_one("#operator", Input).focus()
            return
        request: dict[str, Any] = {
            "command": "shelve" if self.shelve else "acknowledge",
            "alert_id": self.alert["id"],
            "operator": operator,
            "comment": self.query_one("#comment", Input).value.strip(),
        }
        if self.shelve:
            text = self.query_one("#minutes", Input).value.strip()
            if not text.isdigit() or not 1 <= int(text) <= 1440:
                self.query_one("#dialog-error", Static).update(
                    Text("Minutes must be a whole number from 1 to 1440.", style="bold red")
                )
                return
            request["minutes"] = int(text)
        self.dismiss(request)


# ------------------------------------------------------------------------------ system


class SystemScreen(StatusScreen):
    """Device links, ERP staleness, sync backlog, uplink and disk budget."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.lines", "Lines", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield from self.compose_banner()
        yield Static("Devices", classes="title", id="title")
        yield DataTable(id="devices", cursor_type="row", zebra_stripes=True)
        yield Static("", id="device-detail", classes="panel")
        yield Static("", id="system", classes="panel")
        yield Footer()

    def draw(self, snapshot: dict[str, Any]) -> None:
        system = snapshot["system"]
        table = self.query_one("#devices", DataTable)
        selected = table.cursor_row
        table.clear(columns=True)  # afresh, as on the lines screen: "? was up" is wider
        table.add_columns("Device", "Kind", "Line", "State", "Last error")
        stale = self.stale_s is not None
        self.query_one("#title", Static).update(
            Text.assemble("Devices", render.stale_note(self.stale_s))
        )
        error_width = max(self.size.width - 52, 16)
        devices = _unique(system["devices"])
        for device in devices:
            # An error from before the link came back is history: dimmed, not alarming.
            up = device["state"] in ("up", "disabled")
            cells = [
                render.plain(device["id"], 20),
                render.plain(device["kind"], 12),
                render.plain(device["line"], 8),
                render.link(device["state"], stale),
                render.plain(device.get("last_error") or "", error_width, "dim" if up else "red"),
            ]
            table.add_row(*(render.faded(cell, stale) for cell in cells), key=device["id"])
        if devices:
            table.move_cursor(row=min(max(selected, 0), len(devices) - 1))
        self._device_detail()
        self.query_one("#system", Static).update(self._summary(snapshot, self.stale_s))

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """Show the highlighted device's last error in full."""
        self._device_detail()

    def _device_detail(self) -> None:
        table = self.query_one("#devices", DataTable)
        snapshot = host(self).snapshot
        panel = self.query_one("#device-detail", Static)
        if table.row_count == 0 or snapshot is None:
            panel.update(Text(""))
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        device = next((d for d in snapshot["system"]["devices"] if d["id"] == key), None)
        if device is None or not device.get("last_error"):
            panel.update(Text(f"{key}: no error since the gateway started", style="dim"))
            return
        when = "before it came back" if device["state"] == "up" else "now"
        panel.update(Text(f"{key} last error ({when}): {device['last_error']}"))

    @staticmethod
    def _summary(snapshot: dict[str, Any], stale_s: float | None) -> Text:
        system = snapshot["system"]
        stale = stale_s is not None
        text = Text()
        erp = system.get("erp")
        text.append("ERP     ", "bold")
        if erp is None:
            text.append("not configured (runs are started from the line)\n", "dim")
        else:
            text.append_text(render.link(erp["state"], stale))
            erp_age = erp.get("staleness_s")
            if erp_age is not None:
                text.append(f"  last good answer {render.age(erp_age + (stale_s or 0))} ago")
            if erp.get("provisional"):
                text.append("  PROVISIONAL: records use the last known runs", "bold red")
            if erp.get("last_error"):
                text.append(f"\n        {erp['last_error']}", "red")
            text.append("\n")
        uplink = system.get("uplink")
        text.append("Uplink  ", "bold")
        if uplink is None:
            text.append("not configured: records stay in the store\n", "yellow")
        else:
            text.append_text(render.link(uplink["state"], stale))
            text.append(f"  {uplink['kind']} {uplink.get('endpoint', '')}\n")
            if uplink.get("last_error"):
                text.append(f"        {uplink['last_error']}\n", "red")
        outbox = system["outbox"]
        text.append("Backlog ", "bold")
        text.append(
            f"{outbox['depth']} record(s) waiting for the warehouse"
            f", oldest {render.age(_plus(outbox.get('oldest_age_s'), stale_s))}\n"
            if outbox["depth"]
            else "empty: every record is in the warehouse\n"
        )
        if outbox.get("stale"):
            text.append("        (the store is busy: these figures are from earlier)\n", "yellow")
        store = system["store"]
        budget = store.get("budget_mb") or 0.0
        used = store.get("used_mb") or 0.0
        share = f"{used / budget:.0%}" if budget else "-"
        text.append("Store   ", "bold")
        text.append_text(render.link(store["state"], stale))
        text.append(
            f"  {used:.1f} of {budget:.0f} MiB ({share} of the budget)"
            f"  commit {store.get('last_commit_ms', 0):.0f} ms"
        )
        evicted = sum((store.get("evicted") or {}).values())
        if evicted:
            text.append(f"\n        {evicted} telemetry rows evicted for space", "dark_orange")
        # The alarm load of the last 24 hours, all lines together (rules/alarm_rates.py).
        text.append("\nAlarms  ", "bold")
        text.append_text(render.alarm_summary(snapshot["alerts"].get("load")))
        return text
