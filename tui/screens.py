"""The operator screens: the lines screen here, and every screen for the app to import.

The line detail is in tui/line_screen.py, the alerts screen and the operator dialog in
tui/alert_screens.py, the system screen in tui/system_screen.py; what they share (drawing
from the snapshot, ages, the connection banner) in tui/screen_base.py.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from gateway.api import LineView, StatusSnapshot
from tui import render
from tui.alert_screens import AlertsScreen, OperatorDialog
from tui.line_screen import LineScreen
from tui.screen_base import (
    WIDE,
    StatusScreen,
    unique,
)
from tui.system_screen import SystemScreen

__all__ = [
    "AlertsScreen",
    "LineScreen",
    "LinesScreen",
    "OperatorDialog",
    "StatusScreen",
    "SystemScreen",
]


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

    def draw(self, snapshot: StatusSnapshot) -> None:
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
        lines = unique(snapshot["lines"])
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

    def _any_old(self, lines: list[LineView]) -> bool:
        return any(
            (probe := line.get("worst_probe")) and render.probe_age(probe, self.stale_s)
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
