"""Issue 15: labels printed while the scanner was offline are flagged as a gap naming the
outage, and that gap does not overwrite an earlier one.

The project's scanner simulator on loopback feeds the real scanner adapter, whose reads and
link events go through the gateway's pipeline (run join, rules engine) into a real store.
The labeller skips three numbers once (a gap of its own); later the scanner goes away while
the line keeps labelling, and comes back. The stored alerts must hold two label gaps, each
its own alert: the first unchanged, the second naming the scanner's outage, with the times
of the stored link events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.erp.simulator import ErpSimulator
from adapters.scanner import ScannerAdapter
from adapters.simulators import ScannerSimulator
from adapters.simulators.scenario import LineSpec
from gateway.config import RulesSection, ScannerTcpDevice, StoreSection
from gateway.core.clock import SystemClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.link import LinkState
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier
from gateway.pipeline import Pipeline
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex
from gateway.store import Store
from tests.support.running_gateway import gateway_in_process
from tests.support.waiting import wait_for, wait_for_value

NOW = datetime.now(UTC)
PACK_DATE = NOW.date()
GTIN = "0" + "501234500001" + str(gtin_check_digit("0501234500001"))
BATCH = "B2611-SAL-07"
RUN = ProductionRun(
    run_number="R100",
    line="L1",
    batch_codes=(BATCH,),
    description="ATLANTIC SALMON FILLETS",
    species="salmon",
    product_type="fillet",
    products=(
        Product(
            plu="41240",
            description="PREMIUM SALMON 240G",
            nominal_g=Decimal(240),
            tier=Tier.PREMIUM,
            gtin=GTIN,
        ),
    ),
    raw_material_kg=Decimal(500),
    pack_date=PACK_DATE,
    shelf_life_adjust=0,
    planned_start=NOW - timedelta(hours=1),
    planned_end=NOW + timedelta(hours=8),
    actual_start=NOW - timedelta(hours=1),
    actual_end=None,
    status=RunStatus.RUNNING,
    updated=NOW,
)
DEVICE = ScannerTcpDevice(
    id="scan1",
    kind="scanner_tcp",
    line="L1",
    role="label_scanner",
    host="127.0.0.1",
    port=1,
    reconnect_min_s=0.05,
    reconnect_max_s=0.2,
)


def label(n: int) -> bytes:
    """Label number ``n`` as the run's labeller prints it (batch, dates and weight right)."""
    return encode_element_string(
        [
            ("01", GTIN),
            ("10", BATCH),
            ("13", PACK_DATE.strftime("%y%m%d")),
            ("17", (PACK_DATE + timedelta(days=9)).strftime("%y%m%d")),
            ("21", str(n)),
            ("3103", "000240"),
        ]
    ).encode()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(
        StoreSection(path=tmp_path / "gaps.db", commit_interval_ms=10), SystemClock()
    ) as s:
        committer = asyncio.create_task(s.run_committer())
        yield s
        await s.stop_committer()
        await committer


async def gap_alerts(store: Store) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    rows = await store.fetchall(
        "SELECT alert_id, state, subject, message, detail FROM alerts"
        " WHERE rule = 'label_gap' ORDER BY seq"
    )
    return [(a, s, subject, m, json.loads(d)) for a, s, subject, m, d in rows]


async def test_a_scanner_outage_gap_is_its_own_alert_naming_the_outage(store: Store) -> None:
    index = RunIndex([RUN])
    engine = RulesEngine(RulesSection(), index, SystemClock())
    pipeline = Pipeline(store, index, rules=engine)

    async with ScannerSimulator(drive=False) as scanner:
        device = DEVICE.model_copy(update={"port": scanner.port})
        adapter = ScannerAdapter(device, pipeline, SystemClock())
        task = asyncio.create_task(adapter.run())
        try:
            await wait_for(lambda: adapter.state is LinkState.UP)
            await scanner.wait_for_clients(1)
            # The labeller skips 6, 7 and 8 once; the reorder window (3) passes.
            for n in [1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14]:
                await scanner.send_read(label(n))
            await wait_for_value(
                lambda: gap_alerts(store), lambda a: len(a) >= 1, what="the labeller's gap"
            )

            await scanner.stop()
            await wait_for(lambda: adapter.state is LinkState.DOWN)
            # The line labels 15..40 meanwhile; nobody reads them.
            attempts = adapter.connect_attempts
            await wait_for(lambda: adapter.connect_attempts >= attempts + 2)
            await scanner.start()
            await wait_for(lambda: adapter.state is LinkState.UP)
            await scanner.wait_for_clients(1)
            for n in range(41, 47):
                await scanner.send_read(label(n))
            found = await wait_for_value(
                lambda: gap_alerts(store), lambda a: len(a) >= 2, what="the outage's gap"
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    (first_id, first_state, first_subject, first_message, first_detail), second = found
    assert (first_state, first_subject) == ("raised", "scan1/R100/6")
    assert first_message == "scan1/R100: label numbers 6, 7, 8 missing"
    assert first_detail["missing"] == [6, 7, 8]
    assert first_detail["likely_cause"] is None

    second_id, second_state, second_subject, second_message, second_detail = second
    assert second_id != first_id
    assert (second_state, second_subject) == ("raised", "scan1/R100/15")
    assert second_message.startswith(
        "scan1/R100: label numbers 15–40 missing: printed while scanner scan1 was offline "
    )
    assert second_message.endswith(" UTC, not scanned")
    assert second_detail["missing_ranges"] == [[15, 40]]
    cause = second_detail["likely_cause"]
    assert (cause["kind"], cause["device"]) == ("device_offline", "scan1")
    events = await store.fetchall(
        "SELECT kind, ts_us FROM device_events WHERE device = 'scan1' ORDER BY seq"
    )
    down = next(ts for kind, ts in events if kind == "link_down")
    up = [ts for kind, ts in events if kind == "link_up"][-1]
    assert (cause["start_us"], cause["end_us"]) == (down, up)

    # Nothing else was wrong with the labels, and the earlier gap's alert never changed.
    rules = {r for (r,) in await store.fetchall("SELECT DISTINCT rule FROM alerts")}
    assert rules == {"label_gap"}
    assert [a for a in await gap_alerts(store) if a[0] == first_id] == [found[0]]
    active = {a.subject: a.message for a in engine.book.active("L1")}
    assert active == {first_subject: first_message, second_subject: second_message}


def gateway_config(db: Path, erp: str, scanner_port: int) -> str:
    return f"""
[gateway]
id = "gw-gaps"
site = "test"
log_format = "plain"
log_level = "warning"

[store]
path = "{db}"
commit_interval_ms = 20

[[lines]]
id = "L1"

[erp]
kind = "http"
url = "{erp}"
poll_interval_s = 1

[[devices]]
id = "scan1"
kind = "scanner_tcp"
line = "L1"
role = "label_scanner"
host = "127.0.0.1"
port = {scanner_port}
reconnect_min_s = 0.05
reconnect_max_s = 0.2

[rules]
label_reorder_window = 3
"""


def erp_label(n: int) -> bytes:
    """Label ``n`` of the simulated ERP's run on L1 (its CW1 product and batch code)."""
    line = LineSpec()
    return encode_element_string(
        [
            ("01", line.checkweigher("CW1").gtin),
            ("10", line.batch_code),
            ("21", str(n)),
        ]
    ).encode()


async def stored(db: Path, sql: str) -> list[tuple[Any, ...]]:
    def query() -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
            return conn.execute(sql).fetchall()

    return await asyncio.to_thread(query)


@pytest.mark.parametrize("how", ["planned stop", "restart"])
async def test_labels_printed_while_the_gateway_was_down_are_a_gap_naming_it(
    tmp_path: Path, how: str
) -> None:
    """The gateway stops (SIGTERM's path, or a crash: no ``gateway_stopped`` event) while
    the line labels 11..30; after the start the replayed label window sees the jump."""
    db = tmp_path / "lineside.db"
    config = tmp_path / "lineside.toml"
    async with ErpSimulator() as erp, ScannerSimulator(drive=False) as scanner:
        config.write_text(gateway_config(db, erp.url, scanner.port))
        async with gateway_in_process(config):
            await scanner.wait_for_clients(1)
            for n in range(1, 11):
                await scanner.send_read(erp_label(n))
            await wait_for_value(
                lambda: stored(db, "SELECT count(*) FROM label_scans"),
                lambda rows: rows[0][0] == 10,
                what="10 label scans stored",
            )
        if how == "restart":
            # A crash leaves no gateway_stopped event: remove the one the stop wrote.
            with contextlib.closing(sqlite3.connect(db)) as conn, conn:
                conn.execute("DELETE FROM device_events WHERE kind = 'gateway_stopped'")
        async with gateway_in_process(config):
            await scanner.wait_for_clients(1)
            for n in range(31, 37):
                await scanner.send_read(erp_label(n))
            gaps = await wait_for_value(
                lambda: stored(
                    db, "SELECT message, detail FROM alerts WHERE rule = 'label_gap' ORDER BY seq"
                ),
                lambda rows: len(rows) >= 1,
                what="the gap alert",
            )
    ((message, detail),) = gaps
    assert "the gateway was down" in message, message
    assert f"({how})" in message, message
    cause = json.loads(detail)["likely_cause"]
    assert cause["kind"] == "gateway_down"
    assert cause["planned"] is (how == "planned stop")
    assert json.loads(detail)["missing_ranges"] == [[11, 30]]
