"""Records are checked against their stream's schema at the ingest, with exact types and no
coercion (issue 18). Before, ``int(r["seq"])`` read a seq of 3.9 as 3, "4" as 4 and ``true``
as 1, and any field of any type was stored.

The schema is the gateway's own (``gateway/store/schema.py``, :mod:`sync.record_schema`), so a
real gateway's records always pass: the conservation check at the end of each test proves it.
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.ingest.http_app import INGEST_PATH
from sync.protocol import Batch, data_topic, encode_batch
from sync.record_schema import MAX_TEXT_CHARS, json_types
from tests.security.conftest import SITE, VICTIM, Client, Ingest
from tests.security.test_forged_records import forged_packs, victim_syncs
from tests.support.gateway_tokens import token_for
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

GOOD = dict(forged_packs([1]).records[0][1])


def raw_batch(seq: object, *, batch_id: str | None = None) -> bytes:
    """A batch whose one record has ``seq`` as given (not necessarily an integer)."""
    body = {
        "v": 1,
        "gateway": VICTIM,
        "site": SITE,
        "batch_id": batch_id or f"{VICTIM}:packs:{seq}-{seq}:1",
        "stream": "packs",
        "records": [{"seq": seq, "data": GOOD}],
    }
    return zlib.compress(json.dumps(body).encode())


@pytest.mark.parametrize("seq", [3.9, "4", True, 3.0, None, -1, 2**63], ids=repr)
async def test_a_sequence_number_that_is_not_an_exact_integer_refuses_the_batch(
    seq: object, ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    headers = {
        "content-encoding": "deflate",
        "idempotency-key": f"{VICTIM}:packs:{seq}-{seq}:1",
        "authorization": f"Bearer {token_for(VICTIM)}",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(url, content=raw_batch(seq), headers=headers)
    assert answer.status_code == 400
    assert "seq" in answer.json()["reason"]
    assert ingest.records() == []
    assert any("400 bad_request" in r.getMessage() for r in caplog.records)


async def test_a_coerced_sequence_number_over_mqtt_is_dropped_and_logged(
    tmp_path: Path,
    shipped_broker: Mosquitto,
    ingest: Ingest,
    clients: list[Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    # The gateway's own login, its own topic: only the content is wrong.
    raw = Client(shipped_broker, VICTIM, client_id="sloppy")
    clients.append(raw)
    assert raw.connect() == 0
    for seq in (3.9, "4", True):
        assert raw.publish(data_topic(SITE, VICTIM, "packs"), raw_batch(seq)) == 0
    consumer = ingest.service.consumer
    assert consumer is not None
    await wait_for(lambda: consumer.stats.dropped_protocol == 3, 10, "three refusals")
    raw.close()
    assert ingest.records() == []
    assert sum("seq must be an integer" in r.getMessage() for r in caplog.records) == 3
    # The gateway's real records (1, 2, ...) are then stored, exactly once.
    await victim_syncs(tmp_path, shipped_broker, ingest)


BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("net_g as a string", {"net_g": "251.5"}, "net_g must be a number"),
    ("net_g as a boolean", {"net_g": True}, "net_g must be a number"),
    ("ts_us as a float", {"ts_us": 1.5}, "ts_us must be an integer"),
    ("ts_us as a string", {"ts_us": "4"}, "ts_us must be an integer"),
    ("accepted as true", {"accepted": True}, "accepted must be an integer"),
    ("line as a number", {"line": 1}, "line must be a string"),
    ("null where NOT NULL", {"device": None}, "device must not be null"),
    ("a field no table has", {"owner": "x"}, "unknown field"),
    ("ts_us missing", {"ts_us": ...}, "ts_us is missing"),
    ("integer beyond 64 bits", {"pack_counter": 2**64}, "outside 64 bits"),
    ("a huge string", {"run_number": "R" * (MAX_TEXT_CHARS + 1)}, "longer than"),
]


async def test_records_that_do_not_match_their_stream_are_refused_one_by_one(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    records: list[tuple[int, dict[str, Any]]] = [(1, GOOD)]
    for n, (_, change, _) in enumerate(BAD_FIELDS, start=2):
        data = {**GOOD, **{k: v for k, v in change.items() if v is not ...}}
        for key in [k for k, v in change.items() if v is ...]:
            del data[key]
        records.append((n, data))
    records.append((len(records) + 1, GOOD))
    batch = Batch(VICTIM, SITE, "packs", tuple(records))
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    headers = {
        "content-encoding": "deflate",
        "idempotency-key": batch.batch_id,
        "authorization": f"Bearer {token_for(VICTIM)}",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(url, content=encode_batch(batch), headers=headers)
    assert answer.status_code == 200
    ack = answer.json()
    last = len(records)
    assert ack["committed"] == [1, last], "the valid records around them are stored"
    reasons = {c["seq"]: c["reason"] for c in ack["conflicts"]}
    for n, (what, _, expected) in enumerate(BAD_FIELDS, start=2):
        assert expected in reasons[n], (what, reasons[n])
        assert reasons[n].startswith("invalid record: not a packs record")
    assert [seq for _, seq, _ in ingest.records()] == [1, last]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged.count("invalid record") == len(BAD_FIELDS)


async def test_a_batch_of_an_unknown_stream_is_refused(ingest: Ingest) -> None:
    batch = Batch(VICTIM, SITE, "passwords", ((1, {"ts_us": 1}),))
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    headers = {
        "content-encoding": "deflate",
        "idempotency-key": batch.batch_id,
        "authorization": f"Bearer {token_for(VICTIM)}",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(url, content=encode_batch(batch), headers=headers)
    assert answer.status_code == 400
    assert "unknown stream" in answer.json()["reason"]
    assert ingest.records() == []


def test_the_type_map_is_the_gateways_schema() -> None:
    types = json_types()
    assert types["packs"]["net_g"] == "number"
    assert types["packs"]["ts_us"] == "integer"
    assert types["packs"]["run_number"] == "string?"
    assert types["label_scans"]["raw"] == "hex"
    assert "seq" not in types["packs"]
