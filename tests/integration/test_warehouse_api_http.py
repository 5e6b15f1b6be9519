"""The read API served for real (uvicorn on a free loopback port, httpx as the client) over a
stand-in reader: the seam ``create_app(reader_factory, ...)`` is ours, so these tests pin
what the HTTP side does with any reader's answers and errors: authentication, JSON and
CSV of the same rows, formula injection, refusals, 503 when the warehouse is gone, TLS
client certificates (docs/warehouse-api.md). The same API over the real reader and a real
PostgreSQL warehouse: tests/integration/test_warehouse_api_pg.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from central.api.server import serve
from central.api.settings import ApiSettings
from central.errors import Ambiguous, NotFound, WarehouseReadError
from central.rows import (
    AlertRow,
    FleetRow,
    ProductWeights,
    SiteRow,
    TemperaturePoint,
    TemperatureSeries,
    WeightSample,
)
from gateway.core.clock import ManualClock
from sync.ingest.auth import TokenFile
from tests.support.pki import issue, make_ca
from tests.support.waiting import wait_for

TOKEN = "powerbi.Zm9yIHRlc3RzIG9ubHk-bm90IGEgcmVhbCB0b2tlbg"
NOW_US = 1_781_510_400_000_000  # 2026-06-15T08:00:00Z
T = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)
EVIL = '=HYPERLINK("http://evil.example","click")'


@dataclass
class StandIn:
    """A reader with fixed answers; records what it was asked."""

    down: bool = False
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    closed: int = 0

    def __call__(self) -> StandIn:
        if self.down:
            raise WarehouseReadError("connection refused")
        return self

    def close(self) -> None:
        self.closed += 1

    def ping(self) -> None:
        pass

    def sites(self) -> list[SiteRow]:
        return [SiteRow("hull", EVIL, T, T, 2, 4), SiteRow("grimsby", None, T, T, 1, 2)]

    def active_alerts(self, **kw: Any) -> list[AlertRow]:
        self.asked.append(("active_alerts", kw))
        return [
            AlertRow(
                "gw1",
                "hull",
                "L1",
                f"a{i}",
                "haccp.high",
                "probe1",
                "critical",
                "raised",
                f"-{i} °C over the limit",
                T,
                T,
            )
            for i in range(5)
        ]

    def runs(self, **kw: Any) -> list[Any]:
        self.asked.append(("runs", kw))
        return []

    def fleet(self, *, now: datetime) -> list[FleetRow]:
        self.asked.append(("fleet", {"now": now}))
        return [
            FleetRow("gw1", "hull", None, T, 1.5, 3600.0, 10, 10, None, None, 1, 2, 0.1, 1, 0.0, 0)
        ]

    def shelf_life(self, **kw: Any) -> list[Any]:
        self.asked.append(("shelf_life", kw))
        return []

    def run_summary(self, run: str, *, gateway: str | None = None) -> Any:
        if run == "R-dup":
            raise Ambiguous("run R-dup is on gw1, gw2: name the gateway", ("gw1", "gw2"))
        if run == "R-boom":
            raise RuntimeError("a bug with a secret in it: password=hunter2")
        raise NotFound(f"no run {run}")

    def pack_weights(self, run: str, *, gateway: str | None = None) -> WeightSample:
        limits = (Decimal("250"), Decimal("241.0"), Decimal("232.0"))
        return WeightSample(
            "gw1",
            run,
            (
                ProductWeights("P1", "Salmon 250 g", False, *limits, (251.5, 249.75)),
                ProductWeights("P2", "Cod loins", True, None, None, None, (512.25,)),
            ),
        )

    def temperature_series(self, run: str, *, gateway: str | None = None) -> list[Any]:
        points = (TemperaturePoint(T, 2.5), TemperaturePoint(T, -0.5))
        return [TemperatureSeries("probe1", "chiller", "L1", points, ())]


Serve = Callable[..., Any]


@pytest.fixture
async def server() -> AsyncIterator[Callable[..., Any]]:
    """Start the real server: ``await start(reader, **settings)`` → its base URL."""
    tasks: list[asyncio.Task[None]] = []

    async def start(reader: StandIn, scheme: str = "http", **overrides: Any) -> str:
        options: dict[str, Any] = {
            "tokens": TokenFile.from_tokens({"powerbi": TOKEN}),
            "clock": ManualClock(NOW_US),
            "port": 0,
            "max_rows": 3,
            "default_rows": 2,
        }
        options.update(overrides)
        ports: list[int] = []
        factory: Any = reader
        tasks.append(
            asyncio.create_task(serve(factory, ApiSettings(**options), bound=ports.append))
        )
        await wait_for(lambda: bool(ports), timeout=10)
        return f"{scheme}://127.0.0.1:{ports[0]}"

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_a_token_is_required_and_a_valid_one_reads(server: Serve) -> None:
    base = await server(StandIn())
    async with httpx.AsyncClient(base_url=base) as client:
        for headers in (
            {},
            {"authorization": "Bearer powerbi.wrong"},
            {"authorization": "Basic x"},
        ):
            answer = await client.get("/api/v1/sites", headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith(
                'Bearer realm="lineside-warehouse"'
            )
            assert answer.json()["error"] == "unauthorized"
        # An ingest token of the same shape is not a read token.
        ingest = {"authorization": "Bearer gw1.Zm9yIHRlc3RzIG9ubHk-bm90IGEgcmVhbCB0b2tlbg"}
        assert (await client.get("/api/v1/sites", headers=ingest)).status_code == 401
        answer = await client.get("/api/v1/sites", headers=_auth())
        assert answer.status_code == 200
        assert [s["site"] for s in answer.json()] == ["hull", "grimsby"]
        # The dashboard's cookie carries the same token.
        cookie = await client.get("/api/v1/sites", headers={"cookie": f"lineside_token={TOKEN}"})
        assert cookie.status_code == 200
        # Health and the OpenAPI document need none, and health says nothing more than ok.
        health = await client.get("/api/v1/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        openapi = (await client.get("/api/v1/openapi.json")).json()
        assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert {path.removeprefix("/api/v1") for path in openapi["paths"]} == {
            "/sites", "/lines", "/runs", "/runs/{run}/report", "/runs/{run}/summary",
            "/runs/{run}/compliance", "/runs/{run}/weights", "/runs/{run}/temperatures",
            "/trace/batch/{code}", "/trace/serial/{serial}", "/breaches", "/giveaway",
            "/alerts/active", "/shelf-life", "/fleet", "/health",
        }  # fmt: skip
        operations = [op for ops in openapi["paths"].values() for op in ops.values()]
        assert all("422" not in op["responses"] for op in operations)
        site = openapi["components"]["schemas"]["SiteRow"]["properties"]["site"]
        assert site["description"] == "The site id the gateways are configured with."


async def test_a_browser_without_a_session_is_sent_to_the_login_form(server: Serve) -> None:
    base = await server(StandIn())
    page = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    async with httpx.AsyncClient(base_url=base) as client:
        for path in ("/", "/sites/hull", "/runs/hull-gw1/R-100", "/trace?batch=B1"):
            answer = await client.get(path, headers={"accept": page})
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/login"
            assert "www-authenticate" not in answer.headers
        # API clients keep the 401 and its challenge: an /api/ path even from a browser,
        # and a page asked for as JSON.
        for path, accept in (("/api/v1/sites", page), ("/", "application/json"), ("/", "*/*")):
            answer = await client.get(path, headers={"accept": accept})
            assert answer.status_code == 401, (path, accept)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.json()["error"] == "unauthorized"
        # The login form itself stays reachable.
        assert (await client.get("/login", headers={"accept": page})).status_code == 200


async def test_csv_and_json_hold_the_same_rows_and_no_formula_runs(server: Serve) -> None:
    base = await server(StandIn())
    async with httpx.AsyncClient(base_url=base, headers=_auth()) as client:
        as_json = (await client.get("/api/v1/sites")).json()
        by_param = await client.get("/api/v1/sites", params={"format": "csv"})
        by_accept = await client.get("/api/v1/sites", headers={"accept": "text/csv"})
    assert by_param.headers["content-type"] == "text/csv; charset=utf-8; header=present"
    assert by_param.headers["content-disposition"] == 'attachment; filename="sites.csv"'
    assert by_param.text == by_accept.text
    assert "\r\n" in by_param.text
    rows = _csv(by_param.text)
    assert [r["site"] for r in rows] == [s["site"] for s in as_json]
    assert [r["first_seen"] for r in rows] == [s["first_seen"] for s in as_json]
    assert [int(r["gateways"]) for r in rows] == [s["gateways"] for s in as_json]
    # The name a line could type: verbatim in JSON, never a formula in the spreadsheet.
    assert as_json[0]["name"] == EVIL
    assert rows[0]["name"] == "'" + EVIL
    assert rows[1]["name"] == ""


async def test_nested_answers_flatten_to_one_row_per_measurement(server: Serve) -> None:
    base = await server(StandIn())
    async with httpx.AsyncClient(base_url=base, headers=_auth()) as client:
        weights = (await client.get("/api/v1/runs/R1/weights")).json()
        weight_rows = _csv((await client.get("/api/v1/runs/R1/weights?format=csv")).text)
        temps = _csv((await client.get("/api/v1/runs/R1/temperatures?format=csv")).text)
    assert weights["products"][0]["nominal_g"] == "250"  # exact decimal text
    assert weights["products"][0]["net_g"] == [251.5, 249.75]
    assert [(r["plu"], float(r["net_g"]), r["t1_g"]) for r in weight_rows] == [
        ("P1", 251.5, "241.0"),
        ("P1", 249.75, "241.0"),
        ("P2", 512.25, ""),
    ]
    assert [r["celsius"] for r in temps] == ["2.5", "-0.5"]  # a negative number stays one


async def test_limits_and_query_parameters_are_checked(server: Serve) -> None:
    reader = StandIn()
    base = await server(reader)
    async with httpx.AsyncClient(base_url=base, headers=_auth()) as client:
        cut = await client.get("/api/v1/alerts/active")
        assert len(cut.json()) == 2  # default_rows
        assert cut.headers["x-lineside-truncated"] == "true"
        assert len((await client.get("/api/v1/alerts/active?limit=3")).json()) == 3
        refusals = {
            "/api/v1/alerts/active?limit=4": "limit must be at most 3",
            "/api/v1/alerts/active?limit=0": "limit",
            "/api/v1/runs?since=yesterday": "since",
            "/api/v1/runs?since=2026-06-02&until=2026-06-01": "until must be after since",
            "/api/v1/runs?since=2024-01-01&until=2026-01-01": "spans more than 366 days",
            "/api/v1/giveaway?by=week": "by",
            "/api/v1/sites?format=xml": "format",
            "/api/v1/shelf-life?within_days=-1": "within_days",
            "/api/v1/trace/batch/GG1?table=secrets": "table",
            "/api/v1/runs?sites=hull": "unknown query parameter(s): 'sites'",
            "/api/v1/fleet?now=2020-01-01": "unknown query parameter(s): 'now'",
        }
        for url, reason in refusals.items():
            answer = await client.get(url)
            assert answer.status_code == 400, url
            assert answer.json()["error"] == "bad_request"
            assert reason in answer.json()["reason"], (url, answer.json())
        await client.get("/api/v1/runs?since=2026-06-01T00:00:00&until=2026-06-02T02:00:00%2B02:00")
    [(_, runs)] = [a for a in reader.asked if a[0] == "runs"]
    assert runs["since"] == datetime(2026, 6, 1, tzinfo=UTC)  # no zone: UTC
    assert runs["until"] == datetime(2026, 6, 2, tzinfo=UTC)
    assert runs["limit"] == 3  # one more than asked: to know whether the list was cut


async def test_now_comes_from_the_injected_clock(server: Serve) -> None:
    reader = StandIn()
    base = await server(reader)
    async with httpx.AsyncClient(base_url=base, headers=_auth()) as client:
        assert (await client.get("/api/v1/fleet")).status_code == 200
        assert (await client.get("/api/v1/shelf-life?within_days=5")).status_code == 200
    asked = dict(reader.asked)
    assert asked["fleet"] == {"now": datetime(2026, 6, 15, 8, 0, tzinfo=UTC)}
    assert asked["shelf_life"] == {"as_of": date(2026, 6, 15), "within_days": 5}


async def test_errors_are_json_and_never_a_traceback(server: Serve) -> None:
    reader = StandIn()
    base = await server(reader)
    async with httpx.AsyncClient(base_url=base, headers=_auth()) as client:
        missing = await client.get("/api/v1/runs/R404/summary")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        duplicate = await client.get("/api/v1/runs/R-dup/summary")
        assert (duplicate.status_code, duplicate.json()["error"]) == (409, "ambiguous")
        broken = await client.get("/api/v1/runs/R-boom/summary")
        assert broken.status_code == 500
        assert broken.json() == {"error": "internal_error", "reason": "the request failed"}
        assert "hunter2" not in broken.text
        assert "Traceback" not in broken.text
        assert (await client.post("/api/v1/sites")).status_code == 405
        assert (await client.get("/api/v1/nothing")).json()["error"] == "not_found"
        reader.down = True
        for url in ("/api/v1/sites", "/api/v1/runs/R1/report?format=csv"):
            gone = await client.get(url)
            assert gone.status_code == 503
            assert gone.headers["retry-after"] == "5"
            assert gone.json() == {"error": "unavailable", "reason": "warehouse unavailable"}
        health = await client.get("/api/v1/health", headers={})
        assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
        assert "refused" not in health.text
    assert reader.closed == 3  # every reader opened was closed


async def test_client_certificates_authenticate_instead_of_a_token(
    server: Serve, tmp_path: Path
) -> None:
    ca = make_ca(tmp_path, "central-ca")
    other = make_ca(tmp_path, "other-ca")
    host = issue(tmp_path, ca, "localhost", server=True)
    client_pair = issue(tmp_path, ca, "powerbi", server=False)
    stranger = issue(tmp_path, other, "stranger", server=False)
    base = await server(
        StandIn(),
        scheme="https",
        tokens=None,
        client_certificates=True,
        tls_cert=host.cert,
        tls_key=host.key,
        tls_client_ca=ca.path,
    )

    def context(pair: Any) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca.path))
        if pair is not None:
            ctx.load_cert_chain(str(pair.cert), str(pair.key))
        return ctx

    async with httpx.AsyncClient(base_url=base, verify=context(client_pair)) as client:
        answer = await client.get("/api/v1/sites")
        assert answer.status_code == 200
        assert json.loads(answer.text)[0]["site"] == "hull"
    for pair in (None, stranger):
        async with httpx.AsyncClient(base_url=base, verify=context(pair)) as client:
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get("/api/v1/sites")
