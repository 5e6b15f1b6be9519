"""The wire contract between gateways and the central ingest. Pure: values in, values out.

Topics (MQTT, version 1 of the layout; ``{site}``, ``{line}``, ``{gateway}`` are ids from the
gateway's config, which only allows ``[A-Za-z0-9_.-]``):

    lineside/v1/{site}/{line}/andon                    retained andon state of a line
    lineside/v1/{site}/{line}/alerts                   alert transitions of a line
    lineside/v1/{site}/gateways/{gateway}/alerts       alert transitions without a line
    lineside/v1/{site}/gateways/{gateway}/status       retained "online" / last will "offline"
    lineside/v1/{site}/gateways/{gateway}/data/{stream}   record batches
    lineside/v1/{site}/gateways/{gateway}/ack          acknowledgements from the ingest

A **batch** carries records of one stream, each with its gateway sequence number, as
zlib-compressed JSON (the same body is POSTed over HTTPS with ``Content-Encoding: deflate``
and ``Idempotency-Key: <batch_id>``)::

    {"v": 1, "gateway": "hull-gw1", "site": "hull", "batch_id": "hull-gw1:1001-1050",
     "stream": "packs", "records": [{"seq": 1001, "data": {...}}, ...]}

An **ack** lists the sequence numbers the warehouse has committed (a record leaves the
gateway's outbox only then), and those it refused::

    {"v": 1, "gateway": "hull-gw1", "batch_id": "...", "committed": [1001, ...],
     "conflicts": [{"seq": 1003, "reason": "same sequence, different payload"}]}
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
PREFIX = "lineside/v1"
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""A decompressed batch larger than this is refused (protects the ingest's memory)."""


class ProtocolError(ValueError):
    """A message that does not follow this contract."""


def andon_topic(site: str, line: str) -> str:
    """Where a line's retained andon state is published."""
    return f"{PREFIX}/{site}/{line}/andon"


def alerts_topic(site: str, line: str) -> str:
    """Where a line's alert transitions are published."""
    return f"{PREFIX}/{site}/{line}/alerts"


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


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one stream from one gateway."""

    gateway: str
    site: str
    stream: str
    records: tuple[tuple[int, Mapping[str, Any]], ...]
    """(sequence number, record data) in sequence order."""

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


def encode_batch(batch: Batch) -> bytes:
    """A batch as compressed JSON (NaN is refused: it never reaches the warehouse)."""
    body = {
        "v": VERSION,
        "gateway": batch.gateway,
        "site": batch.site,
        "batch_id": batch.batch_id,
        "stream": batch.stream,
        "records": [{"seq": seq, "data": dict(data)} for seq, data in batch.records],
    }
    return zlib.compress(json.dumps(body, allow_nan=False, separators=(",", ":")).encode())


def decode_batch(payload: bytes) -> Batch:
    """Parse a batch; :class:`ProtocolError` for anything malformed."""
    body = _decode(payload)
    try:
        records = tuple((int(r["seq"]), dict(r["data"])) for r in body["records"])
        batch = Batch(
            gateway=str(body["gateway"]),
            site=str(body["site"]),
            stream=str(body["stream"]),
            records=records,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed batch: {exc!r}") from None
    if not records:
        raise ProtocolError("empty batch")
    if body.get("batch_id") != batch.batch_id:
        raise ProtocolError("batch_id does not match the records")
    return batch


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


def decode_ack(payload: bytes) -> Ack:
    """Parse an ack; :class:`ProtocolError` for anything malformed."""
    try:
        body = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"malformed ack: {exc!r}") from None
    if not isinstance(body, dict):
        raise ProtocolError("an ack is a JSON object")
    try:
        return Ack(
            gateway=str(body["gateway"]),
            batch_id=str(body["batch_id"]),
            committed=tuple(int(s) for s in body["committed"]),
            conflicts=tuple((int(c["seq"]), str(c["reason"])) for c in body.get("conflicts", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed ack: {exc!r}") from None


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(payload, MAX_BATCH_BYTES)
        if inflater.unconsumed_tail:
            raise ProtocolError(f"batch larger than {MAX_BATCH_BYTES} bytes")
        body = json.loads(raw)
    except RecursionError:
        raise ProtocolError("batch nested too deeply") from None
    except (zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a compressed JSON batch: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise ProtocolError("not a version 1 batch")
    return body


def seq_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Collapse sequence numbers into inclusive ranges, for logs and reconciliation."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges
