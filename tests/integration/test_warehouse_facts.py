"""The typed warehouse written by live ingest, in real PostgreSQL and SQLite: every record's
fact row holds its payload's values typed; duplicates, conflicts and invalid records add no
fact; the current state (alerts_current, runs) is right whatever order batches arrive in;
the dimensions follow the records and the announced names (docs/warehouse-schema.md)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.ingest.warehouse import PostgresWarehouse, SqliteWarehouse, Warehouse
from sync.protocol import Batch
from tests.support.warehouse_data import (
    GW,
    SITE,
    TODAY,
    alert,
    batch,
    device_event,
    emark_batch,
    empty_typed_tables,
    fresh_database,
    label_scan,
    names_event,
    pack,
    rejected_input,
    rows,
    run_version,
    temperature,
)
from tests.support.warehouse_typed import expected_fact, moment, typed_rows


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A fresh database for this module (no skip: PostgreSQL must be there)."""
    with fresh_database("lineside_facts") as dsn:
        yield dsn


def _open(kind: str, pg_dsn: str, tmp_path: Path) -> Warehouse:
    warehouse: Warehouse
    if kind == "postgres":
        warehouse = PostgresWarehouse(pg_dsn, today=lambda: TODAY)
    else:
        warehouse = SqliteWarehouse(tmp_path / "warehouse.db")
    asyncio.run(warehouse.open())
    empty_typed_tables(warehouse)
    return warehouse


@pytest.fixture(params=["postgres", "sqlite"])
def warehouse(request: pytest.FixtureRequest, pg_dsn: str, tmp_path: Path) -> Iterator[Warehouse]:
    """Each warehouse, empty; used from synchronous tests (its work runs on its own thread)."""
    opened = _open(request.param, pg_dsn, tmp_path)
    yield opened
    asyncio.run(opened.close())


def commit(warehouse: Warehouse, *batches: Batch) -> None:
    for one in batches:
        asyncio.run(warehouse.commit_batch(one))


# --------------------------------------------------------------------------------------
# Every stream: the fact equals the payload, typed (property-style over the record types)

# No NUL, no lone surrogate: refused as invalid (see the test after the property).
_chars = st.characters(blacklist_categories=("Cs", "Cc"))
_text = st.text(_chars, min_size=1, max_size=12)
_weight = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
_maybe_weight = st.none() | _weight
_flags = st.integers(min_value=0, max_value=15)
_when = st.integers(min_value=0, max_value=4_102_444_800_000_000)  # 1970 .. 2100
_decimal = st.decimals(min_value=-10_000, max_value=10_000, places=3, allow_nan=False).map(str)
_day = st.dates().map(lambda d: d.isoformat()) | st.sampled_from(["261212", "2026-13-01", ""])
_json = st.dictionaries(
    st.text(_chars, max_size=5), st.integers() | st.text(_chars, max_size=5), max_size=3
)


def _records() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(stream, payload) of every stream, their typed fields drawn."""
    return st.one_of(
        st.builds(
            lambda ts, net, gross, flags, acc, cw, run: (
                "packs",
                pack(0, ts_us=ts, net_g=net, gross_g=gross, flags=flags, accepted=acc)
                | {"catch_weight": cw, "run_number": run},
            ),
            _when,
            _weight,
            _maybe_weight,
            _flags,
            st.sampled_from([None, 0, 1]),
            st.sampled_from([None, 0, 1]),
            st.none() | _text,
        ),
        st.builds(
            lambda ts, c, flags, loc: (
                "temperatures",
                temperature(0, ts_us=ts, celsius=c, flags=flags, location=loc),
            ),
            _when,
            st.floats(min_value=-200, max_value=1000, allow_nan=False),
            _flags,
            st.text(_chars, max_size=8),
        ),
        st.builds(
            lambda ts, use_by, pack_date, parsed, net: (
                "label_scans",
                label_scan(
                    0,
                    ts_us=ts,
                    use_by=use_by,
                    pack_date=pack_date,
                    parsed=json.dumps(parsed),
                    net_weight_g=net,
                ),
            ),
            _when,
            st.none() | _day,
            st.none() | _day,
            _json,
            _maybe_weight,
        ),
        st.builds(
            lambda ts, detail, kind: (
                "device_events",
                device_event(0, ts_us=ts, detail=json.dumps(detail), kind=kind),
            ),
            _when,
            _json,
            _text,
        ),
        st.builds(
            lambda ts, raw, serial: (
                "rejected_inputs",
                rejected_input(0, ts_us=ts, raw=raw, serial=serial),
            ),
            _when,
            st.text(_chars, max_size=10),
            st.none() | _text,
        ),
        st.builds(
            lambda ts, state, detail: (
                "alerts",
                alert(0, state, ts_us=ts, detail=json.dumps(detail)),
            ),
            _when,
            st.sampled_from(["raised", "updated", "acknowledged", "cleared"]),
            _json,
        ),
        st.builds(
            lambda ts, plus, codes: (
                "run_versions",
                run_version(0, "R9", plus, codes) | {"ts_us": ts},
            ),
            _when,
            st.lists(_text, max_size=3),
            st.lists(_text, max_size=3),
        ),
        st.builds(
            lambda ts, qn, mean, n: (
                "emark_batches",
                emark_batch(0, ts_us=ts, qn_g=qn, mean_g=mean, n=n),
            ),
            _when,
            _decimal,
            _decimal,
            st.integers(min_value=0, max_value=2**31 - 1),
        ),
    )


@settings(
    max_examples=60,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(record=_records())
def test_every_fact_row_holds_its_payload_typed(
    warehouse: Warehouse, record: tuple[str, dict[str, Any]]
) -> None:
    stream, payload = record
    seq = next(_SEQS)
    commit(warehouse, batch(stream, (seq, payload)))
    [stored] = typed_rows(warehouse, stream, skip=("received_at",), where=f"WHERE seq = {seq}")
    assert stored == expected_fact(stream, GW, SITE, seq, payload)


_SEQS = itertools.count(1)


def test_json_text_that_jsonb_would_refuse_is_an_invalid_record(warehouse: Warehouse) -> None:
    nul = device_event(1, detail=json.dumps({"a": "\x00"}))
    surrogate = device_event(2, detail='{"a": "\\ud800"}')
    commit(warehouse, batch("device_events", (1, nul), (2, surrogate)))
    assert typed_rows(warehouse, "device_events") == []
    reasons = [r[0] for r in rows(warehouse, "SELECT reason FROM conflicts ORDER BY seq")]
    assert reasons == [
        "invalid record: detail holds a NUL character",
        reasons[1],
    ]
    assert reasons[1].startswith("invalid record: detail is not storable JSON")


# --------------------------------------------------------------------------------------
# Only records actually inserted get a fact


def test_duplicates_conflicts_and_invalid_records_add_no_fact(warehouse: Warehouse) -> None:
    commit(warehouse, batch("packs", (1, pack(1)), (2, pack(2))))
    commit(warehouse, batch("packs", (1, pack(1)), (2, pack(2))))  # a redelivery
    commit(warehouse, batch("packs", (2, pack(2, net_g=999.0))))  # id reuse: a conflict
    # flags over 32 bits: the gateway's column holds it, the typed table cannot.
    commit(warehouse, batch("packs", (3, pack(3, flags=2**40))))
    facts = typed_rows(warehouse, "packs", skip=("received_at",))
    assert [(f["seq"], f["net_g"]) for f in facts] == [(1, 251.5), (2, 251.5)]
    assert [r[0] for r in rows(warehouse, "SELECT seq FROM records ORDER BY seq")] == [1, 2]
    reasons = dict(rows(warehouse, "SELECT seq, reason FROM conflicts ORDER BY seq"))
    assert reasons[2] == "same sequence, different payload"
    assert reasons[3].startswith("invalid record: flags")
    assert rows(warehouse, "SELECT last_seq, records FROM gateways") == [(2, 2)]


# --------------------------------------------------------------------------------------
# Current state, whatever the order of arrival


ALERT_LIFE = [(11, "raised"), (12, "updated"), (13, "acknowledged"), (14, "cleared")]


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 0, 1]])
def test_alerts_current_is_the_newest_transition_in_any_order(
    warehouse: Warehouse, order: list[int]
) -> None:
    for index in order:
        seq, state = ALERT_LIFE[index]
        commit(warehouse, batch("alerts", (seq, alert(seq, state))))
        if index == order[0] == 0:  # raised only: active
            [first] = typed_rows(warehouse, "alerts_current")
            assert (first["state"], first["active"]) == ("raised", True)
    [current] = typed_rows(warehouse, "alerts_current")
    assert current == {
        "gateway": GW,
        "alert_id": "haccp.L1.core",
        "seq": 14,
        "site": SITE,
        "rule": "haccp",
        "subject": "core",
        "line": "L1",
        "severity": "critical",
        "state": "cleared",
        "message": "core temperature cleared",
        "ts": moment(alert(14, "cleared")["ts_us"]),
        "ts_us": alert(14, "cleared")["ts_us"],
        "raised_at": moment(alert(11, "raised")["ts_us"]),
        "active": False,
    }


def test_an_acknowledged_alert_is_still_active(warehouse: Warehouse) -> None:
    commit(warehouse, batch("alerts", (2, alert(2, "acknowledged")), (1, alert(1, "raised"))))
    [current] = typed_rows(warehouse, "alerts_current")
    assert (current["seq"], current["state"], current["active"]) == (2, "acknowledged", True)


@pytest.mark.parametrize("newest_first", [True, False])
def test_runs_follow_the_newest_version_in_any_order(
    warehouse: Warehouse, newest_first: bool
) -> None:
    old = batch("run_versions", (5, run_version(5, "R1001", ["1111"], ["OLD"])))
    new = batch("run_versions", (10, run_version(10, "R1001", ["1234", "5678"], ["B42", "B43"])))
    commit(warehouse, *([new, old] if newest_first else [old, new]))
    [run] = typed_rows(warehouse, "runs")
    assert run["seq"] == 10
    assert run["raw_material_kg"] == Decimal("1200.5")
    assert run["description"] == "run R1001"
    assert run["planned_start"] == moment(0).replace(year=2026, month=12, day=2, hour=6)
    assert run["payload"]["products"][0]["plu"] == "1234"
    products = typed_rows(warehouse, "run_products")
    assert [(p["plu"], p["nominal_g"], p["catch_weight"]) for p in products] == [
        ("1234", Decimal("250"), False),
        ("5678", Decimal("250"), False),
    ]
    codes = rows(warehouse, "SELECT batch_code FROM run_batch_codes ORDER BY batch_code")
    assert codes == [("B42",), ("B43",)]


# --------------------------------------------------------------------------------------
# Dimensions


def test_dimensions_follow_the_records_and_the_newest_names(warehouse: Warehouse) -> None:
    commit(
        warehouse,
        batch("packs", (1, pack(1)), (2, pack(2, line="L2"))),
        batch("device_events", (9, names_event(9, "Hull", {"L1": "Fillet", "L2": "Portions"}))),
        # An older announcement arriving late changes nothing.
        batch("device_events", (4, names_event(4, "Old name", {"L1": "Old"}))),
        batch("temperatures", (3, temperature(3, line="L3"))),
    )
    assert rows(warehouse, "SELECT site, name FROM sites") == [(SITE, "Hull")]
    assert rows(warehouse, "SELECT gateway, site, last_seq, records FROM gateways") == [
        (GW, SITE, 9, 5)
    ]
    assert rows(warehouse, "SELECT gateway, line, site, name FROM lines ORDER BY line") == [
        (GW, "L1", SITE, "Fillet"),
        (GW, "L2", SITE, "Portions"),
        (GW, "L3", SITE, None),
    ]
    # A rename: the newest announcement wins; a line no longer named loses its name.
    commit(warehouse, batch("device_events", (20, names_event(20, None, {"L2": "Trim"}))))
    assert rows(warehouse, "SELECT name FROM sites") == [(None,)]
    assert rows(warehouse, "SELECT line, name FROM lines ORDER BY line") == [
        ("L1", None),
        ("L2", "Trim"),
        ("L3", None),
    ]


def test_a_names_event_with_garbage_is_applied_only_where_it_makes_sense(
    warehouse: Warehouse,
) -> None:
    detail = json.dumps({"site_name": 42, "lines": {"L1": ["x"], "L2": " Packing ", "L3": ""}})
    commit(
        warehouse,
        batch("device_events", (1, device_event(1, kind="names", line=None, detail=detail))),
    )
    assert rows(warehouse, "SELECT name FROM sites") == [(None,)]
    assert rows(warehouse, "SELECT line, name FROM lines ORDER BY line") == [("L2", "Packing")]
