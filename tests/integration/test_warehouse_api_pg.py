"""The read API over the real reader and a real PostgreSQL warehouse, filled through the
real ``Warehouse.commit_batch`` from a real gateway store (one busy shift: packs, labels,
HACCP excursions, label gaps; tests/support/shift_store.py).

Two servers: ``lineside warehouse serve`` as its own process (ended as a group) for what a
deployment sees: tokens, health, the run's report equal to the gateway's own, 503 once the
database is gone; and the same app in-process with a fixed clock for every endpoint, so
``/fleet`` and ``/shelf-life`` do not depend on today's date: JSON and CSV of each endpoint
hold the same rows (docs/warehouse-api.md).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg import sql

from central.api.jsonable import jsonable
from central.api.server import serve
from central.api.settings import ApiSettings
from central.reader import WarehouseReader
from gateway.core.clock import ManualClock
from gateway.report import build_report
from gateway.runs import to_us
from sync.ingest.auth import TokenFile, hash_token, write_tokens
from sync.ingest.warehouse import PostgresWarehouse
from tests.support.line_shift import BATCH, START
from tests.support.pg_database import admin, fresh_database
from tests.support.ports import free_port
from tests.support.processes import end_group
from tests.support.shift_store import ShiftFacts, write_shift
from tests.support.waiting import wait_for
from tests.support.warehouse_fill import commit_outbox

GW, SITE = "hull-gw1", "hull"
GW2, SITE2 = "grimsby-gw1", "grimsby"
"""A second gateway that ran a run of the same number (the same shift, its own store)."""
TOKEN = "central-bi.dGVzdHMgb25seTogbm90IGEgcmVhbCByZWFkIHRva2Vu"
NOW_US = to_us(START) + 10 * 3600 * 1_000_000  # two hours after the shift's end


@dataclass(frozen=True)
class Filled:
    dsn: str
    store: Path
    facts: ShiftFacts
    tokens: Path


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """One database per module: the shift's store committed into it."""
    directory = tmp_path_factory.mktemp("api-pg")
    store = directory / "gateway.db"
    tokens = directory / "api-tokens"
    with fresh_database("lineside_api") as dsn:

        async def fill() -> ShiftFacts:
            facts = await write_shift(store)
            await write_shift(directory / "gateway2.db")
            warehouse = PostgresWarehouse(dsn)
            await warehouse.open()
            try:
                await commit_outbox(store, warehouse, gateway=GW, site=SITE)
                await commit_outbox(directory / "gateway2.db", warehouse, gateway=GW2, site=SITE2)
            finally:
                await warehouse.close()
            return facts

        facts = asyncio.run(fill())
        write_tokens(tokens, {"central-bi": hash_token(TOKEN)})
        yield Filled(dsn, store, facts, tokens)


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(filled: Filled) -> Iterator[str]:
    """``lineside warehouse serve`` over the database, as its own process group."""
    port = free_port()
    env = {**os.environ, "WAREHOUSE_DSN": filled.dsn}
    # Its log goes to a file: a pipe nobody reads could fill and stall the server.
    log = (filled.store.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "warehouse",
            "serve",
            "--postgres-dsn-env",
            "WAREHOUSE_DSN",
            "--tokens",
            str(filled.tokens),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/api/v1/health", timeout=1).status_code in (200, 503)
        except httpx.TransportError:
            return proc.poll() is not None  # stop waiting: it died

    try:
        asyncio.run(wait_for(up, timeout=30))
        assert proc.poll() is None, (filled.store.parent / "serve.log").read_text()
        yield base
    finally:
        end_group(proc)
        log.close()


def test_the_served_api_needs_a_token_and_reports_the_run_as_the_gateway_does(
    served: str, filled: Filled
) -> None:
    run = filled.facts.run_number
    assert httpx.get(f"{served}/api/v1/runs").status_code == 401
    assert httpx.get(f"{served}/api/v1/health").json() == {"status": "ok"}
    # Two gateways ran this run number: which one must be said.
    ambiguous = httpx.get(f"{served}/api/v1/runs/{run}/report", headers=_auth())
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"] == "ambiguous"
    answer = httpx.get(f"{served}/api/v1/runs/{run}/report?gateway={GW}", headers=_auth())
    assert answer.status_code == 200, answer.text
    # The warehouse's report is the gateway's own, figure for figure.
    assert answer.json() == jsonable(build_report(filled.store, run))
    summary = httpx.get(f"{served}/api/v1/runs/{run}/summary?gateway={GW}", headers=_auth()).json()
    assert summary["packs"] == answer.json()["packs"]
    assert summary["missed_packs"] == filled.facts.missed_packs
    missing = httpx.get(f"{served}/api/v1/runs/NO-SUCH-RUN/report", headers=_auth())
    assert missing.status_code == 404


@pytest.fixture
async def in_process(filled: Filled) -> AsyncIterator[str]:
    """The same app in-process, over the real reader, with a fixed clock."""
    ports: list[int] = []
    settings = ApiSettings(tokens=TokenFile(path=filled.tokens), clock=ManualClock(NOW_US), port=0)
    task = asyncio.create_task(
        serve(lambda: WarehouseReader.open(filled.dsn), settings, bound=ports.append)
    )
    await wait_for(lambda: bool(ports), timeout=10)
    yield f"http://127.0.0.1:{ports[0]}"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _cells(value: Any) -> str:
    """A JSON value as the CSV writes it (for the comparison)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(_cells(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(("=", "+", "-", "@")) and isinstance(value, str) else text


def _same_rows(json_rows: list[dict[str, Any]], csv_text: str) -> None:
    rows = list(csv.DictReader(io.StringIO(csv_text, newline="")))
    assert len(rows) == len(json_rows)
    for document, row in zip(json_rows, rows, strict=True):
        for key, value in document.items():
            if isinstance(value, dict):
                for inner, inner_value in value.items():
                    assert row[f"{key}.{inner}"] == _cells(inner_value), (key, inner)
            elif not (isinstance(value, list) and value and isinstance(value[0], dict)):
                assert row[key] == _cells(value), key


async def test_every_list_endpoint_gives_the_same_rows_as_json_and_csv(
    in_process: str, filled: Filled
) -> None:
    run = filled.facts.run_number
    since = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    lists = [
        "/api/v1/sites",
        "/api/v1/lines",
        f"/api/v1/runs?since={since}",
        f"/api/v1/runs/{run}/compliance?gateway={GW2}",
        f"/api/v1/breaches?since={since}",
        "/api/v1/giveaway?by=run",
        "/api/v1/giveaway?by=line_hour",
        "/api/v1/giveaway?by=line_shift",
        "/api/v1/giveaway?by=product_day",
        "/api/v1/alerts/active",
        "/api/v1/shelf-life?within_days=30",
        "/api/v1/fleet",
    ]
    async with httpx.AsyncClient(base_url=in_process, headers=_auth()) as client:
        seen: dict[str, int] = {}
        for url in lists:
            as_json = await client.get(url)
            assert as_json.status_code == 200, (url, as_json.text)
            as_csv = await client.get(url, headers={"accept": "text/csv"})
            assert as_csv.status_code == 200, url
            _same_rows(as_json.json(), as_csv.text)
            seen[url.split("?")[0]] = len(as_json.json())
    # The shift is there: its site, line, run, its HACCP breaches and its gateway.
    assert seen["/api/v1/sites"] == 2
    assert seen["/api/v1/runs"] == 2
    assert seen["/api/v1/breaches"] > 0
    assert seen["/api/v1/fleet"] == 2


async def test_nested_answers_as_csv(in_process: str, filled: Filled) -> None:
    run = filled.facts.run_number
    async with httpx.AsyncClient(base_url=in_process, headers=_auth()) as client:
        report = (await client.get(f"/api/v1/runs/{run}/report?gateway={GW}")).json()
        products = (await client.get(f"/api/v1/runs/{run}/report?gateway={GW}&format=csv")).text
        weights = (await client.get(f"/api/v1/runs/{run}/weights?gateway={GW}")).json()
        weight_rows = (await client.get(f"/api/v1/runs/{run}/weights?gateway={GW}&format=csv")).text
        trace = (await client.get(f"/api/v1/trace/batch/{BATCH}")).json()
        trace_packs = (await client.get(f"/api/v1/trace/batch/{BATCH}?format=csv")).text
        trace_labels = (
            await client.get(f"/api/v1/trace/batch/{BATCH}?format=csv&table=labels")
        ).text
        cut = await client.get(f"/api/v1/trace/batch/{BATCH}?limit=100")
    _same_rows(report["products"], products)
    assert {r["run_number"] for r in csv.DictReader(io.StringIO(products))} == {run}
    net = [g for product in weights["products"] for g in product["net_g"]]
    assert [float(r["net_g"]) for r in csv.DictReader(io.StringIO(weight_rows))] == net
    packs = [p for r in trace["runs"] for p in r["packs"]]
    labels = [lab for r in trace["runs"] for lab in r["labels"]]
    # The batch code was used by both gateways' runs: every pack of both, nothing more.
    assert sorted(r["run"]["gateway"] for r in trace["runs"]) == [GW2, GW]
    assert len(packs) == 2 * filled.facts.packs
    assert len({(p["gateway"], p["seq"]) for p in packs}) == len(packs)
    _same_rows(packs, trace_packs)
    _same_rows(labels, trace_labels)
    assert cut.headers["x-lineside-truncated"] == "true"
    assert [r["packs"] for r in cut.json()["runs"]] == [r["packs"][:100] for r in trace["runs"]]


def test_the_served_api_answers_503_once_the_database_is_gone(served: str, filled: Filled) -> None:
    # Last in the module: it takes the database away from the server.
    name = filled.dsn.rsplit("/", 1)[1]
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    gone = httpx.get(f"{served}/api/v1/runs", headers=_auth())
    assert gone.status_code == 503
    assert gone.headers["retry-after"] == "5"
    assert gone.json() == {"error": "unavailable", "reason": "warehouse unavailable"}
    health = httpx.get(f"{served}/api/v1/health")
    assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
    assert name not in health.text
    # The server said why; it never wrote a reader's token.
    log = (filled.store.parent / "serve.log").read_text()
    assert "warehouse unavailable" in log
    assert TOKEN.split(".", 1)[1] not in log
