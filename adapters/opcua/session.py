"""One OPC UA session of the adapter: the asyncua client it is built on, what ends it, what a
lost one leaves on the server, and its teardown.

Exactly once: subscriptions and monitored items are only ever created on a client right
after it connected, and a client is never reused, so a client holds each group's
subscription once with exactly the configured items. What remains is the server side of a
session whose connection broke (the server keeps it for a reconnect, OPC 10000-4 §6.7): its
subscription would live on beside the new one. The adapter remembers the ids of
subscriptions it could not delete, and when the next session reaches the same server run
(same ServerStatus.StartTime, so the ids cannot belong to anyone else) it takes them over
with TransferSubscriptions (§5.13.7) and deletes them (§5.13.8). On a different server run
the old ids mean nothing and are dropped. Whatever slips through still expires: the
lifetime count is the minimum three keep-alive periods (§5.13.2) and the requested session
timeout is :data:`SESSION_TIMEOUT_MIN_S` (or six watchdog intervals), so a server with few
session slots (BadTooManySessions, docs/reference/peers.md "reconnection storms") gets them back
quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.node import Node
from asyncua.common.subscription import Subscription
from asyncua.observer import Observer, SubscriptionEvent
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from adapters.base import Quality
from adapters.opcua.backpressure import PublishGate
from adapters.opcua.security import SecureChannelSetup
from adapters.opcua.status import UA_ERRORS, sample_from, translate_error
from gateway.config import OpcUaDevice
from gateway.core.errors import (
    DeviceBusy,
    DeviceConfigError,
    DeviceError,
    DeviceSecurityError,
    DeviceUnreachable,
)

# The adapter's log lines keep one logger name, whichever of its modules writes them.
log = logging.getLogger("adapters.opcua.client")

TEARDOWN_S: Final = 2.0
"""Longest time spent closing a client (DeleteSubscriptions, CloseSession, its tasks)."""

SESSION_TIMEOUT_MIN_S: Final = 30.0
"""Shortest session timeout requested (OPC 10000-4 §5.6.2 RequestedSessionTimeout).

A session whose connection broke stays on the server this long; short enough to give a
PLC's few session slots back soon, long enough to never expire a live session (the watchdog
and the publish requests keep it busy every few seconds).
"""

# asyncua's supervisor would probe ServerStatus.State every watchdog_intervall as well; the
# watchdog here does it (and checks the value), so asyncua's probe is pushed out of the way.
# Its supervisor still reports transport loss.
_ASYNCUA_PROBE_S: Final = 3600.0

# Added to device.timeout_s for our guard around a request asyncua already times out itself.
GUARD_GRACE_S: Final = 0.25

SERVER_STATE: Final = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_State))

SERVER_START_TIME: Final = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_StartTime))

_RUNNING: Final = 0  # OPC 10000-5 §12.6 ServerState enumeration: Running = 0

_BAD_SUBSCRIPTION_ID: Final = int(StatusCodes.BadSubscriptionIdInvalid)


@dataclass(frozen=True, slots=True)
class Orphans:
    """Subscriptions a lost session left on the server, and which server run that was."""

    start_time: object
    ids: tuple[int, ...]


class Session(Observer):
    """One asyncua client's lifetime: how it ended, and what teardown must undo.

    It is also the client's asyncua observer (``client.uaclient.observer``): asyncua calls
    :meth:`on_state_change` on every transport state change, which is how a closed socket
    is noticed at once.
    """

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.lost = asyncio.Event()
        self.failure: DeviceError | None = None
        self.reached: set[str] = set()
        self.current = "disconnected"
        self.closing = False
        self.subscriptions: list[Subscription] = []
        self.nodes: dict[str, Node] = {}
        self.start_time: object = None
        self.security: SecureChannelSetup | None = None
        self.up_at: float | None = None
        self.publish_task: Callable[[], asyncio.Task[None] | None] = lambda: None
        self.scans_seen: set[str] = set()
        self.gates: dict[int, PublishGate] = {}
        """The publish gate of each subscription (by ``id()``), told what is consumed."""

    def fail(self, error: DeviceError) -> None:
        """Record why the session is dead (the first reason wins) and wake the supervisor."""
        if self.failure is None and not self.closing:
            self.failure = error
            self.lost.set()

    # asyncua.observer.Observer hooks.

    def observe_request(self, request: Any) -> contextlib.AbstractContextManager[None]:
        """No per-request timing is kept."""
        return contextlib.nullcontext()

    def on_request(self, request_type: str, duration: float, error: BaseException | None) -> None:
        """Unused."""

    def on_state_change(self, state: UaClientState) -> None:
        """asyncua's transport state changed; a drop after CONNECTED ends the session."""
        self.current = str(state.value)
        self.reached.add(self.current)
        if self.current == "disconnected" and "connected" in self.reached:
            # asyncua's publish loop would wake up to the failed request, log it as a crash
            # (with a traceback, on every outage) and retry each second until teardown.
            # Cancelled now, it never sees the error.
            task = self.publish_task()
            if task is not None and not task.done():
                task.cancel()
            self.fail(DeviceUnreachable(self.device_id, "connection to the server lost"))

    def on_subscription_event(self, subscription_id: int | None, event: SubscriptionEvent) -> None:
        """Unused."""

    def on_notification(self, subscription_id: int | None, event_count: int) -> None:
        """Unused."""

    async def connection_lost(self, exc: Exception) -> None:
        """asyncua's ``connection_lost_callback``: its supervisor saw the connection die."""
        self.fail(translate_error(self.device_id, exc, "session supervisor"))


def cause_of(error: DeviceError) -> str:
    """The ``cause`` of a ``link_down`` event for ``error``."""
    if isinstance(error, DeviceSecurityError):
        return "security"
    if isinstance(error, DeviceConfigError):
        return "config"
    if isinstance(error, DeviceBusy):
        return "busy"
    return "unreachable"


def not_running(data_value: ua.DataValue) -> str | None:
    """Why a ServerStatus.State value means "not serving", or None when Running."""
    sample = sample_from("ServerStatus.State", data_value)
    if sample.quality is not Quality.GOOD:
        return f"ServerStatus.State is {sample.status}"
    if sample.value == _RUNNING:
        return None
    try:
        name = ua.ServerState(int(sample.value)).name  # type: ignore[call-overload]
    except (TypeError, ValueError):
        name = repr(sample.value)
    return f"server state is {name}, not Running"


def new_client(device: OpcUaDevice, session: Session) -> Client:
    """A fresh asyncua client for ``device`` whose observer and loss callback are ``session``."""
    client = Client(device.endpoint, timeout=device.timeout_s, watchdog_intervall=_ASYNCUA_PROBE_S)
    # OPC 10000-4 §5.6.2: the server closes a session idle for this long.
    timeout_s = max(SESSION_TIMEOUT_MIN_S, 6 * device.watchdog_interval_s)
    client.session_timeout = round(timeout_s * 1000)
    client.name = client.description = f"Lineside {device.id}"
    client.uaclient.observer = session
    client.connection_lost_callback = session.connection_lost
    # asyncua internals, read defensively (see reap).
    session.publish_task = lambda: getattr(
        getattr(client.uaclient, "session", None), "_publish_task", None
    )
    if device.username is not None and device.password is not None:
        client.set_user(device.username)
        client.set_password(device.password.get_secret_value())
    return client


async def remove_orphans(
    client: Client,
    orphans: Orphans | None,
    start_time: object,
    *,
    timeout_s: float,
    device_id: str,
) -> None:
    """Take over and delete ``orphans`` when this is the server run that holds them."""
    if orphans is None or start_time is None or orphans.start_time != start_time:
        return  # a restarted server forgot them, and their ids may be reused
    params = ua.TransferSubscriptionsParameters()
    params.SubscriptionIds = list(orphans.ids)
    params.SendInitialValues = False
    try:
        async with asyncio.timeout(timeout_s + GUARD_GRACE_S):
            # OPC 10000-4 §5.13.7 TransferSubscriptions, then §5.13.8 DeleteSubscriptions.
            results = await client.uaclient.transfer_subscriptions(params)
            moved = [
                sid
                for sid, result in zip(orphans.ids, results, strict=False)
                if result.StatusCode.is_good()
            ]
            if moved:
                await client.delete_subscriptions(moved)
    except UA_ERRORS as exc:
        log.info(
            "device %s: could not remove subscriptions %s of the lost session (%s); "
            "the server drops them after their lifetime",
            device_id,
            list(orphans.ids),
            exc,
        )
        return
    if moved:
        log.info(
            "device %s: removed subscriptions %s left by the lost session",
            device_id,
            moved,
        )


async def teardown(
    client: Client, session: Session, *, timeout_s: float, device_id: str
) -> Orphans | None:
    """Close everything of ``client``; the subscriptions that could not be deleted, if any."""
    session.closing = True
    ids = [int(sid) for sub in session.subscriptions if (sid := sub.subscription_id) is not None]
    deleted = not ids
    protocol = client.uaclient.protocol
    transport_up = protocol is not None and not protocol.is_closed
    try:
        async with asyncio.timeout(min(timeout_s, TEARDOWN_S)):
            if transport_up and ids and session.current == "connected":
                # OPC 10000-4 §5.13.8 DeleteSubscriptions; CloseSession deletes them too,
                # but this answer says whether it worked.
                results = await client.delete_subscriptions(ids)
                deleted = all(r.is_good() or int(r.value) == _BAD_SUBSCRIPTION_ID for r in results)
            if transport_up:
                # Cancels asyncua's supervisor, watchdog and renew tasks, then
                # CloseSession(DeleteSubscriptions=true) (§5.6.4) and CloseSecureChannel.
                await client.close_session()
                if "channel_open" in session.reached:
                    await client.close_secure_channel()
    except (*UA_ERRORS, ConnectionError) as exc:
        log.debug("device %s: closing the session: %r", device_id, exc)
    finally:
        # With the transport gone there is nothing to say to the server: drop the socket
        # and stop asyncua's tasks.
        client.disconnect_socket()
        await reap(client)
    if not deleted and session.start_time is not None:
        return Orphans(session.start_time, tuple(ids))
    return None


async def reap(client: Client) -> None:
    """Cancel and wait for whatever asyncua tasks of a closed client are still running.

    ``Client.close_session`` cancels its publish task without waiting for it, and leaves
    everything running when it was cut short; without this the task count would creep up
    with every reconnect. These attributes are asyncua internals, read defensively.
    """
    session = getattr(client.uaclient, "session", None)
    candidates = (
        getattr(client, "_supervisor_task", None),
        getattr(client, "_stale_watchdog_task", None),
        getattr(client, "_renew_channel_task", None),
        getattr(session, "_publish_task", None),
    )
    pending = [t for t in candidates if isinstance(t, asyncio.Task) and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=TEARDOWN_S)
