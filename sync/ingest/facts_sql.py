"""Writing facts, current state and dimensions, in the transaction of the ``records`` rows
they come from (docs/warehouse-schema.md). The statements are written once; a
:class:`FactDialect` (:mod:`sync.ingest.facts_pg`, :mod:`sync.ingest.facts_sqlite`) gives
what differs between the databases.

One ``executemany`` per fact table per batch. The current state is re-derived from the
facts for the keys a batch touched, guarded by ``seq``, so records arriving out of order
end with the same rows as records arriving in order, and deriving twice changes nothing.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.ingest.fact_state import (
    PRODUCT_COLUMNS,
    RUN_COLUMNS,
    RunState,
    fact_line,
    is_names_event,
    newest_runs,
    parse_names,
)
from sync.ingest.facts import FACT_TABLES, Fact

JsonRows = Callable[[str, Sequence[str], Sequence[Sequence[object]]], tuple[str, str]]
"""(table, columns, rows) → (one INSERT of all the rows, its JSON parameter)."""


@dataclass(frozen=True, slots=True)
class FactDialect:
    """The pieces of SQL and the value adaptation that differ between the databases."""

    mark: str
    """The parameter placeholder."""
    now: str
    """The current time as the tables store it."""
    greatest: str
    least: str
    ts_param: str
    """A timestamp parameter (typed where the database cannot infer it)."""
    records_received_at: str
    """``records.received_at`` in the facts' form."""
    adapt: Callable[[object], object]
    """A fact value (datetime, bool, date, ...) as the driver should send it."""
    adapt_row: Callable[[Sequence[object]], tuple[object, ...]]
    """A row of such values, each adapted as :attr:`adapt` would (one call per row: rows
    are on the path of every record)."""
    adapt_fact_row: Callable[[Sequence[object]], tuple[object, ...]]
    """:attr:`adapt_row` for a :attr:`Fact.row`, which starts with :data:`FACT_HEAD`: a
    dialect may take the ``ts`` column's value from ``ts_us`` rather than the datetime."""
    ts_from_us: bool = False
    """Whether :attr:`adapt_fact_row` makes ``ts`` from ``ts_us`` and never reads the
    datetime: the rows are then :attr:`Fact.row_by_us`, and no datetime is made per fact."""
    json_rows: JsonRows | None = None
    """Given a table, its columns and rows: an INSERT of all the rows as one JSON parameter,
    and that parameter (:func:`sync.ingest.facts_pg.json_rows_insert`); None: one
    ``executemany`` of single-row INSERTs."""


Execute = Callable[[str, Sequence[object]], Any]
ExecuteMany = Callable[[str, Sequence[Sequence[object]]], None]

_ROW: Callable[[Fact], tuple[object, ...]] = operator.attrgetter("row")
_ROW_BY_US: Callable[[Fact], tuple[object, ...]] = operator.attrgetter("row_by_us")
"""A fact's row with its datetime, or with None in its place (FactDialect.ts_from_us)."""

_ALERT_STATE_COLUMNS = (
    "seq",
    "site",
    "rule",
    "subject",
    "line",
    "severity",
    "state",
    "message",
    "ts",
    "ts_us",
    "raised_at",
    "active",
)


class FactWriter:
    """Writes what a set of newly stored records adds to the typed tables."""

    def __init__(
        self,
        dialect: FactDialect,
        execute: Execute,
        executemany: ExecuteMany,
        before_insert: Callable[[Sequence[Fact]], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self._execute = execute
        self._executemany = executemany
        self._before_insert = before_insert

    def _row(self, values: Sequence[object]) -> tuple[object, ...]:
        return self.dialect.adapt_row(values)

    def _seen(self) -> str:
        d = self.dialect
        return f"COALESCE({d.ts_param}, {d.now})"

    def write(self, facts: Sequence[Fact]) -> None:
        """Insert the facts, then update the current state and the dimensions they touch."""
        if not facts:
            return
        if self._before_insert is not None:
            self._before_insert(facts)
        groups: dict[tuple[str, bool], list[Fact]] = defaultdict(list)
        for fact in facts:
            groups[(fact.stream, fact.received_at is not None)].append(fact)
        for (stream, with_received), group in groups.items():
            self._insert_facts(stream, with_received, group)
        alerts = [f for f in facts if f.stream == "alerts"]
        if alerts:
            self._alerts_current({(f.gateway, str(f.value("alert_id"))) for f in alerts})
        runs = [f for f in facts if f.stream == "run_versions"]
        for run in newest_runs(runs):
            self._run(run)
        self._lines(facts)
        for gateway in sorted({f.gateway for f in facts if is_names_event(f)}):
            self._names(gateway)

    def _insert_facts(self, stream: str, with_received: bool, facts: Sequence[Fact]) -> None:
        columns = FACT_TABLES[stream].all_columns + (("received_at",) if with_received else ())
        marks = ", ".join([self.dialect.mark] * len(columns))
        adapt = self.dialect.adapt_fact_row
        row_of = _ROW_BY_US if self.dialect.ts_from_us else _ROW
        if with_received:
            rows = [adapt((*row_of(f), f.received_at)) for f in facts]
        else:
            rows = [adapt(row_of(f)) for f in facts]
        if self.dialect.json_rows is not None:
            # One statement for the whole batch: a pipelined executemany costs the driver a
            # protocol round per row, which was most of the ingest's CPU per record
            # (docs/scale-out.md).
            sql, param = self.dialect.json_rows(stream, columns, rows)
            self._execute(sql, (param,))
            return
        self._executemany(
            f"INSERT INTO {stream} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 (fixed names)
            " ON CONFLICT DO NOTHING",
            rows,
        )

    def _alerts_current(self, keys: set[tuple[str, str]]) -> None:
        m = self.dialect.mark
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ALERT_STATE_COLUMNS)
        self._executemany(
            "INSERT INTO alerts_current (gateway, alert_id, seq, site, rule, subject, line,"  # noqa: S608 (the dialect's SQL)
            " severity, state, message, ts, ts_us, raised_at, active)"
            " SELECT a.gateway, a.alert_id, a.seq, a.site, a.rule, a.subject, a.line,"
            " a.severity, a.state, a.message, a.ts, a.ts_us,"
            " (SELECT r.ts FROM alerts r WHERE r.gateway = a.gateway"
            " AND r.alert_id = a.alert_id AND r.state = 'raised' ORDER BY r.seq DESC LIMIT 1),"
            " NOT EXISTS (SELECT 1 FROM alerts c WHERE c.gateway = a.gateway"
            " AND c.alert_id = a.alert_id AND c.state IN ('cleared', 'resolved'))"
            f" FROM alerts a WHERE a.gateway = {m} AND a.alert_id = {m}"
            " ORDER BY a.seq DESC LIMIT 1"
            f" ON CONFLICT (gateway, alert_id) DO UPDATE SET {updates}"
            " WHERE alerts_current.seq <= excluded.seq",
            sorted(keys),
        )

    def _run(self, run: RunState) -> None:
        m = self.dialect.mark
        marks = ", ".join([m] * len(RUN_COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[2:])
        changed = self._execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks})"  # noqa: S608 (fixed names)
            f" ON CONFLICT (gateway, run_number) DO UPDATE SET {updates}"
            " WHERE runs.seq < excluded.seq RETURNING seq",
            self._row(run.row),
        ).fetchall()
        if not changed:
            return  # a newer version is already there: its products and codes stay
        key = (run.gateway, run.run_number)
        for table in ("run_products", "run_batch_codes"):
            self._execute(
                f"DELETE FROM {table} WHERE gateway = {m} AND run_number = {m}",  # noqa: S608 (fixed names)
                key,
            )
        if run.products:
            marks = ", ".join([m] * len(PRODUCT_COLUMNS))
            self._executemany(
                f"INSERT INTO run_products ({', '.join(PRODUCT_COLUMNS)}) VALUES ({marks})",  # noqa: S608 (fixed names)
                [self._row(product) for product in run.products],
            )
        if run.batch_codes:
            self._executemany(
                "INSERT INTO run_batch_codes (gateway, run_number, batch_code)"  # noqa: S608 (marks)
                f" VALUES ({m}, {m}, {m})",
                [(*key, code) for code in run.batch_codes],
            )

    def _lines(self, facts: Sequence[Fact]) -> None:
        seen: dict[tuple[str, str], tuple[str, datetime | None, datetime | None]] = {}
        for fact in facts:
            line = fact_line(fact)
            if line is None:
                continue
            key = (fact.gateway, line)
            _, first, last = seen.get(key, (fact.site, fact.received_at, fact.received_at))
            at = fact.received_at
            if at is not None and first is not None and last is not None:
                first, last = min(first, at), max(last, at)
            seen[key] = (fact.site, first, last)
        if seen:
            # In key order: concurrent ingests lock the rows in the same order (no deadlock).
            self._upsert_lines(
                [
                    (g, line, site, first, last)
                    for (g, line), (site, first, last) in sorted(seen.items())
                ]
            )

    def _upsert_lines(
        self, rows: Sequence[tuple[str, str, str, datetime | None, datetime | None]]
    ) -> None:
        d, m = self.dialect, self.dialect.mark
        self._executemany(
            "INSERT INTO lines (gateway, line, site, first_seen, last_seen)"  # noqa: S608 (the dialect's SQL)
            f" VALUES ({m}, {m}, {m}, {self._seen()}, {self._seen()})"
            " ON CONFLICT (gateway, line) DO UPDATE SET site = excluded.site,"
            f" first_seen = {d.least}(lines.first_seen, excluded.first_seen),"
            f" last_seen = {d.greatest}(lines.last_seen, excluded.last_seen)",
            [self._row(row) for row in rows],
        )

    def _names(self, gateway: str) -> None:
        """Apply the gateway's newest ``names`` event (by seq: an older one arriving late
        never overrides it)."""
        m = self.dialect.mark
        newest = self._execute(
            "SELECT site, detail, received_at FROM device_events"  # noqa: S608 (marks)
            f" WHERE gateway = {m} AND kind = 'names' ORDER BY seq DESC LIMIT 1",
            (gateway,),
        ).fetchone()
        if newest is None:
            return
        site, detail, received_at = newest
        names = parse_names(detail)
        d, seen = self.dialect, self._seen()
        self._execute(
            "INSERT INTO sites (site, name, first_seen, last_seen)"  # noqa: S608 (the dialect's SQL)
            f" VALUES ({m}, {m}, {seen}, {seen})"
            " ON CONFLICT (site) DO UPDATE SET name = excluded.name,"
            f" first_seen = {d.least}(sites.first_seen, excluded.first_seen)",
            (site, names.site_name, received_at, received_at),
        )
        self._execute(
            f"UPDATE lines SET name = NULL WHERE gateway = {m}",  # noqa: S608 (marks)
            (gateway,),
        )
        if names.lines:
            self._executemany(
                "INSERT INTO lines (gateway, line, site, name, first_seen, last_seen)"  # noqa: S608 (the dialect's SQL)
                f" VALUES ({m}, {m}, {m}, {m}, {seen}, {seen})"
                " ON CONFLICT (gateway, line) DO UPDATE SET name = excluded.name",
                [
                    (gateway, line, site, name, received_at, received_at)
                    for line, name in sorted(names.lines.items())
                ],
            )

    def touch(self, gateway: str, site: str, inserted: Sequence[int]) -> None:
        """A live batch was committed: the site and gateway were seen now; ``inserted`` are
        the sequences it stored."""
        d, m, now = self.dialect, self.dialect.mark, self.dialect.now
        self._execute(
            f"INSERT INTO sites (site, first_seen, last_seen) VALUES ({m}, {now}, {now})"  # noqa: S608 (the dialect's SQL)
            " ON CONFLICT (site) DO UPDATE SET last_seen = excluded.last_seen",
            (site,),
        )
        self._execute(
            "INSERT INTO gateways (gateway, site, first_seen, last_seen, last_seq, records)"  # noqa: S608 (the dialect's SQL)
            f" VALUES ({m}, {m}, {now}, {now}, {m}, {m})"
            " ON CONFLICT (gateway) DO UPDATE SET site = excluded.site,"
            " last_seen = excluded.last_seen,"
            f" last_seq = {d.greatest}(gateways.last_seq, excluded.last_seq),"
            " records = gateways.records + excluded.records",
            (gateway, site, max(inserted, default=-1), len(inserted)),
        )

    def backlog(self, gateway: str, backlog: int, at: datetime) -> None:
        """The gateway's outbox depth as a batch reports it, kept only when counted later
        than the stored one: a resent or late batch never turns the figure back."""
        d, m = self.dialect, self.dialect.mark
        at_value = d.adapt(at)
        self._execute(
            f"UPDATE gateways SET backlog = {m}, backlog_at = {d.ts_param}"  # noqa: S608 (the dialect's SQL)
            f" WHERE gateway = {m} AND (backlog_at IS NULL OR backlog_at < {d.ts_param})",
            (backlog, at_value, gateway, at_value),
        )

    def recount(self) -> None:
        """Sites and gateways derived from every stored record (the backfill's last step):
        the same values live ingest keeps, so running it again changes nothing."""
        d, at = self.dialect, self.dialect.records_received_at
        self._execute(
            "INSERT INTO sites (site, first_seen, last_seen)"  # noqa: S608 (the dialect's SQL)
            f" SELECT site, min({at}), max({at}) FROM records WHERE true GROUP BY site"
            " ON CONFLICT (site) DO UPDATE SET"
            f" first_seen = {d.least}(sites.first_seen, excluded.first_seen),"
            f" last_seen = {d.greatest}(sites.last_seen, excluded.last_seen)",
            (),
        )
        self._execute(
            "INSERT INTO gateways (gateway, site, first_seen, last_seen, last_seq, records)"  # noqa: S608 (the dialect's SQL)
            f" SELECT gateway, max(site), min({at}), max({at}), max(seq), count(*)"
            " FROM records WHERE true GROUP BY gateway"
            " ON CONFLICT (gateway) DO UPDATE SET"
            f" first_seen = {d.least}(gateways.first_seen, excluded.first_seen),"
            f" last_seen = {d.greatest}(gateways.last_seen, excluded.last_seen),"
            f" last_seq = {d.greatest}(gateways.last_seq, excluded.last_seq),"
            # Records are never deleted: a live batch committed after this statement's
            # snapshot has counted itself already, and must not be counted away.
            f" records = {d.greatest}(gateways.records, excluded.records)",
            (),
        )


__all__ = ["Execute", "ExecuteMany", "FactDialect", "FactWriter"]
