"""The alerts screen, and the dialog that acknowledges or shelves one alert."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from gateway.api import Acknowledge, AlertView, OperatorRequest, Shelve, StatusSnapshot
from tui import render
from tui.screen_base import (
    WIDE,
    StatusScreen,
    host,
    unique,
    us_age,
)


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

    def _alerts(self) -> list[AlertView]:
        snapshot = host(self).snapshot
        if not snapshot:
            return []
        active = sorted(snapshot["alerts"]["active"], key=render.alert_order)
        return unique(active + list(snapshot["alerts"]["recent"]))

    def selected(self) -> AlertView | None:
        """The highlighted alert, if any."""
        table = self.query_one("#alerts", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((a for a in self._alerts() if a["id"] == key), None)

    def draw(self, snapshot: StatusSnapshot) -> None:
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
                Text(us_age(snapshot, alert["raised_us"], self.stale_s)),
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
            first = us_age(snapshot, alert.get("first_us"), self.stale_s)
            last = us_age(snapshot, alert.get("last_us"), self.stale_s)
            text.append(f"   {count} (first {first} ago, last {last} ago)", "bold")
        if alert.get("ref"):
            text.append(f"   lineside ack {alert['ref']}", "dim")
        if alert["acknowledged_by"]:
            text.append(f"\nacknowledged by {alert['acknowledged_by']}")
            if alert.get("comment"):
                text.append(f": {alert['comment']}")
        shelved_until = alert.get("shelved_until_us")
        if shelved_until and snapshot is not None:
            remaining = (shelved_until - snapshot["gateway"]["now_us"]) / 1e6
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


class OperatorDialog(ModalScreen[OperatorRequest | None]):
    """Who acknowledges (or shelves), with a comment: Enter confirms, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=True),
    ]

    def __init__(self, alert: AlertView, *, operator: str, shelve: bool) -> None:
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
        alert_id = self.alert.get("id")
        comment = self.query_one("#comment", Input).value.strip()
        if not self.shelve:
            self.dismiss(
                Acknowledge.unchecked(alert_id=alert_id, operator=operator, comment=comment)
            )
            return
        text = self.query_one("#minutes", Input).value.strip()
        if not text.isdigit() or not 1 <= int(text) <= 1440:
            self.query_one("#dialog-error", Static).update(
                Text("Minutes must be a whole number from 1 to 1440.", style="bold red")
            )
            return
        self.dismiss(
            Shelve.unchecked(
                alert_id=alert_id, operator=operator, comment=comment, minutes=int(text)
            )
        )


# ------------------------------------------------------------------------------ system
