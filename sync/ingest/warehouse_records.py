"""The warehouse's records before and after SQL: errors, result rows, the preparation and
checks of a batch's records (canonical JSON, SHA-256, schema), how a commit's outcome is
classified. No database access here.

See :mod:`sync.ingest.warehouse` for the commit rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.core.errors import SyncError
from sync.canonical import canonical_json
from sync.protocol import MAX_BATCH_BYTES, Batch, ProtocolError, decode_batch
from sync.record_schema import SchemaViolation, stream_schemas, validate_record

BIGINT_MAX = 2**63 - 1
HOUR_US = 3_600_000_000
REASON_DIFFERENT_PAYLOAD = "same sequence, different payload"
REASON_DIFFERENT_STREAM = "same sequence, different stream"
REASON_DIFFERENT_SITE = "same sequence, different site"
_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
IN_CHUNK = 500
"""Sequences per ``IN (…)`` list for SQLite (far below its variable limit)."""
IDEMPOTENCY_KEY_DAYS = 30
"""How long an Idempotency-Key and its batch's fingerprint are remembered."""
PRUNE_EVERY = 1000
"""Expired idempotency keys are deleted at open and every this many keyed commits."""


class WarehouseError(SyncError):
    """The warehouse could not commit a batch: nothing of it is acknowledged."""


class WarehouseUnavailable(WarehouseError):
    """A transient failure (connection lost, database locked or full): retry later."""


class IdempotencyKeyReused(ProtocolError):
    """An Idempotency-Key already used for a batch with other content: nothing stored."""


@dataclass(frozen=True, slots=True)
class CountRow:
    """One reconciliation bucket: records of a gateway's stream, run and hour."""

    gateway: str
    stream: str
    run_number: str | None
    hour: datetime | None
    """Start of the UTC hour of the records' ``ts_us`` (None: the records have no ts_us)."""
    records: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """A refused record: id reuse at the gateway, or a record that cannot be stored."""

    gateway: str
    site: str
    seq: int
    stream: str
    payload_sha256: str
    existing_sha256: str | None
    reason: str
    occurrences: int


@dataclass(slots=True)
class WarehouseStats:
    """Counters since start (the durable facts are in the tables)."""

    batches: int = 0
    inserted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    invalid: int = 0


def payload_sha256(data: Mapping[str, Any]) -> str:
    """The hex SHA-256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def check_batch(batch: Batch) -> None:
    """Refuse a batch whose ids could not have come from a gateway config, or of no stream."""
    for name in ("gateway", "site", "stream"):
        value = getattr(batch, name)
        if not _ID.fullmatch(value):
            raise ProtocolError(f"{name} must match [A-Za-z0-9_.-]{{1,128}}, got {value!r}")
    if batch.stream not in stream_schemas():
        raise ProtocolError(f"unknown stream {batch.stream!r}")


def decode_message(payload: bytes, *, max_bytes: int = MAX_BATCH_BYTES) -> Batch:
    """:func:`~sync.protocol.decode_batch`, with every parse failure a :class:`ProtocolError`."""
    try:
        return decode_batch(payload, max_bytes=max_bytes)
    except RecursionError:  # json's answer to absurdly deep nesting
        raise ProtocolError("batch nested too deeply") from None


def _has_nul(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


# Not frozen, for the same reason as sync.ingest.facts.Fact: one is made per record.
@dataclass(slots=True)
class Prepared:
    seq: int
    payload: str
    """Canonical JSON, or (for an invalid record) a lossless-as-possible text for the log."""
    sha256: str
    problem: str | None


def prepare(
    seq: int, data: Mapping[str, Any], stream: str, received: str | None = None
) -> Prepared:
    """A record checked, with its canonical text and that text's SHA-256.

    ``received`` is the record's data text as it came, when the batch came in the gateway's
    canonical form (:attr:`~sync.protocol.Batch.data_texts`): it is the canonical text, so it
    is hashed and stored as it is. One with a ``\\u`` escape is encoded again instead:
    canonical text escapes only control characters that way, and an escaped lone surrogate
    or NUL must be found and refused as ever.
    """
    problem: str | None = None
    encoded: bytes | None = None
    try:
        validate_record(stream, data)
    except SchemaViolation as exc:
        problem = f"invalid record: not a {stream} record ({exc})"
    if received is not None and "\\u" not in received:
        text = received
        encoded = text.encode()  # decoded from UTF-8 with no escapes: no lone surrogate
    else:
        try:
            text = canonical_json(data)
            encoded = text.encode()  # lone surrogates: not storable as UTF-8
        except (ValueError, TypeError) as exc:
            problem = problem or f"invalid record: not storable as JSON ({exc})"
            text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
            encoded = None
    # JSON always escapes U+0000 as \u0000, so a text without that sequence has no NUL; the
    # walk settles the rare text that has it (it may be an escaped backslash before "u0000").
    if problem is None and "\\u0000" in text and _has_nul(data):
        problem = "invalid record: NUL character in a string"
    if not 0 <= seq <= BIGINT_MAX:
        problem = "invalid record: sequence out of range"
    if len(problem or "") > 500:
        problem = (problem or "")[:500] + "…"
    if encoded is None:
        encoded = text.encode(errors="backslashreplace")
    digest = hashlib.sha256(encoded).hexdigest()
    return Prepared(seq, text, digest, problem)


@dataclass(slots=True)
class Outcome:
    committed: list[int]
    conflicts: list[tuple[int, str]]
    conflict_rows: list[tuple[Prepared, str | None, str]]
    """(record, existing sha or None, reason) to write to ``conflicts``."""
    inserted: int
    duplicates: int
    invalid: int


def classify(
    batch: Batch,
    prepared: Sequence[Prepared],
    inserted: set[int],
    stored: Mapping[int, tuple[str, str, str]],
) -> Outcome:
    """Decide, per sequence number, committed or refused (every occurrence must match)."""
    outcome = Outcome([], [], [], 0, 0, 0)
    refused: dict[int, str] = {}
    accepted: list[int] = []
    counted_insert: set[int] = set()
    for record in prepared:
        existing = stored.get(record.seq)
        reason: str | None = record.problem
        if reason is not None:
            outcome.invalid += 1
        elif existing is None:  # cannot happen after the insert; refuse rather than ack
            reason = "not stored"
        elif existing[0] != batch.site:
            reason = REASON_DIFFERENT_SITE
        elif existing[1] != batch.stream:
            reason = REASON_DIFFERENT_STREAM
        elif existing[2] != record.sha256:
            reason = REASON_DIFFERENT_PAYLOAD
        if reason is not None:
            outcome.conflict_rows.append((record, existing[2] if existing else None, reason))
            refused.setdefault(record.seq, reason)
            continue
        if record.seq in inserted and record.seq not in counted_insert:
            counted_insert.add(record.seq)
            outcome.inserted += 1
        else:
            outcome.duplicates += 1
        accepted.append(record.seq)
    outcome.committed = sorted(set(accepted) - refused.keys())
    outcome.conflicts = sorted(refused.items())
    return outcome


def fingerprint(batch: Batch, prepared: Sequence[Prepared]) -> str:
    """What an Idempotency-Key stands for: the batch's site, stream and records."""
    digest = hashlib.sha256(f"{batch.site}\n{batch.stream}\n".encode())
    for record in prepared:
        digest.update(f"{record.seq}:{record.sha256}\n".encode())
    return digest.hexdigest()


def count_row(row: Sequence[Any]) -> CountRow:
    gateway, stream, run, hour, n, lo, hi = row
    return CountRow(
        gateway=str(gateway),
        stream=str(stream),
        run_number=None if run is None else str(run),
        hour=None if hour is None else datetime.fromtimestamp(int(hour) * 3600, UTC),
        records=int(n),
        first_seq=int(lo),
        last_seq=int(hi),
    )


__all__ = [
    "BIGINT_MAX",
    "HOUR_US",
    "IDEMPOTENCY_KEY_DAYS",
    "IN_CHUNK",
    "PRUNE_EVERY",
    "REASON_DIFFERENT_PAYLOAD",
    "REASON_DIFFERENT_SITE",
    "REASON_DIFFERENT_STREAM",
    "ConflictRow",
    "CountRow",
    "IdempotencyKeyReused",
    "Outcome",
    "Prepared",
    "WarehouseError",
    "WarehouseStats",
    "WarehouseUnavailable",
    "canonical_json",
    "check_batch",
    "classify",
    "count_row",
    "decode_message",
    "fingerprint",
    "payload_sha256",
    "prepare",
]
