"""The gateway <-> ingest wire contract: round trips, refusals, and no crash on garbage."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.canonical import canonical_json
from sync.protocol import (
    BACKLOG_AT_MAX_US,
    BACKLOG_MAX,
    MAX_BATCH_BYTES,
    Ack,
    Batch,
    ProtocolError,
    ack_topic,
    alerts_topic,
    andon_topic,
    data_topic,
    decode_ack,
    decode_batch,
    encode_ack,
    encode_batch,
    seq_ranges,
    status_topic,
    wire_records,
)

BATCH = Batch(
    gateway="hull-gw1",
    site="hull",
    stream="packs",
    records=((1001, {"net_g": 241.5, "line": "L1"}), (1002, {"net_g": 239.0, "line": "L1"})),
)


def test_batch_round_trip_and_stable_id() -> None:
    decoded = decode_batch(encode_batch(BATCH))
    assert decoded == BATCH
    assert decoded.batch_id == "hull-gw1:packs:1001-1002:2"


def test_ack_round_trip() -> None:
    ack = Ack(gateway="hull-gw1", batch_id="x", committed=(1, 2), conflicts=((3, "differs"),))
    assert decode_ack(encode_ack(ack)) == ack


def test_topics() -> None:
    assert andon_topic("hull", "gw1", "L1") == "lineside/v1/hull/gateways/gw1/andon/L1"
    assert alerts_topic("hull", "gw1", "L1") == "lineside/v1/hull/gateways/gw1/alerts/L1"
    assert status_topic("hull", "gw1") == "lineside/v1/hull/gateways/gw1/status"
    assert data_topic("hull", "gw1", "packs") == "lineside/v1/hull/gateways/gw1/data/packs"
    assert ack_topic("hull", "gw1") == "lineside/v1/hull/gateways/gw1/ack"


def test_nan_never_reaches_the_wire() -> None:
    bad = Batch(gateway="g", site="s", stream="packs", records=((1, {"net_g": float("nan")}),))
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_batch(bad)


def _compress(body: object) -> bytes:
    return zlib.compress(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not compressed", "not a compressed JSON batch"),
        (_compress({"v": 2}), "not a version 1 batch"),
        (_compress([1, 2]), "not a version 1 batch"),
        (_compress({"v": 1, "gateway": "g", "site": "s", "stream": "p", "records": []}), "empty"),
        (
            _compress(
                {
                    "v": 1,
                    "gateway": "g",
                    "site": "s",
                    "stream": "p",
                    "batch_id": "forged",
                    "records": [{"seq": 1, "data": {}}],
                }
            ),
            "batch_id does not match",
        ),
        (_compress({"v": 1, "records": [{"seq": "x"}]}), "malformed batch"),
        (zlib.compress(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (zlib.compress(b" " * (MAX_BATCH_BYTES + 10)), "larger than"),
    ],
    ids=["garbage", "version", "list", "empty", "forged-id", "types", "nesting", "zip-bomb"],
)
def test_malformed_batches_are_refused_clearly(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_batch(payload)


@pytest.mark.parametrize("payload", [b"", b"[]", b"{}", b'{"gateway": 1}', b"[" * 50_000])
def test_malformed_acks_are_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_ack(payload)


@given(st.binary(max_size=2000))
def test_decoding_arbitrary_bytes_only_ever_raises_protocol_error(payload: bytes) -> None:
    for decode in (decode_batch, decode_ack):
        with contextlib.suppress(ProtocolError):  # anything else fails the test
            decode(payload)


def test_seq_ranges() -> None:
    assert seq_ranges([5, 1, 2, 3, 7, 8, 3]) == [(1, 3), (5, 5), (7, 8)]
    assert seq_ranges([]) == []


BACKLOG_AT = 1_764_921_600_000_000


def _body(**extra: object) -> bytes:
    body = json.loads(zlib.decompress(encode_batch(BATCH)))
    body.update(extra)
    return zlib.compress(json.dumps(body).encode())


def test_a_batch_with_its_backlog_round_trips_with_the_same_id() -> None:
    reported = dataclasses.replace(BATCH, backlog=1200, backlog_at_us=BACKLOG_AT)
    decoded = decode_batch(encode_batch(reported))
    assert decoded == reported
    assert (decoded.backlog, decoded.backlog_at_us) == (1200, BACKLOG_AT)
    assert decoded.batch_id == BATCH.batch_id
    body = json.loads(zlib.decompress(encode_batch(reported)))
    assert (body["backlog"], body["backlog_at_us"]) == (1200, BACKLOG_AT)
    assert body["records"] == json.loads(zlib.decompress(encode_batch(BATCH)))["records"]


def test_a_batch_without_a_backlog_has_neither_field() -> None:
    body = json.loads(zlib.decompress(encode_batch(BATCH)))
    assert "backlog" not in body
    assert "backlog_at_us" not in body
    decoded = decode_batch(encode_batch(BATCH))
    assert (decoded.backlog, decoded.backlog_at_us) == (None, None)


def test_the_backlog_bounds_are_accepted() -> None:
    low = decode_batch(_body(backlog=0, backlog_at_us=0))
    assert (low.backlog, low.backlog_at_us) == (0, 0)
    high = decode_batch(_body(backlog=BACKLOG_MAX, backlog_at_us=BACKLOG_AT_MAX_US))
    assert (high.backlog, high.backlog_at_us) == (BACKLOG_MAX, BACKLOG_AT_MAX_US)


@pytest.mark.parametrize(
    "fields",
    [
        {"backlog": -1, "backlog_at_us": BACKLOG_AT},
        {"backlog": BACKLOG_MAX + 1, "backlog_at_us": BACKLOG_AT},
        {"backlog": 3.5, "backlog_at_us": BACKLOG_AT},
        {"backlog": "12", "backlog_at_us": BACKLOG_AT},
        {"backlog": True, "backlog_at_us": BACKLOG_AT},
        {"backlog": 12, "backlog_at_us": -1},
        {"backlog": 12, "backlog_at_us": BACKLOG_AT_MAX_US + 1},
        {"backlog": 12, "backlog_at_us": 1.5e15},
        {"backlog": 12},
        {"backlog_at_us": BACKLOG_AT},
        {"backlog": None, "backlog_at_us": BACKLOG_AT},
    ],
)
def test_a_malformed_backlog_refuses_the_batch(fields: dict[str, object]) -> None:
    with pytest.raises(ProtocolError, match="backlog"):
        decode_batch(_body(**fields))


def body_as_dumped(batch: Batch) -> bytes:
    """The body through ``json.dumps``: the form :func:`encode_batch` assembles from its parts
    (and from the records' text made when the batch was sized). Its ``records`` array is the
    canonical JSON of its items (sorted keys, so ``data`` before ``seq``; characters as
    themselves), the rest compact JSON in the protocol's key order."""
    records = json.dumps(
        [{"seq": seq, "data": dict(data)} for seq, data in batch.records],
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        ensure_ascii=False,
    )
    head: dict[str, object] = {
        "v": 1,
        "gateway": batch.gateway,
        "site": batch.site,
        "batch_id": batch.batch_id,
        "stream": batch.stream,
        "records": None,
    }
    if batch.backlog is not None and batch.backlog_at_us is not None:
        head["backlog"] = batch.backlog
        head["backlog_at_us"] = batch.backlog_at_us
    text = json.dumps(head, allow_nan=False, separators=(",", ":"))
    return text.replace('"records":null', f'"records":{records}', 1).encode()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    records=st.lists(
        st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4), min_size=1, max_size=5
    ),
    first=st.integers(min_value=0, max_value=2**62),
    backlog=st.none() | st.integers(min_value=0, max_value=BACKLOG_MAX),
    sized=st.booleans(),
)
def test_the_body_is_the_same_bytes_however_it_is_assembled(
    records: list[dict[str, object]], first: int, backlog: int | None, sized: bool
) -> None:
    batch = Batch(
        gateway="hull-gw1",
        site="hull",
        stream="packs",
        records=tuple((first + i, data) for i, data in enumerate(records)),
        backlog=backlog,
        backlog_at_us=None if backlog is None else 1_765_000_000_000_000,
    )
    if sized:
        batch = dataclasses.replace(batch, wire_records=wire_records(batch.records))
    assert zlib.decompress(encode_batch(batch)) == body_as_dumped(batch)
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch
    # The ingest reads each record's canonical text off the wire instead of encoding it again.
    assert decoded.data_texts == tuple(canonical_json(data) for _, data in batch.records)


def test_a_value_json_cannot_carry_is_refused_whichever_way_the_records_are_encoded() -> None:
    bad = (1, {"net_g": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        wire_records([bad])
    with pytest.raises(ValueError, match="JSON"):
        encode_batch(dataclasses.replace(BATCH, records=(bad,)))
