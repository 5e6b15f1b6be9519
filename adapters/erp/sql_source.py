"""The ERP's SQL source: an incremental, read-only query against the legacy ``RunNumber`` table.

Each poll reads only the rows with ``Updated > watermark`` in ``Updated`` order, in batches
of ``batch_size`` (docs/reference/production-pipeline.md, "Extract": never a full-table scan on the
production ERP, bounded memory for ``varchar(max)`` columns), and parses every row with
:func:`gateway.core.runs.parse_run`; rows that cannot be understood become
:class:`RunRejection` and the poll goes on.

Read-only, in layers, because the ERP is the factory's system of record:

1. the query and the login are checked before anything is sent (:mod:`sql_guard`);
2. the session is made read-only by the driver (``conn.read_only``, ``SET SESSION
   CHARACTERISTICS AS TRANSACTION READ ONLY``) and verified before the query runs;
3. the database role itself should only have ``CONNECT`` and ``SELECT`` (operations
   runbook; tests/test_erp_sql.py proves that layer against a real PostgreSQL).

Drivers are blocking DB-API drivers, chosen by the URL scheme and run in a worker thread
(``asyncio.to_thread``) so the event loop never waits on the ERP. Only PostgreSQL
(``postgresql://``, psycopg 3) is implemented. Another database plugs in as one more
:class:`DbDriver` registered in ``_DRIVERS`` under its scheme, e.g. ``mssql+pyodbc``: its
``paramstyle`` is ``qmark``, and its ``batches`` would connect with
``ApplicationIntent=ReadOnly``, set ``LOCK_TIMEOUT`` and the cursor's query timeout, use
``cursor.fetchmany`` the same way and translate ``pyodbc.Error`` SQLSTATEs (``08xxx``,
``HYT00`` → :class:`ErpUnavailable`, ``28000``/``42000`` permission → :class:`ErpRefused`).

Errors: nothing from the driver leaks. Connection refused, timeouts, lost connections and
server shutdowns are :class:`ErpUnavailable` (retry with backoff); refused logins,
permission and read-only violations are :class:`ErpRefused` (never retried); a value the
database cannot deliver is :class:`ErpDataError`; anything else is :class:`ErpError` with
the driver's exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import TupleRow

from adapters.erp.source import FetchResult
from adapters.erp.sql_guard import (
    PLACEHOLDER,
    Paramstyle,
    check_login,
    check_query,
    render_query,
    watermark_column,
)
from gateway.config import SqlErp
from gateway.core.errors import ErpDataError, ErpError, ErpRefused, ErpUnavailable
from gateway.core.runs import ProductionRun, parse_run

log = logging.getLogger(__name__)

FULL_RELOAD_FROM = datetime(1900, 1, 1)  # noqa: DTZ001 - ERP-local, naive on purpose
"""The watermark used for a full reload: earlier than any run. Not ``datetime.min``:
SQL Server's ``datetime`` starts in 1753 and some drivers reject year 1."""

CONNECT_TIMEOUT_S = 10
"""libpq ``connect_timeout`` (whole seconds): an unreachable ERP fails the poll quickly."""

APPLICATION_NAME = "lineside-erp"
"""Shown in ``pg_stat_activity`` so the ERP's DBA can see who is reading."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One round trip's rows, with the result's column names."""

    columns: tuple[str, ...]
    rows: Sequence[Sequence[object]]


class DbDriver(Protocol):
    """A blocking DB-API driver behind :class:`SqlErpSource`; called in a worker thread."""

    paramstyle: ClassVar[Paramstyle]
    """How ``:watermark`` is written for this driver (PEP 249)."""

    def batches(
        self, sql: str, watermark: datetime, batch_size: int
    ) -> Generator[Batch, None, None]:
        """Run ``sql`` in a read-only session and yield its rows ``batch_size`` at a time.

        ``watermark`` is naive, in the ERP's time zone. Driver errors are raised as
        :class:`ErpError` subclasses; the connection is closed when the iterator ends or
        is closed.
        """
        ...


class PsycopgDriver:
    """PostgreSQL through psycopg 3, with a read-only session and a server-side cursor."""

    paramstyle: ClassVar[Paramstyle] = "pyformat"

    def __init__(self, config: SqlErp) -> None:
        # libpq understands postgresql:// and postgres://; drop an SQLAlchemy-style
        # "+psycopg" so the same URL works in both worlds.
        scheme, rest = config.url.split("://", 1)
        self._conninfo = f"{scheme.split('+', 1)[0]}://{rest}"
        self._password = config.password.get_secret_value() if config.password else None
        self._timeout_ms = round(config.statement_timeout_s * 1000)
        self._timezone = config.timezone

    def connect(self) -> psycopg.Connection[TupleRow]:
        """Open a session that is read-only at the session level, and prove it is.

        Public so the tests can show that a write through this very session fails.
        """
        try:
            conn = psycopg.connect(
                self._conninfo,
                password=self._password,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME,
                autocommit=False,
            )
        except psycopg.Error as exc:
            raise _translate(exc, connecting=True) from exc
        try:
            read_only = self._prepare(conn)
        except psycopg.Error as exc:
            conn.close()
            raise _translate(exc, connecting=False) from exc
        except BaseException:
            conn.close()
            raise
        if not read_only:
            conn.close()
            raise ErpRefused("ERP session refused: the session did not become read-only")
        return conn

    def _prepare(self, conn: psycopg.Connection[TupleRow]) -> bool:
        """Make the session read-only, bound its statements; True if it is read-only."""
        # Every transaction psycopg begins is BEGIN READ ONLY, and the session default is
        # read-only too, so even a query that slipped past the guards cannot write.
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            # set_config binds its values (SET cannot take parameters). The timezone
            # makes timestamptz columns and naive watermarks agree with config.timezone.
            cur.execute(
                "SELECT set_config('statement_timeout', %s, false),"
                " set_config('idle_in_transaction_session_timeout', %s, false),"
                " set_config('TimeZone', %s, false)",
                (str(self._timeout_ms), str(self._timeout_ms), self._timezone),
            )
            cur.execute("SHOW transaction_read_only")
            row = cur.fetchone()
        return row is not None and row[0] == "on"

    def batches(
        self, sql: str, watermark: datetime, batch_size: int
    ) -> Generator[Batch, None, None]:
        """See :meth:`DbDriver.batches`; a named (server-side) cursor bounds the memory."""
        conn = self.connect()
        try:
            # A client-side cursor would pull the whole result into memory on execute;
            # a named cursor is DECLAREd on the server and FETCHed batch by batch.
            with conn.cursor(name="lineside_erp_runs") as cur:
                cur.execute(sql, {PLACEHOLDER: watermark})
                columns = tuple(column.name for column in cur.description or ())
                while rows := cur.fetchmany(batch_size):
                    yield Batch(columns, rows)
        except psycopg.Error as exc:
            raise _translate(exc, connecting=False) from exc
        finally:
            conn.close()


_DRIVERS: dict[str, Callable[[SqlErp], DbDriver]] = {
    "postgresql": PsycopgDriver,
    "postgres": PsycopgDriver,
    "postgresql+psycopg": PsycopgDriver,
}
"""Drivers by URL scheme; see the module docstring for how another database plugs in."""

_TRANSIENT_LOGIN_MARKERS = (
    "the database system is",  # starting up / shutting down / in recovery mode
    "too many",
    "remaining connection slots",
)
_REFUSED_LOGIN_MARKERS = (
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "not permitted to log in",
)


def _translate(exc: psycopg.Error, *, connecting: bool) -> ErpError:
    """Map a psycopg error to the ERP error tree (by SQLSTATE, or libpq's message)."""
    state = exc.sqlstate or ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    detail = f"{state} {message}".strip()
    if state.startswith(("08", "53", "40")) or state in ("55P03", "57P01", "57P02", "57P03"):
        return ErpUnavailable(f"ERP database unavailable: {detail}")
    if state == "57014":
        return ErpUnavailable(f"ERP query timed out (statement_timeout): {detail}")
    if state.startswith("28") or state in ("42501", "25006"):
        return ErpRefused(f"ERP database refused the read: {detail}")
    if state.startswith("22"):
        return ErpDataError(f"ERP database returned unusable data: {detail}")
    if not state and isinstance(exc, psycopg.OperationalError):
        # libpq reports connection failures without a SQLSTATE: a "FATAL:" comes from
        # the server (login refused, or the server is busy/starting), anything else is
        # the network (refused, timeout, no route, DNS).
        text = str(exc).lower()
        if "fatal:" not in text or any(m in text for m in _TRANSIENT_LOGIN_MARKERS):
            return ErpUnavailable(f"ERP database unavailable: {detail}")
        if connecting and any(m in text for m in _REFUSED_LOGIN_MARKERS):
            return ErpRefused(f"ERP database refused the login: {detail}")
    return ErpError(f"ERP database error: {detail}")


class SqlErpSource:
    """Production runs from the ERP database: implements :class:`adapters.erp.source.ErpSource`.

    The guards run at construction: a refused query or login raises :class:`ErpRefused`
    before any connection is attempted. Each poll opens its own short session (polls are
    tens of seconds apart; no idle connection is held on the ERP and none goes stale).
    """

    def __init__(self, config: SqlErp) -> None:
        check_login(config.url)
        check_query(config.query)
        scheme = config.url.split("://", 1)[0].lower() if "://" in config.url else ""
        factory = _DRIVERS.get(scheme)
        if factory is None:
            raise ErpRefused(
                f"ERP login refused: no driver for URL scheme {scheme!r} "
                f"(supported: {', '.join(sorted(_DRIVERS))})"
            )
        self._config = config
        self._driver = factory(config)
        self._sql = render_query(config.query, self._driver.paramstyle)
        self._column = watermark_column(config.query)
        self._tz: tzinfo = ZoneInfo(config.timezone)
        self._lock = asyncio.Lock()
        self._closed = False
        self.last_batches = 0
        """Round trips (non-empty ``fetchmany`` batches) of the last successful fetch."""

    async def fetch_changed(self, watermark: datetime | None) -> FetchResult:
        """Fetch the runs with ``Updated > watermark``; ``None`` reloads everything.

        An aware ``watermark`` is converted to the ERP's time zone (its ``Updated`` is
        naive local time); a naive one is taken as ERP-local already. The returned
        watermark is the highest ``Updated`` seen, aware, or ``watermark`` itself when
        nothing changed.
        """
        if self._closed:
            raise ErpError("ERP source is closed")
        if watermark is None:
            since = FULL_RELOAD_FROM
        elif watermark.tzinfo is not None:
            since = watermark.astimezone(self._tz).replace(tzinfo=None)
        else:
            since = watermark
        # One poll at a time: the watermark of one must be stored before the next.
        async with self._lock:
            result, batches = await asyncio.to_thread(self._fetch_blocking, since)
        self.last_batches = batches
        if result.watermark is None:
            result.watermark = watermark
        log.debug(
            "ERP SQL fetch since %s: %d runs, %d rejected, %d batches, watermark %s",
            since,
            len(result.runs),
            len(result.rejected),
            batches,
            result.watermark,
        )
        return result

    async def close(self) -> None:
        """Mark the source closed (sessions are per poll, so none is left open)."""
        self._closed = True

    def _fetch_blocking(self, since: datetime) -> tuple[FetchResult, int]:
        """Run in a worker thread: query, map rows to dicts by column name, parse."""
        result = FetchResult(runs=[], rejected=[], watermark=None)
        batches = 0
        # closing(): an error raised here must close the driver's session at once.
        with closing(self._driver.batches(self._sql, since, self._config.batch_size)) as rows:
            for batch in rows:
                if batches == 0 and len(set(batch.columns)) != len(batch.columns):
                    raise ErpDataError(
                        f"ERP query returns duplicate column names {list(batch.columns)}; "
                        "alias them so each row maps to a dict"
                    )
                batches += 1
                for values in batch.rows:
                    if len(values) != len(batch.columns):
                        raise ErpDataError("ERP row does not match the query's columns")
                    raw: dict[str, object] = dict(zip(batch.columns, values, strict=True))
                    self._add(result, raw)
        return result, batches

    def _add(self, result: FetchResult, raw: dict[str, object]) -> None:
        """Parse one row and move the watermark past it, rejected or not.

        A rejected row moves the watermark too (as in the seed pipeline): it is reported
        once in ``rejected``, not fetched and rejected again on every poll; correcting it
        in the ERP changes its ``Updated`` and brings it back.
        """
        parsed = parse_run(raw, tz=self._tz)  # never raises: problems are a RunRejection
        updated: object
        if isinstance(parsed, ProductionRun):
            result.runs.append(parsed)
            updated = parsed.updated
        else:
            result.rejected.append(parsed)
            updated = self._raw_updated(raw)
        if isinstance(updated, datetime):
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=self._tz)
            if result.watermark is None or updated > result.watermark:
                result.watermark = updated

    def _raw_updated(self, raw: dict[str, object]) -> object:
        # PostgreSQL folds unquoted names to lower case, so match the watermark column
        # case-insensitively.
        wanted = self._column.casefold()
        return next((v for k, v in raw.items() if k.casefold() == wanted), None)
