"""The gateway <-> ingest wire contract: round trips, refusals, and no crash on garbage."""

from __future__ import annotations

import contextlib
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.protocol import (
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
