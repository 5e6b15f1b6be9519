"""A synced record's typed fact row: its payload (the gateway store's row as JSON) turned
into the values of its fact table (docs/warehouse-schema.md). Pure: no database here.

The values are plain Python (``datetime`` in UTC for a timestamp, ``bool``, ``date``, the
decimal string for a NUMERIC, the JSON text for a JSONB column); each database's writer
adapts them (:mod:`sync.ingest.facts_sql`). A record whose values its fact table cannot
hold faithfully (a time outside the calendar, a flag word over 32 bits, JSON text
PostgreSQL would refuse) raises :class:`FactError`: the warehouse refuses it as an invalid
record, as it refuses any record it cannot store faithfully.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.core.errors import SyncError
from gateway.core.records import RecordFlag

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

FACT_HEAD: tuple[str, ...] = ("gateway", "site", "seq", "ts", "ts_us")
"""The columns every fact table starts with (``received_at`` is the database's)."""


class FactError(SyncError, ValueError):
    """A record's values its fact table cannot hold faithfully."""


CALENDAR_US = (
    (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1),
    (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1),
)
"""The first and last microsecond since the epoch that a ``datetime`` holds (years 1 to
9999, UTC): the times a fact's ``ts`` column can hold."""


def timestamp(us: int) -> datetime:
    """The UTC moment of a count of microseconds since the epoch."""
    try:
        return EPOCH + timedelta(microseconds=us)
    except OverflowError:
        raise FactError(f"time {us} µs is outside the calendar") from None


def in_calendar(us: int) -> int:
    """``us`` when :func:`timestamp` can make a moment of it; its :class:`FactError` if not.

    A comparison instead of the moment itself: SQLite's fact rows are written from ``us``
    (sync/ingest/facts_sqlite.py), and making a ``datetime`` per record only to throw it
    away cost the ingest about 0.8 µs a record (tests/unit/test_facts_sqlite_values.py
    holds the two to the same verdicts)."""
    if CALENDAR_US[0] <= us <= CALENDAR_US[1]:
        return us
    raise FactError(f"time {us} µs is outside the calendar")


def _int32(name: str, value: int) -> int:
    if not INT32_MIN <= value <= INT32_MAX:
        raise FactError(f"{name} {value} does not fit a 32-bit integer")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _has_nul(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_value(name: str, text: str) -> Any:
    """The value of a JSON text column; :class:`FactError` if JSONB would refuse it."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        json.dumps(value, ensure_ascii=False).encode()  # lone surrogates
    except (ValueError, RecursionError) as exc:
        raise FactError(f"{name} is not storable JSON ({exc})") from None
    if _has_nul(value):
        raise FactError(f"{name} holds a NUL character")
    return value


def _json_text(name: str, text: str) -> str:
    json_value(name, text)
    return text


def decimal_text(name: str, text: str) -> str:
    """A NUMERIC column's decimal string, checked (kept as the gateway wrote it)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise FactError(f"{name} {text!r} is not a decimal number") from None
    if not number.is_finite() or text.strip() != text:
        raise FactError(f"{name} {text!r} is not a finite decimal number")
    return text


def iso_date(text: str | None) -> date | None:
    """The date of an edge text 'YYYY-MM-DD', or None when it is not one."""
    if text is None or not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


_DEFAULTS: dict[str, object] = {
    "flags": 0,
    "location": "",
    "parsed": "{}",
    "reasons": "[]",
    "rejected": 0,
    "uncertain": 0,
    "provisional": 0,
}
"""The gateway's column defaults: a column an older gateway does not have yet."""


def _get(payload: Mapping[str, Any], name: str, default: object = None) -> Any:
    return payload.get(name, _DEFAULTS.get(name, default))


def _flag(flags: int, bit: RecordFlag) -> bool:
    return bool(flags & bit)


# The flag bits as plain integers, for the builders every record goes through: ``&`` on an
# IntFlag member makes a new member each time, several times the cost of the integer's.
_TIME_UNCERTAIN = int(RecordFlag.TIME_UNCERTAIN)
_PROVISIONAL_RUN = int(RecordFlag.PROVISIONAL_RUN)
_VALUES_UNCERTAIN = int(RecordFlag.VALUES_UNCERTAIN)
_PRODUCT_UNKNOWN = int(RecordFlag.PRODUCT_UNKNOWN)


def _b(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


# The two builders of the most frequent records read optional columns with ``p.get`` and
# their defaults spelled out (the ones :func:`_get` would give: ``_DEFAULTS``, else None):
# a call fewer per column on every pack and reading.


def _packs(p: Mapping[str, Any]) -> tuple[object, ...]:
    get = p.get
    flags = _int32("flags", get("flags", 0))
    gross, tare, nominal = get("gross_g"), get("tare_g"), get("nominal_g")
    accepted, catch_weight = get("accepted"), get("catch_weight")
    return (
        p["line"],
        p["device"],
        get("run_number"),
        get("pack_counter"),
        float(p["net_g"]),
        None if gross is None else float(gross),
        None if tare is None else float(tare),
        None if accepted is None else bool(accepted),
        get("label_seq"),
        flags,
        None if nominal is None else float(nominal),
        get("program"),
        None if catch_weight is None else bool(catch_weight),
        get("plu"),
        get("product_source"),
        bool(flags & _TIME_UNCERTAIN),
        bool(flags & _PROVISIONAL_RUN),
        bool(flags & _VALUES_UNCERTAIN),
        bool(flags & _PRODUCT_UNKNOWN),
    )


def _temperatures(p: Mapping[str, Any]) -> tuple[object, ...]:
    get = p.get
    flags = _int32("flags", get("flags", 0))
    return (
        p["line"],
        p["device"],
        p["probe"],
        get("location", ""),
        get("run_number"),
        float(p["celsius"]),
        flags,
        bool(flags & _TIME_UNCERTAIN),
        bool(flags & _PROVISIONAL_RUN),
    )


def _label_scans(p: Mapping[str, Any]) -> tuple[object, ...]:
    flags = _int32("flags", _get(p, "flags"))
    use_by, pack_date = _get(p, "use_by"), _get(p, "pack_date")
    return (
        p["line"],
        p["device"],
        _get(p, "run_number"),
        p["raw"],
        _get(p, "gtin"),
        _get(p, "batch"),
        iso_date(use_by),
        use_by,
        iso_date(pack_date),
        pack_date,
        _get(p, "serial"),
        _f(_get(p, "net_weight_g")),
        _json_text("parsed", _get(p, "parsed")),
        flags,
        _flag(flags, RecordFlag.TIME_UNCERTAIN),
        _flag(flags, RecordFlag.PROVISIONAL_RUN),
    )


def _device_events(p: Mapping[str, Any]) -> tuple[object, ...]:
    return (
        p["device"],
        _get(p, "line"),
        p["kind"],
        _json_text("detail", _get(p, "detail", "{}")),
        _int32("flags", _get(p, "flags")),
    )


def _rejected_inputs(p: Mapping[str, Any]) -> tuple[object, ...]:
    return (
        p["source"],
        _get(p, "line"),
        p["tag"],
        p["raw"],
        p["reason"],
        _get(p, "detail", ""),
        _int32("flags", _get(p, "flags")),
        _get(p, "serial"),
    )


def _alerts(p: Mapping[str, Any]) -> tuple[object, ...]:
    return (
        p["alert_id"],
        p["rule"],
        p["subject"],
        _get(p, "line"),
        p["severity"],
        p["state"],
        p["message"],
        _json_text("detail", _get(p, "detail", "{}")),
        _int32("flags", _get(p, "flags")),
    )


def _run_versions(p: Mapping[str, Any]) -> tuple[object, ...]:
    return (
        p["run_number"],
        p["line"],
        p["status"],
        p["source"],
        _get(p, "actor"),
        bool(_get(p, "provisional")),
        _json_text("payload", p["payload"]),
        _int32("flags", _get(p, "flags")),
    )


def _emark_batches(p: Mapping[str, Any]) -> tuple[object, ...]:
    return (
        p["line"],
        p["run_number"],
        p["plu"],
        decimal_text("qn_g", p["qn_g"]),
        decimal_text("tne_g", p["tne_g"]),
        decimal_text("t1_g", p["t1_g"]),
        decimal_text("t2_g", p["t2_g"]),
        p["start_us"],
        p["end_us"],
        timestamp(p["start_us"]),
        timestamp(p["end_us"]),
        _int32("n", p["n"]),
        decimal_text("mean_g", p["mean_g"]),
        decimal_text("sd_g", p["sd_g"]),
        _int32("below_t1", p["below_t1"]),
        _int32("below_t2", p["below_t2"]),
        p["verdict"],
        _json_text("reasons", _get(p, "reasons")),
        _int32("flags", _get(p, "flags")),
        _int32("rejected", _get(p, "rejected")),
        _int32("uncertain", _get(p, "uncertain")),
    )


@dataclass(frozen=True, slots=True)
class FactTable:
    """A stream's fact table: its columns after :data:`FACT_HEAD` and their builder."""

    columns: tuple[str, ...]
    build: Callable[[Mapping[str, Any]], tuple[object, ...]]

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*FACT_HEAD, *self.columns)


FACT_TABLES: dict[str, FactTable] = {
    "packs": FactTable(
        (
            "line",
            "device",
            "run_number",
            "pack_counter",
            "net_g",
            "gross_g",
            "tare_g",
            "accepted",
            "label_seq",
            "flags",
            "nominal_g",
            "program",
            "catch_weight",
            "plu",
            "product_source",
            "time_uncertain",
            "provisional_run",
            "values_uncertain",
            "product_unknown",
        ),
        _packs,
    ),
    "temperatures": FactTable(
        (
            "line",
            "device",
            "probe",
            "location",
            "run_number",
            "celsius",
            "flags",
            "time_uncertain",
            "provisional_run",
        ),
        _temperatures,
    ),
    "label_scans": FactTable(
        (
            "line",
            "device",
            "run_number",
            "raw",
            "gtin",
            "batch",
            "use_by",
            "use_by_text",
            "pack_date",
            "pack_date_text",
            "serial",
            "net_weight_g",
            "parsed",
            "flags",
            "time_uncertain",
            "provisional_run",
        ),
        _label_scans,
    ),
    "device_events": FactTable(("device", "line", "kind", "detail", "flags"), _device_events),
    "rejected_inputs": FactTable(
        ("source", "line", "tag", "raw", "reason", "detail", "flags", "serial"),
        _rejected_inputs,
    ),
    "alerts": FactTable(
        ("alert_id", "rule", "subject", "line", "severity", "state", "message", "detail", "flags"),
        _alerts,
    ),
    "run_versions": FactTable(
        ("run_number", "line", "status", "source", "actor", "provisional", "payload", "flags"),
        _run_versions,
    ),
    "emark_batches": FactTable(
        (
            "line",
            "run_number",
            "plu",
            "qn_g",
            "tne_g",
            "t1_g",
            "t2_g",
            "start_us",
            "end_us",
            "start_at",
            "end_at",
            "n",
            "mean_g",
            "sd_g",
            "below_t1",
            "below_t2",
            "verdict",
            "reasons",
            "flags",
            "rejected",
            "uncertain",
        ),
        _emark_batches,
    ),
}
"""Every stream's fact table, by stream (the table has the stream's name)."""

PARTITIONED_FACTS: frozenset[str] = frozenset(
    {"packs", "temperatures", "label_scans", "device_events", "alerts"}
)
"""The fact tables PostgreSQL partitions by month of ``ts``."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, 0.7 µs more per
# record on the ingest's path. Nothing changes a Fact after build_fact made it.
@dataclass(slots=True)
class Fact:
    """One record's fact row (all of its table's columns but ``received_at``)."""

    stream: str
    gateway: str
    site: str
    seq: int
    ts_us: int
    values: tuple[object, ...]
    """The columns after :data:`FACT_HEAD`, in :attr:`FactTable.columns` order."""
    received_at: datetime | None = None
    """When the warehouse received the record: None for a live batch (the database's
    ``now()``), the ``records`` row's time when derived later (backfill)."""
    _ts: datetime | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def ts(self) -> datetime:
        """The record's moment (``ts_us``, checked to be in the calendar when the fact was
        built), made when first asked: PostgreSQL's rows need it, SQLite's do not."""
        if self._ts is None:
            self._ts = timestamp(self.ts_us)
        return self._ts

    @property
    def row(self) -> tuple[object, ...]:
        return (self.gateway, self.site, self.seq, self.ts, self.ts_us, *self.values)

    @property
    def row_by_us(self) -> tuple[object, ...]:
        """:attr:`row` with ``None`` for ``ts``, for a writer that makes that column from
        ``ts_us`` (SQLite's: :func:`sync.ingest.facts_sqlite.sqlite_fact_row`)."""
        return (self.gateway, self.site, self.seq, None, self.ts_us, *self.values)

    def value(self, column: str) -> Any:
        return self.values[FACT_TABLES[self.stream].columns.index(column)]


def build_fact(
    stream: str,
    gateway: str,
    site: str,
    seq: int,
    payload: Mapping[str, Any],
    *,
    received_at: datetime | None = None,
) -> Fact:
    """The fact of one record that matches its stream's schema.

    :raises FactError: its values do not fit the fact table.
    """
    table = FACT_TABLES[stream]
    try:
        ts_us = payload["ts_us"]
        values = table.build(payload)
    except FactError:
        raise
    except (KeyError, TypeError, ValueError) as exc:  # the schema check makes these rare
        raise FactError(f"not a {stream} record ({exc!r})") from None
    return Fact(stream, gateway, site, seq, in_calendar(ts_us), values, received_at)


__all__ = [
    "FACT_HEAD",
    "FACT_TABLES",
    "PARTITIONED_FACTS",
    "Fact",
    "FactError",
    "FactTable",
    "build_fact",
    "decimal_text",
    "iso_date",
    "json_value",
    "timestamp",
]
