"""One line in detail: the run, live weights against Qn/T1/T2, giveaway, probes, labels,
alerts."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from gateway.api import LineView, StatusSnapshot
from tui import render
from tui.screen_base import (
    DETAIL_ALERTS,
    StatusScreen,
    host,
    us_age,
)


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

    def draw(self, snapshot: StatusSnapshot) -> None:
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
    def _run(snapshot: StatusSnapshot, line: LineView, stale_s: float | None) -> Text:
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
        snapshot: StatusSnapshot, line: LineView, width: int, stale_s: float | None
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
            text.append(f"  last pack {us_age(snapshot, packs[-1].get('ts_us'), stale_s)} ago")
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
    def _probes(line: LineView, stale_s: float | None) -> Text:
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
    def _labels(line: LineView) -> Text:
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
    def _alerts(snapshot: StatusSnapshot, line: LineView, stale_s: float | None) -> Text:
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
            age = us_age(snapshot, alert["raised_us"], stale_s)
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
