"""The ingest hashes and stores each record's text as the gateway sent it.

The gateway writes a batch's records array as canonical JSON; the ingest reads each record's
data text off the wire (sync/canonical.py, ``Batch.data_texts``) instead of encoding the record
again. These hold the three things that make that safe:

- a body in any other form, or broken anywhere, decodes to the same batch or fails with the
  same error as the whole-body decoder (random edits of real bodies);
- a text read off the wire is exactly the span its record was decoded from;
- the prepared record (text, SHA-256, verdict) is the same as when the ingest encodes it, and a
  batch whose first text is not canonical is encoded record by record, as any batch is.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import sync.protocol
from sync.canonical import canonical_json
from sync.ingest.warehouse_base import prepare_with_facts, received_texts
from sync.mqtt_ack_check import AckCheck
from sync.mqtt_stats import UplinkStats
from sync.protocol import (
    Batch,
    ProtocolError,
    decode_ack,
    decode_batch,
    encode_batch,
    wire_bytes,
    wire_records,
)

TEMPERATURE = {
    "ts_us": 1_767_225_600_000_000,
    "line": "L1",
    "device": "probe1",
    "probe": "P1",
    "location": "chiller",
    "celsius": 2.5,
    "flags": 0,
    "run_number": None,
}

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
RECORDS = st.lists(
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4), min_size=1, max_size=4
)
EDIT_CHARS = '{}[],:" 0123456789-.eE\\utnrfal'


def body_text(records: list[dict[str, Any]], first: int, backlog: bool) -> str:
    batch = Batch(
        gateway="hull-gw1",
        site="hull",
        stream="temperatures",
        records=tuple((first + i, data) for i, data in enumerate(records)),
        backlog=7 if backlog else None,
        backlog_at_us=1_765_000_000_000_000 if backlog else None,
    )
    return zlib.decompress(encode_batch(batch)).decode()


def outcome(payload: bytes) -> tuple[str, Any]:
    """What decoding gives: the batch, or the error's message."""
    try:
        batch = decode_batch(payload)
    except ProtocolError as exc:
        return "error", str(exc)
    return "batch", batch


def whole_body_outcome(payload: bytes) -> tuple[str, Any]:
    """The same, by the whole-body decoder alone (the form is never taken as canonical)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.protocol, "_scan_body", lambda raw: None)
        return outcome(payload)


def edited(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each edit made: at ``where`` (from the end when negative, so both ends
    of a body are edited often), ``cut`` characters replaced by ``insert``."""
    for where, cut, insert in edits:
        at = where % (len(text) + 1) if where >= 0 else max(0, len(text) + 1 + where)
        text = text[:at] + insert + text[at + cut :]
    return text


@settings(max_examples=400, deadline=None)
@given(
    records=RECORDS,
    first=st.integers(min_value=0, max_value=2**62),
    backlog=st.booleans(),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=-30, max_value=10_000),
            st.integers(min_value=0, max_value=3),
            st.text(alphabet=EDIT_CHARS, max_size=3),
        ),
        max_size=3,
    ),
)
def test_any_body_decodes_as_the_whole_body_decoder_decodes_it(
    records: list[dict[str, Any]],
    first: int,
    backlog: bool,
    edits: list[tuple[int, int, str]],
) -> None:
    text = edited(body_text(records, first, backlog), edits)
    payload = zlib.compress(text.encode(errors="surrogatepass"))
    got = outcome(payload)
    assert got == whole_body_outcome(payload)
    event(got[0] if got[0] == "error" else f"batch, texts {got[1].data_texts is not None}")
    if got[0] == "batch" and got[1].data_texts is not None:
        batch: Batch = got[1]
        assert len(batch.data_texts or ()) == len(batch.records)
        for (_, data), data_text in zip(batch.records, batch.data_texts or (), strict=True):
            assert data_text in text
            assert json.loads(data_text) == data


@given(records=RECORDS, first=st.integers(min_value=0, max_value=2**62))
def test_a_gateways_batch_carries_every_records_canonical_text(
    records: list[dict[str, Any]], first: int
) -> None:
    batch = decode_batch(zlib.compress(body_text(records, first, backlog=False).encode()))
    assert batch.data_texts == tuple(canonical_json(data) for data in records)


HEAD = '{"v":1,"gateway":"g","site":"s","batch_id":"g:temperatures:1-1:1","stream":"temperatures"'
ONE = '"records":[{"data":{"a":1},"seq":1}]'


V1_0 = HEAD.replace('"v":1', '"v":1.0')
V_TRUE = HEAD.replace('"v":1', '"v":true')


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "," + ONE + "}",  # the gateway's form
        HEAD + "," + ONE + "} ",  # then whitespace
        HEAD + "," + ONE + "}x",  # then something else
        HEAD + "," + ONE + "}}",
        " " + HEAD + "," + ONE + "}",
        HEAD + "," + ONE + "," + ONE + "}",  # records twice
        HEAD + "," + ONE + ',"v":1}',  # a key twice
        HEAD + "," + ONE + ',"v":2}',
        HEAD + "," + ONE + ',"backlog":NaN,"backlog_at_us":1}',
        HEAD + "," + ONE + ',"x":1}',  # an unknown key
        V1_0 + "," + ONE + "}",
        V_TRUE + "," + ONE + "}",
        HEAD + "," + ONE.replace("1}]", "1},]") + "}",
        HEAD + ',"records":[]}',
        HEAD + "}",
    ],
)
def test_the_ends_of_a_body_decode_as_the_whole_body_decoder_decodes_them(text: str) -> None:
    payload = zlib.compress(text.encode())
    assert outcome(payload) == whole_body_outcome(payload)


@pytest.mark.parametrize(
    "records",
    [
        '[{"seq":1,"data":{"a":1}}]',  # an older gateway: seq first
        '[{"data":{"a":1},"seq":1} ]',  # whitespace
        '[{"data":{"a":1},"seq":01}]',  # a seq JSON does not allow
        '[{"data":{"a":1},"data":{"a":2},"seq":1}]',  # a repeated key
        '[{"data":{"a":1},"seq":1,"x":2}]',  # a key too many
    ],
)
def test_another_form_of_records_is_decoded_whole_and_encoded_at_the_ingest(
    records: str,
) -> None:
    text = (
        '{"v":1,"gateway":"g","site":"s","batch_id":"g:temperatures:1-1:1",'
        f'"stream":"temperatures","records":{records}}}'
    )
    payload = zlib.compress(text.encode())
    got = outcome(payload)
    assert got == whole_body_outcome(payload)
    if got[0] == "batch":
        assert got[1].data_texts is None


@pytest.mark.parametrize("number", ["1" * 5000, "-" + "9" * 4400], ids=["5000", "-4400"])
def test_a_number_python_cannot_read_is_a_protocol_error_not_a_crash(number: str) -> None:
    for records in (
        f'[{{"data":{{"a":{number}}},"seq":1}}]',
        f'[{{"seq":{number},"data":{{}}}}]',
    ):
        text = (
            '{"v":1,"gateway":"g","site":"s","batch_id":"g:temperatures:1-1:1",'
            f'"stream":"temperatures","records":{records}}}'
        )
        with pytest.raises(ProtocolError, match="not a compressed JSON batch"):
            decode_batch(zlib.compress(text.encode()))
    ack = f'{{"v":1,"gateway":"g","batch_id":"b","committed":[{number}]}}'
    with pytest.raises(ProtocolError, match="malformed ack"):
        decode_ack(ack.encode())


def canonical_batch(*datas: dict[str, Any]) -> Batch:
    batch = Batch(
        gateway="g",
        site="s",
        stream="temperatures",
        records=tuple((10 + i, data) for i, data in enumerate(datas)),
    )
    return decode_batch(encode_batch(batch))


def prepared_both_ways(batch: Batch) -> tuple[list[Any], list[Any]]:
    """Each record prepared from its received text, and encoded at the ingest."""
    as_received = prepare_with_facts(batch)[0]
    encoded = prepare_with_facts(dataclasses.replace(batch, data_texts=None))[0]
    return as_received, encoded


@given(
    celsius=st.floats(min_value=-50, max_value=150),
    line=st.text(min_size=1, max_size=12),
    location=st.text(min_size=1, max_size=12),
    ts_us=st.integers(min_value=0, max_value=2**62),
)
def test_a_record_prepared_from_its_received_text_is_the_one_encoded_at_the_ingest(
    celsius: float, line: str, location: str, ts_us: int
) -> None:
    data = {**TEMPERATURE, "celsius": celsius, "line": line, "location": location, "ts_us": ts_us}
    batch = canonical_batch(TEMPERATURE, data)
    assert received_texts(batch) is not None
    as_received, encoded = prepared_both_ways(batch)
    assert as_received == encoded


def test_a_first_text_that_is_not_canonical_has_the_batch_encoded_at_the_ingest() -> None:
    # Another encoder's number: the form is canonical, the first text is not.
    text = (
        '{"v":1,"gateway":"g","site":"s","batch_id":"g:temperatures:1-2:2",'
        '"stream":"temperatures","records":['
        f'{{"data":{canonical_json(TEMPERATURE).replace("2.5", "2.50")},"seq":1}},'
        f'{{"data":{canonical_json(TEMPERATURE)},"seq":2}}]}}'
    )
    batch = decode_batch(zlib.compress(text.encode()))
    assert batch.data_texts is not None
    assert received_texts(batch) is None
    as_received, encoded = prepared_both_ways(batch)
    assert as_received == encoded
    assert as_received[0].payload == canonical_json(TEMPERATURE)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("line", "L1\ud800", "invalid record: not storable as JSON"),
        ("location", "chill\x00er", "invalid record: NUL character in a string"),
        ("location", "chill\x1fer", None),
    ],
)
def test_escaped_text_is_encoded_again_so_a_bad_record_is_refused_as_ever(
    field: str, value: str, problem: str | None
) -> None:
    batch = canonical_batch(TEMPERATURE, {**TEMPERATURE, field: value})
    as_received, encoded = prepared_both_ways(batch)
    assert as_received == encoded
    assert as_received[0].problem is None
    got = as_received[1].problem
    assert got is None if problem is None else got is not None and got.startswith(problem)


def test_wire_bytes_are_utf8_bytes() -> None:
    for text in ("", "abc", "Fischfilet ÄÖÜ", "鮭", "🐟", "\ud800"):
        assert wire_bytes(text) == len(text.encode(errors="surrogatepass"))
    records = [(1, {**TEMPERATURE, "location": "Kühlraum"})]
    assert wire_bytes(wire_records(records)) == len(wire_records(records).encode())


def test_an_ack_with_a_number_python_cannot_read_is_counted_and_ignored() -> None:
    # Read unsigned only where the gateway has no ack key; otherwise refused before parsing.
    stats = UplinkStats()
    check = AckCheck(None, stats, "lineside/v1/s/gateways/g/ack", "g")
    payload = b'{"v":1,"gateway":"g","batch_id":"b","committed":[' + b"3" * 5000 + b"]}"
    assert check.read(payload, None) is None
    assert stats.bad_acks == 1
