"""The store's IN-list CHECK constraints, rewritten as OR-ed comparisons at open
(gateway/store/check_rewrite.py): every INSERT runs without a temporary index per row, the
rewrite keeps every row and refuses what the old constraints refused, and a store that
cannot be rewritten opens as before."""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from gateway.config import StoreSection
from gateway.core.clock import ManualClock
from gateway.store import Store
from gateway.store.batch_insert import _INSERT_OUTBOX, _UPSERT_RUN
from gateway.store.check_rewrite import REWRITES, rewrite_in_list_checks, rewritten
from gateway.store.database import split_sql
from gateway.store.record_tables import RECORD_TABLES
from gateway.store.schema import MIGRATIONS, SCHEMA_VERSION

_IN_LIST = re.compile(r"\bIN\s*\(", re.IGNORECASE)

_VALUES: tuple[object, ...] = (
    None,
    -1,
    0,
    1,
    2,
    3,
    "erp",
    "ERP",
    "operator",
    "critical",
    "major",
    "warning",
    "pass",
    "fail",
    "device",
    "label",
    "nominal",
    "only_product",
    "x",
    "",
)


def _stored_tables(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name): str(sql) for name, sql in rows}


def _schema_four_store(path: Path) -> None:
    """A store as the migrations before the rewrite left it, with a row in every table whose
    CHECKs are rewritten."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for script in MIGRATIONS:
        db.execute("BEGIN")
        for statement in split_sql(script):
            db.execute(statement)
        db.execute("COMMIT")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    db.executescript(
        """
        INSERT INTO runs (run_number, seq, line, status, source, provisional, payload,
            updated_us) VALUES ('R1', 1, 'L1', 'running', 'erp', 1, '{}', 1);
        INSERT INTO run_versions (seq, ts_us, run_number, line, status, source, provisional,
            payload) VALUES (1, 1, 'R1', 'L1', 'running', 'operator', 0, '{}');
        INSERT INTO packs (seq, ts_us, line, device, net_g, accepted, catch_weight,
            product_source) VALUES (2, 2, 'L1', 'cw1', 240.5, 1, 0, 'label');
        INSERT INTO alerts (seq, ts_us, alert_id, rule, subject, severity, state, message)
            VALUES (3, 3, 'a', 'r', 's', 'major', 'raised', 'm');
        INSERT INTO emark_batches (seq, ts_us, line, run_number, plu, qn_g, tne_g, t1_g, t2_g,
            start_us, end_us, n, mean_g, sd_g, below_t1, below_t2, verdict)
            VALUES (4, 4, 'L1', 'R1', 'P1', '240', '9', '231', '222', 1, 4, 1, '240', '0', 0, 0,
            'pass');
        INSERT INTO outbox (seq, stream, priority, enqueued_us) VALUES
            (1, 'run_versions', 1, 1), (2, 'packs', 1, 1), (3, 'alerts', 0, 1),
            (4, 'emark_batches', 1, 1);
        """
    )
    db.close()


def test_every_in_list_of_the_migrations_is_rewritten() -> None:
    # A new migration with an IN list in a CHECK fails here until REWRITES covers it.
    db = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        db.executescript(script)
    tables = {str(n): str(s) for n, s in db.execute("SELECT name, sql FROM sqlite_master")}
    covered = 0
    for name, sql in tables.items():
        after = rewritten(name, sql)
        assert not _IN_LIST.search(after), (name, after)
        covered += after != sql
    assert covered == len(REWRITES)


@pytest.mark.parametrize(
    ("table", "old", "new"),
    [(table, old, new) for table, pairs in REWRITES.items() for old, new in pairs],
)
def test_each_rewrite_judges_every_value_as_the_in_list_did(table: str, old: str, new: str) -> None:
    column = old.split(maxsplit=1)[0]
    assert new.split(maxsplit=1)[0] == column, table
    db = sqlite3.connect(":memory:")
    for value in _VALUES:
        # As a CHECK reads them: NULL passes, 0 fails. IS compares NULLs too.
        same, verdict = db.execute(
            f"WITH t({column}) AS (VALUES (?)) SELECT ({old}) IS ({new}), ({new}) FROM t",
            (value,),
        ).fetchone()
        assert same == 1, (table, old, value, verdict)


async def test_a_new_store_inserts_every_record_without_a_temporary_index(
    store_config: StoreSection,
) -> None:
    async with Store(store_config, ManualClock()):
        pass
    tables = _stored_tables(store_config.path)
    for name in REWRITES:
        assert not _IN_LIST.search(tables[name]), tables[name]
    db = sqlite3.connect(store_config.path)
    statements = [(spec.insert_sql, len(spec.columns) + 1) for spec in RECORD_TABLES.values()] + [
        (_INSERT_OUTBOX, 4),
        (_UPSERT_RUN, 8),
    ]
    for sql, marks in statements:
        program = [row[1] for row in db.execute(f"EXPLAIN {sql}", [None] * marks)]
        assert "Insert" in program or "IdxInsert" in program, sql
        assert "OpenEphemeral" not in program, sql
    db.close()


async def test_a_store_of_the_old_schema_is_rewritten_and_keeps_every_row(
    store_config: StoreSection,
) -> None:
    _schema_four_store(store_config.path)
    before = _stored_tables(store_config.path)
    assert all(_IN_LIST.search(before[name]) for name in REWRITES)
    with sqlite3.connect(store_config.path) as db:
        rows_before = {
            name: db.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall() for name in REWRITES
        }
    async with Store(store_config, ManualClock()) as store:
        assert (await store.fetchall("PRAGMA quick_check"))[0][0] == "ok"
        for name, rows in rows_before.items():
            assert await store.fetchall(f"SELECT * FROM {name} ORDER BY 1") == rows
            assert rows, name
    after = _stored_tables(store_config.path)
    for name in REWRITES:
        assert after[name] == rewritten(name, before[name])
        assert not _IN_LIST.search(after[name])
    # Opened again: nothing left to rewrite.
    async with aiosqlite.connect(store_config.path) as db:
        assert await rewrite_in_list_checks(db) == []


_REFUSED = [
    "INSERT INTO outbox (seq, stream, priority, enqueued_us) VALUES (9, 'packs', 3, 1)",
    "INSERT INTO outbox (seq, stream, priority, enqueued_us) VALUES (9, 'packs', -1, 1)",
    "INSERT INTO packs (seq, ts_us, line, device, net_g, accepted) VALUES (9, 1, 'L', 'd', 1, 2)",
    "INSERT INTO packs (seq, ts_us, line, device, net_g, catch_weight) "
    "VALUES (9, 1, 'L', 'd', 1, 2)",
    "INSERT INTO packs (seq, ts_us, line, device, net_g, product_source) "
    "VALUES (9, 1, 'L', 'd', 1, 'Label')",
    "INSERT INTO alerts (seq, ts_us, alert_id, rule, subject, severity, state, message) "
    "VALUES (9, 1, 'a', 'r', 's', 'minor', 'raised', 'm')",
    "INSERT INTO run_versions (seq, ts_us, run_number, line, status, source, payload) "
    "VALUES (9, 1, 'R', 'L', 'running', 'ERP', '{}')",
    "INSERT INTO run_versions (seq, ts_us, run_number, line, status, source, provisional, "
    "payload) VALUES (9, 1, 'R', 'L', 'running', 'erp', 2, '{}')",
    "INSERT INTO runs (run_number, seq, line, status, source, provisional, payload, updated_us) "
    "VALUES ('R9', 9, 'L', 'running', 'erp', 5, '{}', 1)",
    "INSERT INTO emark_batches (seq, ts_us, line, run_number, plu, qn_g, tne_g, t1_g, t2_g, "
    "start_us, end_us, n, mean_g, sd_g, below_t1, below_t2, verdict) VALUES (9, 1, 'L', 'R', "
    "'P', '1', '1', '1', '1', 1, 1, 1, '1', '0', 0, 0, 'ok')",
]


@pytest.mark.parametrize("migrated", [False, True], ids=["new", "migrated"])
async def test_the_rewritten_constraints_refuse_what_the_old_ones_refused(
    store_config: StoreSection, migrated: bool
) -> None:
    if migrated:
        _schema_four_store(store_config.path)
    async with Store(store_config, ManualClock()) as store:
        for sql in _REFUSED:
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                await store.write_in_transaction([(sql, ())])
        # And what they allowed, each allowed value of each list.
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "INSERT INTO outbox (seq, stream, priority, enqueued_us) VALUES (?, 'packs', ?, 1)",
                (100 + priority, priority),
            )
            for priority in (0, 1, 2)
        ]
        for n, (accepted, catch, source) in enumerate(
            itertools.product(
                (None, 0, 1), (None, 0, 1), (None, "device", "label", "nominal", "only_product")
            )
        ):
            statements.append(
                (
                    "INSERT INTO packs (seq, ts_us, line, device, net_g, accepted, catch_weight, "
                    "product_source) VALUES (?, 1, 'L', 'd', 1, ?, ?, ?)",
                    (200 + n, accepted, catch, source),
                )
            )
        await store.write_in_transaction(statements)
        assert (await store.fetchall("SELECT count(*) FROM packs WHERE seq >= 200"))[0][0] == 45


async def test_a_store_sqlite_will_not_let_rewrite_keeps_its_constraints(tmp_path: Path) -> None:
    # A read-only connection stands for a SQLite that refuses the change: the refusal is
    # logged, the schema stays as it was, and the connection is usable.
    path = tmp_path / "old.db"
    _schema_four_store(path)
    before = _stored_tables(path)
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert await rewrite_in_list_checks(db) == []
        assert not db.in_transaction
        async with db.execute("SELECT count(*) FROM packs") as cursor:
            assert (await cursor.fetchone()) == (1,)
    assert _stored_tables(path) == before
