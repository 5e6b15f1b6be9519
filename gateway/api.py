"""The control socket's language: typed requests and answers, the wire's limits, the status
snapshot.

Shared by the gateway (gateway/control.py validates every request with these models), the
CLI (builds its requests with them) and the TUI (reads the snapshot with them). The answers
are in gateway/api_answers.py, the snapshot's shape in gateway/api_snapshot.py. This module
loads pydantic and nothing of the gateway's runtime, so ``import tui.app`` stays light.

A request travels as one JSON object per line: ``{"command": "<name>", ...fields}``;
:meth:`Request.wire` makes that object and :meth:`Request.from_wire` reads it back, refusing
a field with the sentence the operator sees (:class:`InvalidRequest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.api_answers import (
    AlertsChanged,
    DeadLetterPage,
    DeadLetterRecord,
    Recorded,
    Refused,
    ReportAnswer,
    Requeued,
    RunRecorded,
)
from gateway.api_fields import (
    After,
    Comment,
    Identifier,
    Minutes,
    OperatorName,
    OptionalIdentifier,
    PageSize,
    Reason,
    Seq,
    SeqItems,
)
from gateway.api_snapshot import (
    SNAPSHOT_VERSION,
    AlertsView,
    AlertView,
    DeviceView,
    GatewayView,
    JsonObject,
    LineView,
    ProductView,
    RunView,
    StatusSnapshot,
    SystemView,
)
from gateway.core.errors import ControlError
from rules.alarm_rates import FLOOD_ABOVE

MAX_REQUEST_BYTES = 64 * 1024
"""The longest request line the gateway reads; a longer one is refused and the connection
closed."""
MAX_ANSWER_BYTES = 16 * MAX_REQUEST_BYTES
"""The longest answer a client reads (a status snapshot of a large site fits)."""
MAX_LIST_ALERTS = 300
"""Alerts in one ``alerts`` answer at most: the answer stays below :data:`MAX_ANSWER_BYTES`."""
DEAD_LETTER_PAGE = 200
"""Quarantined records in one ``dead_letter_list`` answer unless the request says fewer."""

__all__ = [
    "DEAD_LETTER_PAGE",
    "FLOOD_ABOVE",
    "MAX_ANSWER_BYTES",
    "MAX_LIST_ALERTS",
    "MAX_REQUEST_BYTES",
    "SNAPSHOT_VERSION",
    "Acknowledge",
    "AlertView",
    "Alerts",
    "AlertsChanged",
    "AlertsView",
    "DeadLetterList",
    "DeadLetterPage",
    "DeadLetterRecord",
    "DeadLetterRequeue",
    "DeadLetterShow",
    "DeviceView",
    "EndRun",
    "GatewayView",
    "InvalidRequest",
    "JsonObject",
    "LineMode",
    "LineView",
    "OperatorRequest",
    "ProductView",
    "Recorded",
    "Refused",
    "Report",
    "ReportAnswer",
    "Request",
    "Requeued",
    "RunRecorded",
    "RunView",
    "Shelve",
    "StartRun",
    "Status",
    "StatusSnapshot",
    "SystemView",
]


class InvalidRequest(ControlError, ValueError):
    """A request field the gateway refuses; the message names the field and why."""


class GatewayUnavailable(ControlError, ConnectionError):
    """The gateway did not answer: not running, socket missing, or refused (a client's
    error, here so the TUI needs nothing but this module)."""


class Request(BaseModel):
    """One operator command. Unknown keys are ignored (``command`` among them)."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    command: ClassVar[str]
    """The ``command`` key that names this request on the wire."""

    @classmethod
    def from_wire(cls, request: Mapping[str, Any]) -> Self:
        """The request read from its JSON object; :class:`InvalidRequest` names the first
        field refused (fields are checked in the order they are declared)."""
        try:
            return cls.model_validate(dict(request))
        except ValidationError as exc:
            first = exc.errors()[0]
            error = first.get("ctx", {}).get("error")
            raise InvalidRequest(str(error) if error is not None else first["msg"]) from None

    @classmethod
    def unchecked(cls, **fields: Any) -> Self:
        """A request as a client sends it, not checked here: the gateway checks it, and
        answers a refusal the client shows as it is."""
        return cls.model_construct(**fields)

    def wire(self) -> dict[str, Any]:
        """The JSON object sent over the socket (fields that are ``None`` left out)."""
        fields = {name: getattr(self, name, None) for name in type(self).model_fields}
        return {"command": self.command, **{k: v for k, v in fields.items() if v is not None}}


class StartRun(Request):
    """Start a run on a line now (created if the ERP does not know it yet)."""

    command: ClassVar[str] = "start_run"
    line: Identifier = ""
    run_number: Identifier = ""
    operator: OperatorName = ""


class EndRun(Request):
    """End a run now."""

    command: ClassVar[str] = "end_run"
    run_number: Identifier = ""
    operator: OperatorName = ""


class _AlertSelection(Request):
    """Names alerts: one ``alert_id`` (or its short reference), or ``rule`` and/or ``line``."""

    alert_id: OptionalIdentifier = None
    rule: OptionalIdentifier = None
    line: OptionalIdentifier = None


class Acknowledge(_AlertSelection):
    """Acknowledge one alert, or every alert of a rule and/or line awaiting it."""

    command: ClassVar[str] = "acknowledge"
    operator: OperatorName = ""
    comment: Comment = ""


class Shelve(_AlertSelection):
    """Shelve one alert, or every active alert of a rule and/or line, for ``minutes``."""

    command: ClassVar[str] = "shelve"
    operator: OperatorName = ""
    minutes: Minutes = 0.0
    comment: Comment = ""


class Alerts(Request):
    """The alerts active or awaiting acknowledgement, optionally of a line and/or rule."""

    command: ClassVar[str] = "alerts"
    line: OptionalIdentifier = None
    rule: OptionalIdentifier = None
    limit: PageSize = MAX_LIST_ALERTS


class LineMode(Request):
    """Set a line to production, changeover or washdown."""

    command: ClassVar[str] = "line_mode"
    line: Identifier = ""
    mode: Identifier = ""
    operator: OperatorName = ""


class Report(Request):
    """The report document of a run."""

    command: ClassVar[str] = "report"
    run_number: Identifier = ""


class DeadLetterList(Request):
    """The quarantined records after ``after`` (a sequence number), ``limit`` at most."""

    command: ClassVar[str] = "dead_letter_list"
    after: After = 0
    limit: PageSize = DEAD_LETTER_PAGE


class DeadLetterShow(Request):
    """One quarantined record."""

    command: ClassVar[str] = "dead_letter_show"
    seq: Seq = 0


class DeadLetterRequeue(Request):
    """Send quarantined records again, with the operator's reason."""

    command: ClassVar[str] = "dead_letter_requeue"
    seqs: SeqItems = ()
    reason: Reason = ""
    operator: OperatorName = ""


OperatorRequest = Acknowledge | Shelve
"""What the TUI's operator dialog sends."""


class Status(Request):
    """The live status snapshot (:class:`StatusSnapshot`)."""

    command: ClassVar[str] = "status"
