"""The system screen: device links, ERP staleness, sync backlog, uplink and disk budget."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from gateway.api import StatusSnapshot
from tui import render
from tui.screen_base import (
    StatusScreen,
    host,
    plus_stale,
    unique,
)


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

    def draw(self, snapshot: StatusSnapshot) -> None:
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
        devices = unique(system["devices"])
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
    def _summary(snapshot: StatusSnapshot, stale_s: float | None) -> Text:
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
            f", oldest {render.age(plus_stale(outbox.get('oldest_age_s'), stale_s))}\n"
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
