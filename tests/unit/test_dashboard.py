"""The dashboard's pure parts: the charts (data in, SVG out), the figures' formatting, the
templates' escaping, the limits read from breach messages, the login cookie and the pages
the routes give when the warehouse cannot be read or has nothing for the path.

The reader factory is the seam: a factory that raises the reader's own errors stands in
for a warehouse that is down; the browser test (tests/integration/test_dashboard_browser.py)
runs the pages against a real one.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from central.analytics import breach_side_and_limit
from central.api import auth
from central.dashboard import charts, login, routes, run_page
from central.dashboard import format as fmt
from central.dashboard.render import Renderer, svg_uri
from central.errors import NotFound, WarehouseReadError
from central.reader import WarehouseReader
from central.rows import AlertRow, FleetRow, SiteRow
from central.series_rows import BreachInterval, TemperaturePoint, TemperatureSeries
from gateway.core.clock import ManualClock

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> & $\\frac{1}{0}$'
"""Text a gateway could send: markup, an ampersand and mathtext (matplotlib parses $...$)."""


def _svg_ok(svg: bytes) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    return root


def test_weight_histogram_is_svg_with_its_labels_and_the_emark_lines() -> None:
    weights = [240.0 + (i % 17) * 0.5 for i in range(500)]
    svg = charts.weight_histogram("PLU 41240", weights, charts.Limits(240.0, 231.0, 222.0))
    _svg_ok(svg)
    text = svg.decode()
    # Text is drawn as paths; matplotlib keeps each string as a comment beside it.
    for label in ("PLU 41240", "net weight (g)", "packs", "Qn 240 g", "T1 231 g", "T2 222 g"):
        assert label in text, label
    assert "packs (n=500)" in text


def test_charts_are_deterministic_and_take_hostile_text_as_text() -> None:
    points = [(T0 + timedelta(minutes=i), 3.0 + (i % 9) / 2) for i in range(60)]
    spans = [charts.Interval(T0 + timedelta(minutes=10), T0 + timedelta(minutes=14))]
    one = charts.temperature_chart(HOSTILE, points, low_c=0.0, high_c=5.0, breaches=spans)
    assert one == charts.temperature_chart(HOSTILE, points, low_c=0.0, high_c=5.0, breaches=spans)
    _svg_ok(one)
    assert b"<script" not in one
    text = one.decode()
    for label in (
        "temperature (°C)",
        "time (UTC)",
        "upper limit 5 °C",
        "lower limit 0 °C",
        "breach",
    ):
        assert label in text, label


def test_giveaway_trend_and_the_empty_charts() -> None:
    trend = charts.giveaway_trend("L1", [(T0 + timedelta(hours=h), 1.0 + h) for h in range(5)])
    assert "giveaway (% of nominal)" in trend.decode()
    assert "3 % compliance limit" in trend.decode()
    assert "no giveaway figures" in charts.giveaway_trend("L1", []).decode()
    assert (
        "no accepted packs"
        in charts.weight_histogram("x", [], charts.Limits(None, None, None)).decode()
    )
    empty = charts.temperature_chart("p", [], low_c=None, high_c=None, breaches=[])
    assert "no readings" in empty.decode()


def test_svg_uri_is_base64_so_nothing_in_it_is_markup() -> None:
    uri = svg_uri(b'<svg><text>"x" <b></text></svg>')
    assert uri.startswith("data:image/svg+xml;base64,")
    assert "<" not in uri
    assert '"' not in uri


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, fmt.DASH),
        (0.4, "0 s"),
        (59, "59 s"),
        (200, "3 min 20 s"),
        (3900, "1 h 05 min"),
        (90_000, "1 d 01 h"),
        (-5, "-5 s"),
    ],
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert fmt.duration(seconds) == shown


def test_a_negative_age_says_the_clock_is_ahead() -> None:
    assert fmt.age(-300.0) == "clock ahead by 5 min 00 s"
    assert fmt.age(0.2) == fmt.age(-0.2) == "0 s"
    assert fmt.age(125.0) == "2 min 05 s"
    assert fmt.age(None) == fmt.DASH
    assert "-" not in fmt.age(-86_400 * 3)


def test_numbers_counts_times_and_verdicts() -> None:
    assert fmt.number(1234.5678, 2) == "1,234.57"
    assert fmt.number(Decimal("240"), 1) == "240.0"
    assert fmt.number(None) == fmt.DASH
    assert fmt.count(12345) == "12,345"
    assert fmt.when(T0) == "2026-03-02 06:00:00"
    assert fmt.when(date(2026, 3, 14)) == "2026-03-14"
    assert fmt.verdict("fail") == "FAIL"
    assert fmt.verdict(None) == fmt.DASH
    assert fmt.segment("R/1 2") == "R%2F1%202"


def test_templates_escape_everything_from_the_warehouse() -> None:
    alert = AlertRow(
        "gw<1>", "site&", None, "a1", "haccp_upper", HOSTILE, "critical", "raised", HOSTILE, T0, T0
    )
    site = SiteRow(HOSTILE, HOSTILE, T0, T0, 1, 1)
    fleet = FleetRow("gw<1>", HOSTILE, None, T0, 1.0, 2.0, 10, 10, None, None, 1, 1, 0.1, 1, 0.0, 0)
    page = Renderer().page(
        "fleet.html", title="Fleet", now=T0, sites=[site], fleet=[fleet], alerts=[alert]
    )
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "gw&lt;1&gt;" in page
    # A link built from untrusted text is one escaped path segment.
    assert 'href="/sites/%3Cscript%3E' in page


def test_the_fleet_page_shows_a_clock_ahead_in_words() -> None:
    ahead = FleetRow("gw1", "oslo", None, T0, 1.0, -90.0, 10, 10, None, None, 0, 0, 0.0, 0, 0.0, 0)
    page = Renderer().page("fleet.html", title="Fleet", now=T0, sites=[], fleet=[ahead], alerts=[])
    assert 'data-figure="since_contact">clock ahead by 1 min 30 s<' in page
    assert "-1 min" not in page


def test_the_fleet_page_shows_a_reported_backlog_as_a_number() -> None:
    known = FleetRow("gw1", "oslo", None, T0, 1.0, 2.0, 10, 10, 12345, T0, 0, 0, 0.0, 0, 0.0, 0)
    unknown = dataclasses.replace(known, gateway="gw2", backlog=None, backlog_at=None)
    page = Renderer().page(
        "fleet.html", title="Fleet", now=T0, sites=[], fleet=[known, unknown], alerts=[]
    )
    assert 'data-figure="backlog">12,345<' in page
    assert f'data-figure="backlog">{fmt.DASH}<' in page


@pytest.mark.parametrize(
    ("detail", "found"),
    [
        ({"side": "upper", "limit_c": 5.0, "value_c": 6.1}, ("upper", 5.0)),
        ('{"side": "lower", "limit_c": -1.5}', ("lower", -1.5)),
        ({"side": "upper", "limit_c": "5"}, ("upper", None)),
        ({"side": "upper", "limit_c": True}, ("upper", None)),
        ({"faults": ["no_data"]}, (None, None)),
        ({"side": "<b>", "limit_c": 5}, (None, None)),
        ("not json at all", (None, None)),
        (None, (None, None)),
    ],
)
def test_a_breachs_limit_is_read_from_its_detail(detail: object, found: object) -> None:
    # The limit lines come from the HACCP alert's detail (rules/haccp.py), never its message.
    assert breach_side_and_limit(detail) == found


def test_the_temperature_chart_draws_the_series_limits() -> None:
    start = T0 + timedelta(minutes=1)
    series = TemperatureSeries(
        probe="P1",
        location="chiller",
        line="L1",
        points=(TemperaturePoint(T0, 3.0), TemperaturePoint(start, 6.0)),
        breaches=(BreachInterval("haccp_upper", "critical", start, None, "upper", 5.0),),
        lower_limit_c=-1.5,
        upper_limit_c=5.0,
    )
    with_limits = run_page.temperature_chart(series)
    without = run_page.temperature_chart(
        dataclasses.replace(series, lower_limit_c=None, upper_limit_c=None)
    )
    assert with_limits.uri != without.uri


def test_the_login_cookie_is_the_one_the_gate_reads() -> None:
    assert login.COOKIE == auth.COOKIE


def _client(factory: object) -> httpx.AsyncClient:
    """The routes in process (httpx's ASGI transport: no socket)."""
    app = Starlette(routes=routes(factory, ManualClock(), refresh_s=None))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://dash")


async def test_login_sets_an_httponly_strict_cookie_and_logout_clears_it() -> None:
    client = _client(lambda: None)
    assert "Read token" in (await client.get("/login")).text
    answer = await client.post("/login", data={"token": "central.abc"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("lineside_token=central.abc")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert (await client.post("/login", data={"token": ""})).status_code == 400
    big = await client.post("/login", content=b"token=" + b"x" * 5000)
    assert big.status_code == 413
    out = await client.get("/logout")
    assert out.status_code == 303
    assert 'lineside_token=""' in out.headers["set-cookie"]


def _down() -> WarehouseReader:
    raise WarehouseReadError("cannot connect to db.internal:5432: connection refused")


@pytest.mark.parametrize(
    "path", ["/", "/sites/oslo", "/sites/oslo/lines/gw/L1", "/runs/gw/R1", "/trace?batch=B1"]
)
async def test_every_page_says_warehouse_unavailable_with_503(path: str) -> None:
    answer = await _client(_down).get(path)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert "Warehouse unavailable" in answer.text
    assert 'http-equiv="refresh"' in answer.text
    assert "db.internal" not in answer.text
    assert "Traceback" not in answer.text


class _Nothing:
    """A reader with nothing in it (the seam: what the routes do with NotFound)."""

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def sites(self) -> list[SiteRow]:
        return []

    def run_summary(self, run: str, *, gateway: str | None = None) -> None:
        raise NotFound(f"no run {run!r} on {gateway!r}")


async def test_unknown_site_and_run_are_404_pages() -> None:
    client = _client(_Nothing)
    site = await client.get("/sites/<nowhere>")
    assert site.status_code == 404
    assert "&lt;nowhere&gt;" in site.text
    assert (await client.get("/runs/gw/R9")).status_code == 404
    css = await client.get("/dashboard.css")
    assert css.headers["content-type"].startswith("text/css")
