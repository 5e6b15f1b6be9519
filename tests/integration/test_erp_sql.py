"""The ERP's SQL source against a real PostgreSQL: guards, incremental reads, read-only proof.

No mocks: a fresh database and a read-only role are created per module on the local
PostgreSQL (127.0.0.1:5432, superuser ``postgres``, trust auth) and dropped afterwards.
The guard tables are pure and need no database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow
from pydantic import SecretStr

from adapters.erp.sql_guard import check_login, check_query, render_query, watermark_column
from adapters.erp.sql_source import PsycopgDriver, SqlErpSource
from gateway.config import SqlErp
from gateway.core.errors import ErpError, ErpRefused, ErpUnavailable
from gateway.core.runs import ProductionRun, RunRejection
from tests.support.ports import free_port

HOST, PORT = "127.0.0.1", 5432
LONDON = ZoneInfo("Europe/London")

# Mixed like a legacy ERP: quoted mixed-case columns, and plain Line/Status, which
# PostgreSQL folds to line/status (parse_run matches keys case-insensitively).
COLUMNS = (
    '"RunNumber", Line, "BatchCode", "Description", "PackDate", "ShelfLifeAdjust", '
    '"RawMaterialKg", Status, "Updated"'
)
QUERY = (
    f'SELECT {COLUMNS} FROM "RunNumber" '
    # The LIKE proves '%' survives the translation to psycopg's %-paramstyle.
    'WHERE "Description" NOT LIKE \'%IGNORE-ME%\' AND "Updated" > :watermark '
    'ORDER BY "Updated";'
)


# --------------------------------------------------------------------------------------
# The query guard (pure)

ACCEPTED = [
    pytest.param(QUERY, id="seed-style-quoted-columns"),
    pytest.param(
        "SELECT RunNumber, Line, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated",
        id="plain-columns-no-semicolon",
    ),
    pytest.param(
        "select RunNumber, UpdatedAt, LastUpdated, created_by, Updated from RunNumber "
        "where Updated > :watermark order by Updated asc",
        id="updated-updatedat-lastupdated-created_by-are-not-keywords",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Description <> 'DROP TABLE x' "
        "AND Status <> 'update -- /* # */' AND Updated > :watermark ORDER BY Updated",
        id="keywords-and-comment-markers-inside-a-literal",
    ),
    pytest.param(
        "SELECT RunNumber, Description, Updated FROM RunNumber "
        "WHERE Description <> 'it''s DELETE' AND Updated > :watermark ORDER BY Updated",
        id="doubled-quote-escape-in-literal",
    ),
    pytest.param(
        'SELECT "Update", "Drop", Updated FROM RunNumber WHERE Updated > :watermark '
        "ORDER BY Updated",
        id="keyword-as-quoted-identifier",
    ),
    pytest.param(
        "SELECT r.RunNumber, r.RawMaterialKg * 1000 AS grams, r.PackDate::text, r.Updated "
        "FROM RunNumber r WHERE r.Updated > :watermark ORDER BY r.Updated, r.RunNumber",
        id="qualified-multiplication-and-cast",
    ),
    pytest.param(
        "SELECT TOP 5000 [RunNumber], [Updated] FROM [dbo].[RunNumber] "
        "WHERE [Updated] > :watermark ORDER BY [Updated]",
        id="sql-server-brackets",
    ),
]

REFUSED = [
    pytest.param("", "empty", id="empty"),
    pytest.param(
        "UPDATE RunNumber SET Status = 'x' WHERE Updated > :watermark",
        "single SELECT",
        id="update-statement",
    ),
    pytest.param(
        "WITH d AS (DELETE FROM RunNumber RETURNING Updated) SELECT Updated FROM d "
        "WHERE Updated > :watermark ORDER BY Updated",
        "single SELECT",
        id="data-modifying-cte",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated FOR update",
        "keyword UPDATE",
        id="update-whole-word-lowercase",
    ),
    pytest.param(
        "SELECT RunNumber, Updated INTO backup_runs FROM RunNumber "
        "WHERE Updated > :watermark ORDER BY Updated",
        "keyword INTO",
        id="select-into-creates-a-table",
    ),
    pytest.param(
        "SELECT RunNumber, xp_cmdshell('dir'), Updated FROM RunNumber "
        "WHERE Updated > :watermark ORDER BY Updated",
        "xp_cmdshell",
        id="xp_cmdshell",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber "
        "WHERE Updated > :watermark AND SP_EXECUTESQL(N'x') = 1 ORDER BY Updated",
        "SP_EXECUTESQL",
        id="sp_executesql",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated; DROP TABLE RunNumber",
        "stacked",
        id="stacked-drop",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark ORDER BY Updated;; ",
        "stacked",
        id="two-trailing-semicolons",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Status <> 'a;b' "
        "AND Updated > :watermark ORDER BY Updated",
        "inside the string literal",
        id="semicolon-inside-literal-refused",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated -- ; DROP TABLE RunNumber",
        "comment '--'",
        id="dash-dash-comment",
    ),
    pytest.param(
        "SELECT RunNumber, /* hi */ Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated",
        "comment '/*'",
        id="block-comment",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated # mysql",
        "comment '#'",
        id="hash-comment",
    ),
    pytest.param(
        "SELECT * FROM RunNumber WHERE Updated > :watermark ORDER BY Updated",
        "SELECT *",
        id="select-star",
    ),
    pytest.param(
        "SELECT t.* FROM RunNumber t WHERE t.Updated > :watermark ORDER BY t.Updated",
        "t.*",
        id="select-t-star",
    ),
    pytest.param(
        "SELECT RunNumber, * FROM RunNumber WHERE Updated > :watermark ORDER BY Updated",
        "SELECT *",
        id="select-column-and-star",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Status = E'x\\''; DROP TABLE t; "
        "SELECT '' AND Updated > :watermark ORDER BY Updated",
        "backslash",
        id="backslash-escape-desync",
    ),
    pytest.param(
        "SELECT RunNumber, $$;$$, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY Updated",
        "'$'",
        id="dollar-quoting",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Status = 'open "
        "AND Updated > :watermark ORDER BY Updated",
        "unterminated string literal",
        id="unterminated-literal",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber ORDER BY Updated",
        ":watermark placeholder is missing",
        id="no-watermark",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :since ORDER BY Updated",
        "unknown placeholder :since",
        id="unknown-placeholder",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated >= :watermark ORDER BY Updated",
        "strictly greater",
        id="greater-or-equal",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark",
        "ORDER BY Updated is missing",
        id="no-order-by",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark "
        "ORDER BY RunNumber, Updated",
        "first ORDER BY key",
        id="order-by-other-column",
    ),
    pytest.param(
        "SELECT RunNumber, Updated FROM RunNumber WHERE Updated > :watermark ORDER BY Updated DESC",
        "ascending",
        id="order-by-desc",
    ),
]


@pytest.mark.parametrize("query", ACCEPTED)
def test_guard_accepts(query: str) -> None:
    check_query(query)


@pytest.mark.parametrize(("query", "reason"), REFUSED)
def test_guard_refuses_with_a_precise_reason(query: str, reason: str) -> None:
    with pytest.raises(ErpRefused, match="ERP query refused") as caught:
        check_query(query)
    assert reason in str(caught.value)


def test_render_query_binds_watermark_and_escapes_percent() -> None:
    assert render_query(QUERY, "pyformat") == (
        f'SELECT {COLUMNS} FROM "RunNumber" '
        'WHERE "Description" NOT LIKE \'%%IGNORE-ME%%\' AND "Updated" > %(watermark)s '
        'ORDER BY "Updated"'
    )
    assert render_query(QUERY, "qmark").endswith(
        '\'%IGNORE-ME%\' AND "Updated" > ? ORDER BY "Updated"'
    )
    assert watermark_column(QUERY) == "Updated"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://sa@erp-db/erp", id="sa"),
        pytest.param("mssql+pyodbc://SA@erp-db/erp", id="SA-upper"),
        pytest.param("postgresql://postgres@erp-db/erp", id="postgres"),
        pytest.param("postgresql://root@erp-db/erp", id="root"),
        pytest.param("postgresql://admin@erp-db/erp", id="admin"),
        pytest.param("postgresql://Administrator@erp-db/erp", id="Administrator"),
        pytest.param("postgresql://dba@erp-db/erp", id="dba"),
        pytest.param("postgresql://lineside_ro@erp-db/erp?user=postgres", id="user-override"),
        pytest.param("postgresql://lineside_ro:hunter2@erp-db/erp", id="password-in-url"),
        pytest.param("postgresql://lineside_ro@erp-db/erp?password=x", id="password-param"),
        pytest.param("postgresql://erp-db/erp", id="no-user"),
    ],
)
def test_admin_logins_and_passwords_in_the_url_are_refused(url: str) -> None:
    with pytest.raises(ErpRefused, match="ERP login refused"):
        check_login(url)


def test_read_only_login_is_accepted() -> None:
    check_login("postgresql://lineside_ro@erp-db:5432/erp")


def _config(url: str, **extra: object) -> SqlErp:
    return SqlErp.model_validate({"kind": "sql", "url": url, "query": QUERY, **extra})


def test_guards_run_at_construction_before_any_connection() -> None:
    # erp-db.invalid does not resolve: reaching it would fail differently.
    with pytest.raises(ErpRefused, match="administrator login"):
        SqlErpSource(_config("postgresql://postgres@erp-db.invalid/erp"))
    stacked = QUERY + " DELETE FROM RunNumber"
    with pytest.raises(ErpRefused, match="stacked"):
        SqlErpSource(_config("postgresql://ro@erp-db.invalid/erp", query=stacked))
    with pytest.raises(ErpRefused, match="no driver"):
        SqlErpSource(_config("mysql://ro@erp-db.invalid/erp"))


# --------------------------------------------------------------------------------------
# Against the real PostgreSQL


@dataclass(frozen=True)
class ErpDb:
    """The per-module database and its logins."""

    dbname: str
    ro_role: str
    rw_role: str

    def url(self, role: str, port: int = PORT) -> str:
        return f"postgresql://{role}@{HOST}:{port}/{self.dbname}"


def _naive(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 6, day, hour, minute)  # June: London is UTC+1 (BST)


# (RunNumber, Line, BatchCode, Description, PackDate, ShelfLifeAdjust, RawMaterialKg,
#  Status, Updated). Inserted out of order so ORDER BY is what sorts them.
ROWS: list[tuple[object, ...]] = [
    ("R1005", "L1", "B-5", "SALMON FILLET 240G", "2025-06-02", 0, "410.5", "done", _naive(2, 11)),
    ("R1001", "L1", "B-1", "SALMON FILLET 120G", "2025-06-01", 0, "500.0", "done", _naive(2, 6)),
    ("R1003", "L2", "B-3", "COD LOIN", "2025-06-02", 1, "250.0", "running", _naive(2, 9)),
    ("R1002", "L2", "B-2", "HADDOCK FILLET", "2025-06-01", 2, "300.0", "finished", _naive(2, 7)),
    # Garbage: no run number, a status the ERP never uses, a negative weight.
    ("", "", "", "???", None, 99, "-12.0", "exploded", _naive(2, 10)),
    ("R1006", "L1", "B-6", "SMOKED SALMON", "2025-06-03", 3, "120.0", "planned", _naive(2, 12)),
    ("R1004", "L1", "B-4", "SEA BASS WHOLE", "2025-06-02", 0, "80.0", "planned", _naive(2, 8)),
    # Filtered out by the query's LIKE (and by nothing else).
    ("R9999", "L9", "B-9", "IGNORE-ME test row", "2025-06-09", 0, "1.0", "planned", _naive(9, 9)),
]


def _superuser(dbname: str = "test", *, autocommit: bool = True) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(
        host=HOST,
        port=PORT,
        user="postgres",
        dbname=dbname,
        autocommit=autocommit,
        connect_timeout=3,
    )


@pytest.fixture(scope="module")
def erp_db() -> Iterator[ErpDb]:
    """A fresh database with a ``RunNumber`` table, a read-only and a read-write role."""
    # No skip: this machine kind runs PostgreSQL on 127.0.0.1:5432, and a missing database
    # must fail the suite rather than hide the read-only proof.
    admin = _superuser()
    suffix = secrets.token_hex(4)
    db = ErpDb(f"lineside_erp_{suffix}", f"lineside_ro_{suffix}", f"lineside_rw_{suffix}")
    dbname, ro, rw = (sql.Identifier(n) for n in (db.dbname, db.ro_role, db.rw_role))
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(dbname))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'ro-secret'").format(ro))
        # The ERP DBA's read-only login: read-only by default, and no write privileges.
        admin.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ro))
        # A login that could write, to show the session itself is read-only too.
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(rw))
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(dbname))
        admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(dbname, ro, rw))
        with _superuser(db.dbname) as conn:
            conn.execute(
                'CREATE TABLE "RunNumber" ("RunNumber" varchar(20) NOT NULL, Line varchar(10),'
                ' "BatchCode" varchar(40), "Description" varchar(200), "PackDate" date,'
                ' "ShelfLifeAdjust" integer, "RawMaterialKg" numeric(10, 2),'
                ' Status varchar(20), "Updated" timestamp NOT NULL)'
            )
            conn.execute('CREATE TABLE "Prices" ("Plu" varchar(20), "Updated" timestamp)')
            with conn.cursor() as cur:
                cur.executemany(
                    'INSERT INTO "RunNumber" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)', ROWS
                )
            conn.execute(sql.SQL('GRANT SELECT ON "RunNumber" TO {}').format(ro))
            conn.execute(sql.SQL('GRANT SELECT, INSERT, UPDATE ON "RunNumber" TO {}').format(rw))
        yield db
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(dbname))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ro))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(rw))
        admin.close()


def _source(db: ErpDb, **extra: object) -> SqlErpSource:
    # The password comes from the secret (trust auth on the test server ignores it).
    return SqlErpSource(_config(db.url(db.ro_role), password=SecretStr("ro-secret"), **extra))


async def test_incremental_fetch_returns_changed_rows_in_order_in_batches(erp_db: ErpDb) -> None:
    source = _source(erp_db, batch_size=2)
    # 06:00 UTC is 07:00 in London (BST): R1002's Updated. Strictly greater excludes it,
    # which only holds if the aware watermark is converted to the ERP's local time.
    result = await source.fetch_changed(datetime(2025, 6, 2, 6, 0, tzinfo=UTC))

    assert [run.run_number for run in result.runs] == ["R1004", "R1003", "R1005", "R1006"]
    assert all(isinstance(run, ProductionRun) for run in result.runs)
    assert len(result.rejected) == 1
    garbage = result.rejected[0]
    assert isinstance(garbage, RunRejection)
    assert garbage.raw["status"] == "exploded"
    assert garbage.reasons
    # 5 rows at batch_size=2: three round trips (2 + 2 + 1).
    assert source.last_batches == 3
    assert result.watermark == datetime(2025, 6, 2, 12, 0, tzinfo=LONDON)

    # From the new watermark nothing has changed; the watermark stays where it was.
    again = await source.fetch_changed(result.watermark)
    assert (again.runs, again.rejected, again.watermark) == ([], [], result.watermark)
    await source.close()


async def test_full_reload_with_none_reads_everything(erp_db: ErpDb) -> None:
    source = _source(erp_db, batch_size=3)
    result = await source.fetch_changed(None)
    assert [run.run_number for run in result.runs] == [
        "R1001",
        "R1002",
        "R1004",
        "R1003",
        "R1005",
        "R1006",
    ]
    assert len(result.rejected) == 1
    assert result.watermark == datetime(2025, 6, 2, 12, 0, tzinfo=LONDON)
    assert source.last_batches == 3  # 7 rows: 3 + 3 + 1
    await source.close()


def test_the_read_only_role_cannot_write_at_the_database(erp_db: ErpDb) -> None:
    """Layer 3: the role itself. Even a session that turns read-only off cannot write."""
    with psycopg.connect(erp_db.url(erp_db.ro_role), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("""INSERT INTO "RunNumber" ("RunNumber", "Updated") VALUES ('X', now())""")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("""INSERT INTO "RunNumber" ("RunNumber", "Updated") VALUES ('X', now())""")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("""UPDATE "RunNumber" SET Status = 'hacked'""")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute('DROP TABLE "RunNumber"')
    with _superuser(erp_db.dbname) as admin:
        count = admin.execute('SELECT count(*) FROM "RunNumber" WHERE Status = %s', ("hacked",))
        assert count.fetchone() == (0,)


def test_the_sources_session_is_read_only_even_for_a_login_that_could_write(
    erp_db: ErpDb,
) -> None:
    """Layer 2: the session the source opens refuses writes, whatever the role may do."""
    driver = PsycopgDriver(_config(erp_db.url(erp_db.rw_role)))
    with driver.connect() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("""UPDATE "RunNumber" SET Status = 'hacked'""")


async def test_a_table_the_role_may_not_read_is_refused(erp_db: ErpDb) -> None:
    query = 'SELECT "Plu", "Updated" FROM "Prices" WHERE "Updated" > :watermark ORDER BY "Updated"'
    source = _source(erp_db, query=query)
    with pytest.raises(ErpRefused, match="42501") as caught:
        await source.fetch_changed(None)
    assert not isinstance(caught.value, psycopg.Error)
    assert isinstance(caught.value.__cause__, psycopg.Error)


async def test_statement_timeout_is_unavailable(erp_db: ErpDb) -> None:
    query = (
        'SELECT "RunNumber", pg_sleep(1) AS nap, "Updated" FROM "RunNumber" '
        'WHERE "Updated" > :watermark ORDER BY "Updated"'
    )
    source = _source(erp_db, query=query, statement_timeout_s=0.2)
    with pytest.raises(ErpUnavailable, match="timed out"):
        await source.fetch_changed(None)


async def test_unreachable_database_is_unavailable() -> None:
    url = f"postgresql://lineside_ro@{HOST}:{free_port(HOST)}/erp"
    source = SqlErpSource(_config(url))
    with pytest.raises(ErpUnavailable, match="unavailable") as caught:
        await source.fetch_changed(None)
    assert isinstance(caught.value, ErpError)
    assert not isinstance(caught.value, psycopg.Error)


async def test_unknown_login_is_refused_not_retried(erp_db: ErpDb) -> None:
    source = SqlErpSource(_config(erp_db.url("lineside_nobody")))
    with pytest.raises(ErpRefused, match="does not exist"):
        await source.fetch_changed(None)
