"""The dashboard in a real browser (Debian's chromium, headless, through Selenium) against
the real app and a real warehouse: PostgreSQL, and the embedded SQLite.

The warehouse is filled the way production fills it: two gateways' stores, each holding a
shift written by the real rules engine and store (tests/support/shift_store.py), drained
batch by batch through ``Warehouse.commit_batch``. The app is ``create_app`` (API and
dashboard together) on a free loopback port, with read tokens and a fixed clock. The test
logs in through the dashboard's form, loads every page, checks each page's figures
against the API's JSON from the same server, and saves a screenshot of each page (copied
to ``$LINESIDE_SCREENSHOTS_DIR`` when set: ``bench/results/screenshots``). A second test
points the app at a database that is not there and expects the 503 page.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from psycopg import sql
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from central.api import ApiSettings, create_app
from central.dashboard import format as fmt
from central.reader import WarehouseReader
from gateway.core.clock import ManualClock
from sync.ingest.warehouse import PostgresWarehouse, SqliteWarehouse, Warehouse
from tests.support.browser import browser, screenshot, serving
from tests.support.gateway_tokens import token_for, tokens
from tests.support.line_shift import BATCH, START
from tests.support.ports import free_port
from tests.support.shift_store import write_shift
from tests.support.warehouse_fill import commit_outbox

pytestmark = pytest.mark.slow

PG_HOST, PG_PORT = "127.0.0.1", 5432
GATEWAYS = (("gw-oslo", "oslo"), ("gw-bergen", "bergen"))
READER = "central-team"
NOW = START + timedelta(hours=9)
"""The "now" of the server over a warehouse that is not there: an hour after the shift."""
AFTER_CONTACT = timedelta(minutes=5)
"""The server's "now" over the filled warehouse: this long after the newest last contact.
The warehouse stamps a gateway's last contact with its own clock (when the batch was
committed), so "now" is taken from it, never from the wall clock nor the shift's date: the
"since contact" figures are then the same on every run of the test."""


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A fresh database for this module (no skip: PostgreSQL must be there)."""
    name = f"lineside_dash_{secrets.token_hex(4)}"
    admin = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def warehouse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The warehouse (PostgreSQL, or the embedded SQLite file) holding both gateways'
    shifts; what ``WarehouseReader.open`` takes for it."""
    folder = tmp_path_factory.mktemp("stores")
    target: Warehouse
    if request.param == "postgres":
        where = str(request.getfixturevalue("pg_dsn"))
        target = PostgresWarehouse(where)
    else:
        where = str(folder / "warehouse.db")
        target = SqliteWarehouse(Path(where))

    async def fill() -> None:
        await target.open()
        try:
            for gateway, site in GATEWAYS:
                store = folder / f"{gateway}.db"
                await write_shift(store)
                assert await commit_outbox(store, target, gateway=gateway, site=site) > 0
        finally:
            await target.close()

    asyncio.run(fill())
    return where


def _settings(now: datetime = NOW) -> ApiSettings:
    return ApiSettings(tokens=tokens(READER), clock=ManualClock(int(now.timestamp() * 1e6)))


def _now(warehouse: str) -> datetime:
    """:data:`AFTER_CONTACT` after the newest last contact the warehouse recorded."""
    with WarehouseReader.open(warehouse) as reader:
        return max(row.last_contact for row in reader.fleet(now=NOW)) + AFTER_CONTACT


@pytest.fixture
def site_url(warehouse: str) -> Iterator[str]:
    """The app (API and dashboard) over the filled warehouse; its base URL."""
    app = create_app(lambda: WarehouseReader.open(warehouse), _settings(_now(warehouse)))
    with serving(app) as url:
        yield url


class Api:
    """The API's JSON, from the same server the browser reads."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(
            base_url=f"{base}/api/v1",
            headers={"authorization": f"Bearer {token_for(READER)}"},
            timeout=30,
        )

    def get(self, path: str, **params: str) -> Any:
        answer = self.client.get(path, params=params)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()


def _when(text: str | None) -> str:
    return fmt.when(None if text is None else datetime.fromisoformat(text))


def _figures(scope: Any) -> dict[str, str]:
    """The ``data-figure`` cells inside ``scope``, by name: the figures as shown."""
    return {
        cell.get_attribute("data-figure"): cell.text.strip()
        for cell in scope.find_elements(By.CSS_SELECTOR, "[data-figure]")
    }


_NEXT_PAGE_LOADED = (
    "return document.readyState === 'complete'"
    " && document.documentElement.getAttribute('data-left') !== arguments[0]"
)


def _click_and_load(driver: WebDriver, element: WebElement) -> None:
    """Click a link or a form's button and wait for the next page (a click does not wait:
    reading before the old page is gone would read the old page).

    The old page is marked and the wait is for a loaded page without the mark. Waiting for
    the old ``<html>`` element to go stale instead failed now and then: while the page is
    being replaced, chromedriver may answer the staleness probe with "unknown error: Node
    with given id does not belong to the document" instead of a stale-element error.
    """
    mark = secrets.token_hex(8)
    driver.execute_script("document.documentElement.setAttribute('data-left', arguments[0])", mark)
    element.click()

    def loaded(d: WebDriver) -> bool:
        try:
            return bool(d.execute_script(_NEXT_PAGE_LOADED, mark))
        except WebDriverException:  # asked mid-navigation: ask again
            return False

    WebDriverWait(driver, 30).until(loaded)


def _login(driver: WebDriver, base: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "token").send_keys(token_for(READER))
    _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))


def _check_fleet(driver: WebDriver, api: Api) -> None:
    fleet = api.get("/fleet")
    assert {row["gateway"] for row in fleet} == {gateway for gateway, _ in GATEWAYS}
    # "now" is AFTER_CONTACT after the newest contact: no age is negative.
    assert min(row["since_contact_s"] for row in fleet) == AFTER_CONTACT.total_seconds()
    assert all(row["since_contact_s"] >= 0 for row in fleet)
    for row in fleet:
        shown = _figures(
            driver.find_element(By.CSS_SELECTOR, f"tr[data-gateway='{row['gateway']}']")
        )
        assert shown == {
            "last_contact": _when(row["last_contact"]),
            "since_contact": fmt.age(row["since_contact_s"]),
            "sync_lag": fmt.duration(row["sync_lag_s"]),
            "backlog": fmt.count(row["backlog"]),
            "records": fmt.count(row["records"]),
            "active_alerts": fmt.count(row["active_alerts"]),
            "raised_24h": fmt.count(row["raised_24h"]),
            "per_10_min": fmt.number(row["per_10_min"], 2),
            "peak_10_min": fmt.count(row["peak_10_min"]),
            "flood_pct": fmt.number(row["flood_pct"], 1),
            "stale": fmt.count(row["stale"]),
        }
    for row in api.get("/sites"):
        shown = _figures(driver.find_element(By.CSS_SELECTOR, f"tr[data-site='{row['site']}']"))
        assert shown == {"gateways": fmt.count(row["gateways"]), "lines": fmt.count(row["lines"])}
    active = api.get("/alerts/active")
    rows = driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
    assert len(rows) == min(len(active), 25)
    if active:
        count = driver.find_element(By.CSS_SELECTOR, "#alerts-count [data-figure=active]")
        assert count.text == str(len(active))


def _check_site(driver: WebDriver, api: Api, site: str) -> None:
    lines = api.get("/lines", site=site)
    assert lines
    shown = [
        str(row.get_attribute("data-line"))
        for row in driver.find_elements(By.CSS_SELECTOR, "#lines tbody tr")
    ]
    assert sorted(shown) == sorted(f"{row['gateway']}/{row['line']}" for row in lines)
    runs = api.get("/runs", site=site)
    links = driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert len(links) == len(runs) > 0


def _summary_figures(summary: dict[str, Any]) -> dict[str, str]:
    return {
        "packs": fmt.count(summary["packs"]),
        "mean_g": fmt.number(summary["mean_g"], 1),
        "giveaway_pct": fmt.number(summary["giveaway_pct"], 2),
        "giveaway_kg": fmt.number(summary["giveaway_kg"], 3),
        "emark_verdict": fmt.verdict(summary["emark_verdict"]),
        "yield_pct": fmt.number(summary["yield_pct"], 1),
        "label_gaps": fmt.count(summary["label_gaps"]),
        "haccp_breaches": fmt.count(summary["haccp_breaches"]),
    }


def _check_line(driver: WebDriver, api: Api, gateway: str, line: str) -> list[str]:
    runs: list[dict[str, Any]] = api.get("/runs", gateway=gateway, line=line)
    assert runs
    for run in runs:
        summary = api.get(f"/runs/{quote(run['run_number'], safe='')}/summary", gateway=gateway)
        row = driver.find_element(By.CSS_SELECTOR, f"tr[data-run='{run['run_number']}']")
        assert _figures(row) == _summary_figures(summary)
    trend = driver.find_element(By.ID, "giveaway-trend")
    assert str(trend.get_attribute("src")).startswith("data:image/svg+xml;base64,")
    assert driver.execute_script("return arguments[0].naturalWidth", trend) > 0
    return [run["run_number"] for run in runs]


def _check_run(driver: WebDriver, api: Api, gateway: str, run: str) -> dict[str, Any]:
    """Check the run page; what its histograms hold against the packs the summary counts
    (judged at the end of the test, so every page is still loaded and pictured)."""
    path = f"/runs/{quote(run, safe='')}"
    summary = api.get(f"{path}/summary", gateway=gateway)
    cards = _figures(driver.find_element(By.ID, "kpis"))
    assert cards == {
        **_summary_figures(summary),
        "giveaway_g": fmt.number(summary["giveaway_g"], 2),
    }
    for product in summary["products"]:
        row = driver.find_element(By.CSS_SELECTOR, f"#products tr[data-plu='{product['plu']}']")
        assert _figures(row) == {
            "packs": fmt.count(product["packs"]),
            "mean_g": fmt.number(product["mean_g"], 1),
            "giveaway_g": fmt.number(product["giveaway_g"], 2),
        }
    weights = api.get(f"{path}/weights", gateway=gateway)
    histograms = driver.find_elements(By.CSS_SELECTOR, "img.histogram")
    assert len(histograms) == len(weights["products"]) > 0
    # Each histogram holds every accepted, certain pack of its product: the packs counted in
    # the summary (a chart with no bars for a product that packed would show nothing true).
    packs = {p["plu"]: p["packs"] for p in summary["products"]}
    charted = {p["plu"]: len(p["net_g"]) for p in weights["products"]}
    probes = api.get(f"{path}/temperatures", gateway=gateway)
    assert len(driver.find_elements(By.CSS_SELECTOR, "img.temperature")) == len(probes) > 0
    for image in histograms + driver.find_elements(By.CSS_SELECTOR, "img.temperature"):
        assert driver.execute_script("return arguments[0].naturalWidth", image) > 0
    checks = api.get(f"{path}/compliance", gateway=gateway)
    shown = {
        row.get_attribute("data-check"): row.find_element(
            By.CSS_SELECTOR, "[data-figure=passed]"
        ).text
        for row in driver.find_elements(By.CSS_SELECTOR, "#compliance tbody tr")
    }
    assert shown == {c["check"]: "pass" if c["passed"] else "FAIL" for c in checks}
    return {"charted": charted, "summary": packs}


def _check_trace(driver: WebDriver, api: Api, trace: dict[str, Any]) -> None:
    result = driver.find_element(By.ID, "trace-result")
    articles = result.find_elements(By.CSS_SELECTOR, "article.trace-run")
    assert len(articles) == len(trace["runs"]) > 0
    for article, run in zip(articles, trace["runs"], strict=True):
        assert (
            article.get_attribute("data-run")
            == f"{run['run']['gateway']}/{run['run']['run_number']}"
        )
        assert _figures(article) == {
            "packs": str(len(run["packs"])),
            "labels": str(len(run["labels"])),
            "temperatures": str(len(run["temperatures"])),
        }


def test_every_page_shows_the_apis_figures(site_url: str, tmp_path: Path) -> None:
    api = Api(site_url)
    shots = tmp_path / "screenshots"
    with api.client, browser() as driver:
        # Without a session a page sends the browser to the login form.
        driver.get(f"{site_url}/runs/{GATEWAYS[0][0]}/R1")
        assert driver.current_url == f"{site_url}/login"
        assert "unauthorized" not in driver.page_source
        _login(driver, site_url)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Fleet"
        _check_fleet(driver, api)
        screenshot(driver, shots, "01-fleet")

        gateway, site = GATEWAYS[0]
        _click_and_load(driver, driver.find_element(By.LINK_TEXT, site))
        _check_site(driver, api, site)
        screenshot(driver, shots, "02-site")

        line = api.get("/lines", site=site)[0]["line"]
        driver.get(f"{site_url}/sites/{site}/lines/{gateway}/{line}")
        runs = _check_line(driver, api, gateway, line)
        screenshot(driver, shots, "03-line")

        _click_and_load(driver, driver.find_element(By.LINK_TEXT, runs[0]))
        histograms = _check_run(driver, api, gateway, runs[0])
        screenshot(driver, shots, "04-run")

        driver.get(f"{site_url}/trace")
        driver.find_element(By.NAME, "batch").send_keys(BATCH)
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.search button"))
        by_batch = api.get(f"/trace/batch/{quote(BATCH, safe='')}")
        _check_trace(driver, api, by_batch)
        screenshot(driver, shots, "05-trace-batch")

        serial = next(
            label["serial"]
            for run in by_batch["runs"]
            for label in run["labels"]
            if label["serial"]
        )
        driver.get(f"{site_url}/trace?serial={quote(serial)}")
        _check_trace(driver, api, api.get(f"/trace/serial/{quote(serial, safe='')}"))
        screenshot(driver, shots, "06-trace-serial")

        driver.get(f"{site_url}/logout")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Log in"
        screenshot(driver, shots, "07-login")
    assert len(list(shots.glob("*.png"))) == 7
    assert histograms["charted"] == histograms["summary"], "a histogram misses packs"


def test_an_unreachable_warehouse_gives_the_503_page(tmp_path: Path) -> None:
    # Nothing listens on this port: every connection to the "warehouse" is refused.
    gone = f"postgresql://postgres@127.0.0.1:{free_port()}/warehouse?connect_timeout=2"
    app = create_app(lambda: WarehouseReader.open(gone), _settings())
    with serving(app) as url:
        plain = httpx.get(f"{url}/", headers={"authorization": f"Bearer {token_for(READER)}"})
        assert plain.status_code == 503
        assert plain.headers["retry-after"]
        assert "Warehouse unavailable" in plain.text
        assert "Traceback" not in plain.text
        assert "127.0.0.1" not in plain.text
        with browser() as driver:
            _login(driver, url)
            assert driver.find_element(By.TAG_NAME, "h1").text == "Warehouse unavailable"
            screenshot(driver, tmp_path / "screenshots", "08-warehouse-unavailable")
