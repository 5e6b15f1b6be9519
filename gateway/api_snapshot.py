"""The shape of the live status snapshot (``{"command": "status"}``'s answer).

The gateway builds it (gateway/status.py), the TUI draws it (tui/), the doctor reads its
version. The types are :class:`~typing.TypedDict`: a snapshot is plain JSON on the wire and
a plain ``dict`` in memory, so a viewer still meets whatever a gateway of another version
(or a hostile peer) sends and must read it defensively; the types say what a gateway of
:data:`SNAPSHOT_VERSION` sends. Every key may be missing from an older gateway's answer.
"""

from __future__ import annotations

from typing import Any, TypedDict

SNAPSHOT_VERSION = 1
"""Bumped when a key changes meaning or goes away (adding one does not)."""

JsonObject = dict[str, Any]
"""A JSON object whose keys this module does not spell out (a section read by one screen)."""


class GatewayView(TypedDict, total=False):
    """Which gateway answered, and its clock."""

    id: str
    site: str
    software: str
    pid: int
    started_us: int
    now_us: int


class AlertView(TypedDict, total=False):
    """One alert (also each item of the ``alerts`` command's answer)."""

    id: str
    ref: str
    rule: str
    subject: str
    line: str | None
    severity: str
    state: str
    active: bool
    acknowledged: bool
    acknowledged_by: str | None
    comment: str | None
    raised_us: int
    cleared_us: int | None
    shelved_until_us: int | None
    message: str
    occurrences: int
    first_us: int | None
    last_us: int | None
    value: float | None
    action: str


class ProductView(TypedDict, total=False):
    """A product of a run."""

    plu: str
    description: str
    nominal_g: float | None
    catch_weight: bool
    tier: str | None


class RunView(TypedDict, total=False):
    """The run active on a line."""

    run_number: str
    status: str
    description: str
    batch_codes: list[str]
    species: str | None
    pack_date: str | None
    use_by: str | None
    shelf_life_adjust: int
    products: list[ProductView]
    provisional: bool


class LineView(TypedDict, total=False):
    """One packing line."""

    id: str
    name: str
    mode: str
    andon: str
    run: RunView | None
    packs: int
    mean_g: float | None
    giveaway_pct: float | None
    emark: JsonObject
    recent_packs: list[JsonObject]
    giveaway_trend: list[float]
    probes: list[JsonObject]
    worst_probe: JsonObject | None
    labels: JsonObject
    active_alerts: list[AlertView]
    alarm_load: JsonObject


class AlertsView(TypedDict, total=False):
    """The site's alerts: active ones, recently ended ones, and the alarm load."""

    active: list[AlertView]
    recent: list[AlertView]
    load: JsonObject


class DeviceView(TypedDict, total=False):
    """One configured device and its link."""

    id: str
    kind: str
    role: str
    line: str
    state: str
    last_error: str


class SystemView(TypedDict, total=False):
    """Devices, ERP, uplink, outbox, store and intake."""

    devices: list[DeviceView]
    erp: JsonObject | None
    uplink: JsonObject | None
    outbox: JsonObject
    store: JsonObject
    intake: JsonObject
    readings: dict[str, int]


class StatusSnapshot(TypedDict, total=False):
    """The whole live status of one gateway."""

    version: int
    gateway: GatewayView
    lines: list[LineView]
    alerts: AlertsView
    system: SystemView
