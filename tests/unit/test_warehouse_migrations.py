"""The warehouse's migrations and the typed rows agree: the revisions chain in order, and
the columns the writers fill are the columns the migration makes (docs/warehouse-schema.md)."""

from __future__ import annotations

import pytest

from sync.ingest.fact_state import PRODUCT_COLUMNS, RUN_COLUMNS, parse_names, run_state
from sync.ingest.facts import (
    FACT_HEAD,
    FACT_TABLES,
    PARTITIONED_FACTS,
    FactError,
    build_fact,
    iso_date,
)
from sync.ingest.migrations import head_revision
from sync.ingest.migrations.runner import script_directory
from sync.ingest.migrations.typed_ddl import FACTS, TABLES
from tests.support.warehouse_data import GW, SITE, emark_batch, pack, run_version


def _names(table: str) -> list[str]:
    [found] = [t for t in TABLES if t.name == table]
    return [c.partition(" ")[0] for c in found.columns]


def test_the_revisions_chain_from_the_baseline_to_the_head() -> None:
    script = script_directory()
    chain = [r.revision for r in script.walk_revisions("base", "heads")]
    assert chain == [
        "0005_gateway_backlog",
        "0004_pack_products",
        "0003_analytics",
        "0002_typed_facts",
        "0001_baseline",
    ]
    assert head_revision() == "0005_gateway_backlog"


def test_the_fact_writers_fill_the_tables_the_migration_makes() -> None:
    assert set(FACT_TABLES) == {t.name for t in FACTS}
    for stream, table in FACT_TABLES.items():
        assert [*FACT_HEAD, "received_at", *table.columns] == _names(stream), stream
    assert {t.name for t in FACTS if t.partitioned} == PARTITIONED_FACTS
    assert list(RUN_COLUMNS) == _names("runs")
    assert list(PRODUCT_COLUMNS) == _names("run_products")


@pytest.mark.parametrize(
    ("stream", "payload", "problem"),
    [
        ("packs", pack(1, flags=2**31), "flags 2147483648 does not fit a 32-bit integer"),
        ("packs", pack(1, ts_us=2**62), "is outside the calendar"),
        ("emark_batches", emark_batch(1, qn_g="NaN"), "is not a finite decimal number"),
        ("emark_batches", emark_batch(1, sd_g="1,5"), "is not a decimal number"),
        ("emark_batches", emark_batch(1, reasons="[NaN]"), "reasons is not storable JSON"),
        ("packs", {"ts_us": 1}, "not a packs record"),
    ],
)
def test_values_a_typed_table_cannot_hold_are_refused(
    stream: str, payload: dict[str, object], problem: str
) -> None:
    with pytest.raises(FactError, match=problem.replace("(", r"\(")):
        build_fact(stream, GW, SITE, 1, payload)


def test_dates_are_dates_only_when_the_text_is_one() -> None:
    assert iso_date("2026-12-05") is not None
    assert [iso_date(t) for t in ("261205", "2026-02-30", "2026-1-5", None)] == [None] * 4


def test_a_run_payload_of_the_wrong_shape_reads_as_nulls() -> None:
    record = run_version(1, "R1", [], []) | {"payload": '{"products": "x", "pack_date": 7}'}
    state = run_state(build_fact("run_versions", GW, SITE, 1, record))
    assert state.products == ()
    assert state.batch_codes == ()
    row = dict(zip(RUN_COLUMNS, state.row, strict=True))
    assert (row["description"], row["pack_date"], row["shelf_life_adjust"]) == ("", None, 0)


def test_names_are_read_defensively() -> None:
    assert parse_names("not json").lines == {}
    names = parse_names({"site_name": "  Hull  ", "lines": {"L1": "x" * 500, "L2": 3}})
    assert names.site_name == "Hull"
    assert names.lines == {"L1": "x" * 200}
