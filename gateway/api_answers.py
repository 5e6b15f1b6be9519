"""The control socket's answers: one JSON object per request, ``ok`` first.

A refusal is always :class:`Refused`; each command's answer when carried out is the type
named beside it in gateway/control_commands.py. Like the snapshot (gateway/api_snapshot.py)
they are :class:`~typing.TypedDict`: plain JSON on the wire, read defensively by clients.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from gateway.api_snapshot import JsonObject


class Refused(TypedDict):
    """A request the gateway did not carry out, and why (in words for the operator)."""

    ok: Literal[False]
    error: str


class RunRecorded(TypedDict):
    """``start_run`` / ``end_run``: the stored run version's sequence number."""

    ok: Literal[True]
    seq: int


class Recorded(TypedDict):
    """``line_mode``: the sequence numbers of the records stored."""

    ok: Literal[True]
    seqs: list[int]


class AlertsChanged(TypedDict):
    """``acknowledge`` / ``shelve``: the records stored and the alerts they changed."""

    ok: Literal[True]
    seqs: list[int]
    alerts: list[str]


class ReportAnswer(TypedDict):
    """``report``: the run's report document (docs/command-output.md)."""

    ok: Literal[True]
    report: JsonObject


class DeadLetterPage(TypedDict):
    """``dead_letter_list``: one page of the sync quarantine."""

    ok: Literal[True]
    total: int
    records: list[JsonObject]
    more: bool


class DeadLetterRecord(TypedDict):
    """``dead_letter_show``: one quarantined record and its stored data."""

    ok: Literal[True]
    record: JsonObject
    data: Any


class Requeued(TypedDict):
    """``dead_letter_requeue``: what was sent again, what was not and why, what is left."""

    ok: Literal[True]
    requeued: int
    seqs: str
    not_requeued: dict[str, str]
    left: int
    event_seq: int
