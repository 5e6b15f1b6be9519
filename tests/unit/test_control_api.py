"""The control requests of gateway.api: what the gateway accepts, and how a client sends it."""

from __future__ import annotations

import json

import pytest

from gateway import api
from gateway.api_fields import MAX_OPERATOR_CHARS, MAX_SEQ_ITEMS


def test_a_request_reads_its_fields_stripped_and_ignores_unknown_keys() -> None:
    request = api.StartRun.from_wire(
        {"command": "start_run", "line": " L1 ", "run_number": "R42", "operator": "Ann", "x": 1}
    )
    assert (request.line, request.run_number, request.operator) == ("L1", "R42", "Ann")


@pytest.mark.parametrize(
    ("kind", "fields", "refusal"),
    [
        (api.StartRun, {"run_number": "R1", "operator": "Ann"}, "line is required"),
        (
            api.StartRun,
            {"line": "L1", "run_number": 7, "operator": "Ann"},
            "run_number must be text",
        ),
        (api.EndRun, {"run_number": "R1", "operator": "A\x1b[2J"}, "operator contains a control"),
        (
            api.Acknowledge,
            {"operator": "x" * (MAX_OPERATOR_CHARS + 1), "alert_id": "a"},
            f"operator is {MAX_OPERATOR_CHARS + 1} characters long; at most {MAX_OPERATOR_CHARS}",
        ),
        (api.Shelve, {"operator": "Ann", "minutes": True}, "minutes must be a number from 1 to"),
        (api.Shelve, {"operator": "Ann", "minutes": 1441}, "minutes must be a number from 1 to"),
        (api.Alerts, {"limit": 0}, "limit must be a positive integer"),
        (api.DeadLetterShow, {}, "seq must be a sequence number (a positive integer)"),
        (api.DeadLetterList, {"after": -3}, "after must be a sequence number"),
        (
            api.DeadLetterRequeue,
            {"seqs": [[9, 3]], "reason": "r", "operator": "A"},
            "seqs: range 9-3 runs backwards",
        ),
        (
            api.DeadLetterRequeue,
            {"seqs": [1] * (MAX_SEQ_ITEMS + 1), "reason": "r", "operator": "A"},
            f"seqs: at most {MAX_SEQ_ITEMS} numbers or ranges per request",
        ),
        (api.DeadLetterRequeue, {"seqs": [1], "operator": "A"}, "reason is required"),
    ],
)
def test_a_refused_field_is_named_with_the_reason(
    kind: type[api.Request], fields: dict[str, object], refusal: str
) -> None:
    with pytest.raises(api.InvalidRequest) as refused:
        kind.from_wire(fields)
    assert str(refused.value).startswith(refusal)


def test_fields_are_checked_in_the_order_they_are_declared() -> None:
    with pytest.raises(api.InvalidRequest, match=r"^line is required$"):
        api.LineMode.from_wire({"mode": "\x07", "operator": ""})


def test_defaults_are_the_gateways_own() -> None:
    assert api.Alerts.from_wire({}).limit == api.MAX_LIST_ALERTS
    listing = api.DeadLetterList.from_wire({})
    assert (listing.after, listing.limit) == (0, api.DEAD_LETTER_PAGE)
    assert api.Acknowledge.from_wire({"operator": "Ann", "rule": "t2"}).comment == ""


def test_a_client_sends_what_the_gateway_reads_back() -> None:
    sent = api.DeadLetterRequeue.unchecked(seqs=[4, [10, 12]], reason="fixed", operator="Ann")
    wire = json.loads(json.dumps(sent.wire()))
    assert wire == {
        "command": "dead_letter_requeue",
        "seqs": [4, [10, 12]],
        "reason": "fixed",
        "operator": "Ann",
    }
    assert api.DeadLetterRequeue.from_wire(wire).seqs == (4, (10, 12))


def test_a_client_request_is_not_checked_before_the_gateway_answers() -> None:
    # The gateway's refusal is what the operator sees, in the gateway's words.
    wire = api.Shelve.unchecked(alert_id="a1", operator="", minutes=0).wire()
    assert wire["command"] == "shelve"
    assert "rule" not in wire, "fields left as None are not sent"
    with pytest.raises(api.InvalidRequest, match=r"^operator is required$"):
        api.Shelve.from_wire(wire)
