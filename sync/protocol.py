"""The wire contract between gateways and the central ingest. Pure: values in, values out.

Topics (MQTT, version 1 of the layout; ``{site}``, ``{line}``, ``{gateway}`` are ids from the
gateway's config, which only allows ``[A-Za-z0-9_.-]``):

    lineside/v1/{site}/gateways/{gateway}/andon/{line}    retained andon state of a line
    lineside/v1/{site}/gateways/{gateway}/alerts/{line}   alert transitions of a line
    lineside/v1/{site}/gateways/{gateway}/alerts          alert transitions without a line
    lineside/v1/{site}/gateways/{gateway}/status          retained "online" / last will "offline"
    lineside/v1/{site}/gateways/{gateway}/data/{stream}   record batches
    lineside/v1/{site}/gateways/{gateway}/ack             acknowledgements from the ingest

Every topic a gateway writes is under its own ``gateways/{gateway}/`` level, so a broker ACL
keyed on the connecting identity (``config/mosquitto/acl``: user name = gateway id) decides
who may publish what, and two gateways of one site with the same line id never overwrite
each other's andon state.

A **batch** carries records of one stream, each with its gateway sequence number, as
zlib-compressed JSON (the same body is POSTed over HTTPS with ``Content-Encoding: deflate``
and ``Idempotency-Key: <batch_id>``)::

    {"v": 1, "gateway": "hull-gw1", "site": "hull", "batch_id": "hull-gw1:1001-1050",
     "stream": "packs", "records": [{"data": {...}, "seq": 1001}, ...],
     "backlog": 1200, "backlog_at_us": 1764921600000000}

The ``records`` array is canonical JSON (:mod:`sync.canonical`: sorted keys, so ``data``
before ``seq``), so the ingest keeps each record's text as it came; any other valid form is
read too (docs/topics-and-payloads.md, "Canonical record text").

``backlog`` (records in the gateway's outbox when the batch was cut) and ``backlog_at_us``
(the gateway's clock then) are optional and go together. An ingest older than them refuses
unknown keys, so a gateway sends them only when ``[sync] report_backlog`` says its ingest
knows them (docs/topics-and-payloads.md).

An **ack** lists the sequence numbers the warehouse has committed (a record leaves the
gateway's outbox only then), and those it refused::

    {"v": 1, "gateway": "hull-gw1", "batch_id": "...", "committed": [1001, ...],
     "conflicts": [{"seq": 1003, "reason": "same sequence, different payload"}]}

An ack is **signed** when the ingest has a key for the gateway: HMAC-SHA256, keyed with the
gateway's ack key, over :data:`ACK_SIGNATURE_CONTEXT` followed by the exact payload bytes
(which name the gateway, the batch id, the committed seqs and the conflicts). The signature
travels in the MQTT 5 user property :data:`ACK_SIGNATURE_PROPERTY` as
``hmac-sha256:<hex>``, so the payload stays what older gateways parse. A gateway with an
ack key honours only acks whose signature verifies (:func:`verify_ack`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.core.errors import SyncError
from sync.canonical import canonical_json, scan_records, value_scanner

VERSION = 1
PREFIX = "lineside/v1"
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""A decompressed batch larger than this is refused (protects the ingest's memory)."""
MAX_MESSAGE_BYTES = MAX_BATCH_BYTES + 64 * 1024
"""The largest MQTT packet the ingest accepts (a batch is compressed, so at most a little
above :data:`MAX_BATCH_BYTES` even for incompressible data): its CONNECT's Maximum Packet
Size, and ``max_packet_size`` in ``config/mosquitto/mosquitto.conf``. A larger data message is
refused before it is parsed."""
MAX_ACK_BYTES = 1024 * 1024
"""An ack larger than this is refused before it is parsed (one for 10 000 records, the most a
batch may hold, is about 120 KiB); also the gateway's MQTT Maximum Packet Size."""


ACK_SIGNATURE_PROPERTY = "lineside-ack-sig"
"""The MQTT 5 user property that carries an ack's signature."""
ACK_SIGNATURE_SCHEME = "hmac-sha256"
ACK_SIGNATURE_CONTEXT = b"lineside/v1 ack\0"
"""Prefixed to the payload before signing: a signature over an ack is never valid for
anything else the same key might sign."""
SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 DISCONNECT reason code: another client connected with the same client id."""
MIN_ACK_KEY_BYTES = 16
"""The shortest ack key accepted (a generated one is 32 random bytes, URL-safe base64)."""


class ProtocolError(SyncError, ValueError):
    """A message that does not follow this contract."""


def andon_topic(site: str, gateway: str, line: str) -> str:
    """Where a line's retained andon state is published (by the gateway serving it)."""
    return f"{PREFIX}/{site}/gateways/{gateway}/andon/{line}"


def alerts_topic(site: str, gateway: str, line: str) -> str:
    """Where a line's alert transitions are published (by the gateway serving it)."""
    return f"{PREFIX}/{site}/gateways/{gateway}/alerts/{line}"


def gateway_alerts_topic(site: str, gateway: str) -> str:
    """Where a gateway's alert transitions that belong to no line are published (its store,
    its sync)."""
    return f"{PREFIX}/{site}/gateways/{gateway}/alerts"


def status_topic(site: str, gateway: str) -> str:
    """The gateway's retained online/offline status (and its last will)."""
    return f"{PREFIX}/{site}/gateways/{gateway}/status"


def data_topic(site: str, gateway: str, stream: str) -> str:
    """Where batches of one stream are published."""
    return f"{PREFIX}/{site}/gateways/{gateway}/data/{stream}"


def ack_topic(site: str, gateway: str) -> str:
    """Where the ingest acknowledges a gateway's batches."""
    return f"{PREFIX}/{site}/gateways/{gateway}/ack"


DATA_SUBSCRIPTION = f"{PREFIX}/+/gateways/+/data/+"
"""What the central ingest subscribes to."""
SHARE_GROUP_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A share group's name: no ``/``, ``+`` or ``#`` (MQTT 5 §4.8.2), bounded."""


def shared_subscription(group: str) -> str:
    """:data:`DATA_SUBSCRIPTION` shared by every ingest instance of ``group`` (MQTT 5 §4.8.2).

    The broker hands each batch to one member of the group; the message it delivers keeps
    its original topic (never the ``$share/...`` filter), so the topic still names the
    gateway the broker's ACL let publish there.
    """
    if SHARE_GROUP_PATTERN.fullmatch(group) is None:
        raise ValueError(f"share group {group!r}: use 1 to 64 of A-Z a-z 0-9 _ -")
    return f"$share/{group}/{DATA_SUBSCRIPTION}"


ANDON_SUBSCRIPTION = f"{PREFIX}/+/gateways/+/andon/+"
"""What an andon board subscribes to (every line of every gateway; narrow it to a site)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one stream from one gateway."""

    gateway: str
    site: str
    stream: str
    records: tuple[tuple[int, Mapping[str, Any]], ...]
    """(sequence number, record data) in sequence order."""
    backlog: int | None = None
    """Records in the gateway's outbox when the batch was cut (optional; not part of the
    batch id: a resent batch carries the figure of its first encoding)."""
    backlog_at_us: int | None = None
    """The gateway's wall clock when ``backlog`` was counted (µs since the Unix epoch)."""
    wire_records: str | None = field(default=None, compare=False, repr=False)
    """``records`` as :func:`encode_batch` writes them (the JSON array of ``{"seq", "data"}``),
    when whoever cut the batch has already made that text (the outbox sizes a batch with it):
    each record is then encoded once, not once to size it and again to send it. Must say the
    same as ``records``; :func:`wire_records` makes it."""
    data_texts: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    """Each record's ``data`` text as received, in record order, when the batch came in the
    gateway's canonical form (:func:`~sync.canonical.scan_records`); ``None`` otherwise. The
    ingest hashes and stores these instead of encoding each record again."""

    @property
    def batch_id(self) -> str:
        """Stable for the same records: resending the batch reuses its idempotency key."""
        seqs = [seq for seq, _ in self.records]
        return f"{self.gateway}:{self.stream}:{min(seqs)}-{max(seqs)}:{len(seqs)}"


@dataclass(frozen=True, slots=True)
class Ack:
    """The ingest's answer to a batch."""

    gateway: str
    batch_id: str
    committed: tuple[int, ...]
    conflicts: tuple[tuple[int, str], ...] = field(default=())


_WIRE_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
"""``json.dumps`` with the wire's options (compact; NaN and infinities refused), made once."""


def wire_records(records: Sequence[tuple[int, Mapping[str, Any]]]) -> str:
    """The JSON text of a batch's ``records`` array, exactly as :func:`encode_batch` writes
    it: canonical JSON (:mod:`sync.canonical`), so each record's ``data`` is already the text
    the warehouse hashes. Raises ``ValueError`` for a value JSON cannot carry (NaN, an
    infinity)."""
    return canonical_json(
        [{"seq": seq, "data": data if type(data) is dict else dict(data)} for seq, data in records]
    )


def wire_bytes(text: str) -> int:
    """How many bytes ``text`` takes on the wire (UTF-8): its length when it is ASCII, which
    Python knows without looking at it."""
    return len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))


def encode_batch(batch: Batch) -> bytes:
    """A batch as compressed JSON (NaN is refused: it never reaches the warehouse).

    The body is the JSON object of ``v, gateway, site, batch_id, stream, records`` and, when
    reported, ``backlog, backlog_at_us``, in that order; its ``records`` text is the batch's
    :attr:`Batch.wire_records` when it has it, so a record sized at the outbox is not encoded
    a second time here.
    """
    head = {
        "v": VERSION,
        "gateway": batch.gateway,
        "site": batch.site,
        "batch_id": batch.batch_id,
        "stream": batch.stream,
    }
    records = batch.wire_records
    if records is None:
        records = wire_records(batch.records)
    tail = ""
    if batch.backlog is not None and batch.backlog_at_us is not None:
        tail = _WIRE_JSON.encode({"backlog": batch.backlog, "backlog_at_us": batch.backlog_at_us})
        tail = "," + tail[1:-1]
    text = f'{_WIRE_JSON.encode(head)[:-1]},"records":{records}{tail}}}'
    try:
        body = text.encode()
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8. Escaped (ASCII JSON) the batch still goes and the
        # ingest refuses just that record as not storable; the escapes keep the ingest from
        # taking this text as canonical.
        body = json.dumps(json.loads(text), separators=(",", ":")).encode()
    return zlib.compress(body)


_BATCH_KEYS = frozenset(
    {"v", "gateway", "site", "batch_id", "stream", "records", "backlog", "backlog_at_us"}
)
BACKLOG_MAX = 2**63 - 1
"""A backlog is a BIGINT in the warehouse: 0 ≤ backlog ≤ this."""
BACKLOG_AT_MAX_US = 253_402_300_799_999_999
"""``backlog_at_us`` is a time in µs since the epoch: 0 ≤ it ≤ this, 9999-12-31 23:59:59.999999
UTC, the last instant a ``datetime`` (and so the warehouse's ``backlog_at``) holds."""
_RECORD_KEYS = frozenset({"seq", "data"})
_ACK_KEYS = frozenset({"v", "gateway", "batch_id", "committed", "conflicts"})
_CONFLICT_KEYS = frozenset({"seq", "reason"})
SEQ_MAX = 2**63 - 1
"""Sequence numbers are SQLite/PostgreSQL BIGINTs: 0 ≤ seq ≤ this."""


def is_int(value: object) -> bool:
    """A JSON integer: ``int`` but not ``bool`` (``true`` is not 1 here, and 3.9 is not 3)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _str_field(body: dict[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"malformed {what}: {key!r} must be a string, got {value!r:.40}")
    return value


def decode_batch(payload: bytes, *, max_bytes: int = MAX_BATCH_BYTES) -> Batch:
    """Parse a batch; :class:`ProtocolError` for anything malformed.

    Exact types, no coercion: ``seq`` must be a JSON integer (not ``3.9``, ``"4"`` or
    ``true``), ids strings, ``data`` an object; unknown keys are refused. A payload that
    inflates to more than ``max_bytes`` is refused without inflating the rest.
    """
    body, scanned = _decode(payload, max_bytes)
    unknown = body.keys() - _BATCH_KEYS
    if unknown:
        raise ProtocolError(f"malformed batch: unknown keys {sorted(unknown)}")
    gateway = _str_field(body, "gateway", "batch")
    site = _str_field(body, "site", "batch")
    stream = _str_field(body, "stream", "batch")
    data_texts: tuple[str, ...] | None = None
    if scanned is not None:
        records, texts = scanned
        data_texts = tuple(texts)
    else:
        records = _records(body.get("records"))
    for seq, data in records:
        if not 0 <= seq <= SEQ_MAX:
            raise ProtocolError(f"malformed batch: seq {seq} out of range")
        if type(data) is not dict:
            raise ProtocolError(f"malformed batch: data of seq {seq} must be an object")
    if not records:
        raise ProtocolError("empty batch")
    backlog, backlog_at_us = _backlog_fields(body)
    batch = Batch(
        gateway=gateway,
        site=site,
        stream=stream,
        records=tuple(records),
        backlog=backlog,
        backlog_at_us=backlog_at_us,
        data_texts=data_texts,
    )
    if body.get("batch_id") != batch.batch_id:
        raise ProtocolError("batch_id does not match the records")
    return batch


def _records(raw_records: object) -> list[tuple[int, Any]]:
    """The ``(seq, data)`` pairs of a decoded ``records`` value, each item exactly
    ``{"seq": int, "data": …}``."""
    if not isinstance(raw_records, list):
        raise ProtocolError("malformed batch: 'records' must be a list")
    records: list[tuple[int, Any]] = []
    for item in raw_records:
        if not isinstance(item, dict) or item.keys() != _RECORD_KEYS:
            raise ProtocolError("malformed batch: a record is {'seq': int, 'data': {...}}")
        seq = item["seq"]
        if not is_int(seq):
            raise ProtocolError(f"malformed batch: seq must be an integer, got {seq!r:.40}")
        records.append((seq, item["data"]))
    return records


def _backlog_fields(body: dict[str, Any]) -> tuple[int | None, int | None]:
    """The optional backlog of a batch: both fields or neither, integers in range."""
    backlog, at_us = body.get("backlog"), body.get("backlog_at_us")
    if backlog is None and at_us is None:
        return None, None
    if not isinstance(backlog, int) or not is_int(backlog) or not 0 <= backlog <= BACKLOG_MAX:
        raise ProtocolError(f"malformed batch: backlog must be an integer ≥ 0, got {backlog!r:.40}")
    if not isinstance(at_us, int) or not is_int(at_us) or not 0 <= at_us <= BACKLOG_AT_MAX_US:
        raise ProtocolError(
            f"malformed batch: backlog_at_us must be a time in µs, got {at_us!r:.40}"
        )
    return backlog, at_us


def encode_ack(ack: Ack) -> bytes:
    """An ack as JSON (small: not compressed)."""
    return json.dumps(
        {
            "v": VERSION,
            "gateway": ack.gateway,
            "batch_id": ack.batch_id,
            "committed": list(ack.committed),
            "conflicts": [{"seq": s, "reason": r} for s, r in ack.conflicts],
        },
        separators=(",", ":"),
    ).encode()


def sign_ack(payload: bytes, key: bytes) -> str:
    """The signature of an encoded ack (the value of :data:`ACK_SIGNATURE_PROPERTY`)."""
    digest = hmac.new(key, ACK_SIGNATURE_CONTEXT + payload, hashlib.sha256).hexdigest()
    return f"{ACK_SIGNATURE_SCHEME}:{digest}"


def verify_ack(payload: bytes, signature: str | None, key: bytes) -> bool:
    """Whether ``signature`` is this key's signature of ``payload`` (constant-time)."""
    if signature is None:
        return False
    return hmac.compare_digest(signature.encode(errors="replace"), sign_ack(payload, key).encode())


def decode_ack(payload: bytes, *, max_bytes: int = MAX_ACK_BYTES) -> Ack:
    """Parse an ack; :class:`ProtocolError` for anything malformed.

    A payload above ``max_bytes`` is refused before it is parsed; types are exact (a
    committed ``true`` or ``"4"`` is refused, not read as 1 or 4).
    """
    if len(payload) > max_bytes:
        raise ProtocolError(f"ack larger than {max_bytes} bytes ({len(payload)})")
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        # ValueError: json's own errors, undecodable UTF-8, and an integer of more than
        # 4,300 digits, which json raises as a plain ValueError.
        raise ProtocolError(f"malformed ack: {exc!r}") from None
    if not isinstance(body, dict):
        raise ProtocolError("an ack is a JSON object")
    if body.keys() - _ACK_KEYS:
        raise ProtocolError(f"malformed ack: unknown keys {sorted(body.keys() - _ACK_KEYS)}")
    gateway = _str_field(body, "gateway", "ack")
    batch_id = _str_field(body, "batch_id", "ack")
    committed = body.get("committed")
    conflicts = body.get("conflicts", [])
    if not isinstance(committed, list) or not all(is_int(s) for s in committed):
        raise ProtocolError("malformed ack: 'committed' must be a list of integers")
    if not isinstance(conflicts, list) or not all(
        isinstance(c, dict)
        and c.keys() == _CONFLICT_KEYS
        and is_int(c["seq"])
        and isinstance(c["reason"], str)
        for c in conflicts
    ):
        raise ProtocolError("malformed ack: 'conflicts' must be [{'seq': int, 'reason': str}]")
    return Ack(
        gateway=gateway,
        batch_id=batch_id,
        committed=tuple(committed),
        conflicts=tuple((c["seq"], c["reason"]) for c in conflicts),
    )


Scanned = tuple[list[tuple[int, Any]], list[str]]
"""A canonical batch's ``(seq, data)`` records and each record's data text as received."""


def _decode(payload: bytes, max_bytes: int) -> tuple[dict[str, Any], Scanned | None]:
    """The batch's JSON object and, when it came in the gateway's canonical form, its records
    with their data texts (:func:`_scan_body`; its object then has no ``records``)."""
    raw = _inflate(payload, max_bytes)
    try:
        scanned = _scan_body(raw)
        if scanned is not None:
            return scanned[0], scanned[1]
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("batch nested too deeply") from None
    except ProtocolError:
        raise
    except ValueError as exc:
        # json's own errors, undecodable UTF-8, and a number beyond what Python reads (an
        # integer of more than 4,300 digits), which json raises as a plain ValueError.
        raise ProtocolError(f"not a compressed JSON batch: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise ProtocolError("not a version 1 batch")
    return body, None


def _inflate(payload: bytes, max_bytes: int) -> bytes:
    """The batch's JSON bytes, refused when they would be more than ``max_bytes``."""
    if len(payload) > max_bytes + 64 * 1024:
        # Compressed data is at most slightly larger than the original (stored blocks).
        raise ProtocolError(f"batch larger than {max_bytes} bytes ({len(payload)} compressed)")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, max_bytes)
        over = bool(inflater.unconsumed_tail) or (
            not inflater.eof and bool(inflater.decompress(b"", 1))
        )
    except zlib.error as exc:
        raise ProtocolError(f"not a compressed JSON batch: {exc}") from None
    if over:
        raise ProtocolError(f"batch larger than {max_bytes} bytes")
    return raw


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity: refuse them rather than store a non-finite number."""
    raise ProtocolError(f"not a compressed JSON batch: {name} is not JSON")


_SCAN = value_scanner(json.JSONDecoder(parse_constant=_no_constant))
"""What :func:`json.loads` reads a value with, NaN and infinities refused alike."""
_KEY_COLON = re.compile(r'"([a-z_]{1,16})":')
"""A top-level key of the gateway's form, with its colon: the batch keys are all short and
plain, so a key that is not is left to the full decoder."""


def _scan_body(raw: bytes) -> tuple[dict[str, Any], Scanned] | None:
    """The batch object as :func:`json.loads` reads it, but for its records, which come with
    each record's data text, when the body is compact, version 1, and its ``records`` array
    is in the canonical form (:func:`~sync.canonical.scan_records`). ``None`` for any other
    body, valid or not: the full decoder then reads it (or says what is wrong), as for any
    batch."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    if not text.startswith('{"v":1,'):  # version 1, as the gateway writes it
        return None
    body: dict[str, Any] = {}
    scanned: Scanned | None = None
    pos = 1
    while True:
        key = _KEY_COLON.match(text, pos)
        if key is None or key[1] in body or (key[1] == "records" and scanned is not None):
            return None  # another form, or a repeated key (the full decoder keeps the last)
        pos = key.end()
        if key[1] == "records":
            records = scan_records(text, pos, _SCAN)
            if records is None:
                return None
            scanned = records[0], records[1]
            pos = records[2]
        else:
            try:
                body[key[1]], pos = _SCAN(text, pos)
            except (StopIteration, ValueError):
                return None
        if text.startswith(",", pos):
            pos += 1
        elif pos + 1 == len(text) and text.endswith("}"):
            break
        else:
            return None
    if scanned is None:
        return None
    return body, scanned


def seq_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Collapse sequence numbers into inclusive ranges, for logs and reconciliation."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges
