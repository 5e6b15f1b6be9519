"""The OPC UA adapter: one asyncua ``Client`` per session, rebuilt whole after any failure.

Life cycle (:meth:`OpcUaAdapter.run`, one supervisor loop per device endpoint):

1. Build a fresh asyncua ``Client``. asyncua's own ``auto_reconnect`` stays off: reconnecting
   on the same client can hang (FreeOpcUa/opcua-asyncio#1660) and this module's backoff,
   state and events must be the truth. Security (:mod:`adapters.opcua.security`), user name
   and password, and a short session timeout are set here.
2. Connect (socket, Hello, OpenSecureChannel, CreateSession, ActivateSession; every request
   bounded by ``device.timeout_s``) and read ServerStatus.State and StartTime: the server
   must be Running (OPC 10000-5 §12.6 ServerState).
3. Remove subscriptions a lost session of the *same server run* left behind (see "exactly
   once" below).
4. Per tag group: one subscription with one monitored item per tag, or one poll task that
   reads all the group's nodes in a single Read every ``poll_interval_ms``.
5. ``link_up`` (after an outage), state UP (DEGRADED while a tag is not good). Then wait
   for the first sign that the session is dead:

   * the transport closes (asyncua reports the state change to this module's observer),
   * asyncua's connection supervisor reports a loss (``connection_lost_callback``),
   * the watchdog Read of ServerStatus.State every ``watchdog_interval_s`` fails, times
     out, or the state is not Running,
   * a subscription receives a StatusChangeNotification (OPC 10000-4 §7.20.4: BadTimeout
     when the server dropped it, GoodSubscriptionTransferred, BadShutdown from asyncua),
   * any other read fails.

6. Tear down everything of that client: cancel this module's tasks, DeleteSubscriptions and
   CloseSession (best effort, bounded by :data:`TEARDOWN_S`), close the socket, and wait for
   asyncua's own tasks (its publish task is cancelled on CloseSession but never awaited).
7. ``link_down`` (once per outage), state DOWN, wait ``Backoff(reconnect_min_s,
   reconnect_max_s)`` (capped exponential, full jitter), back to 1. Security and
   configuration failures wait about ``reconnect_max_s`` every time instead: a refused
   certificate does not get better by asking twice a second.

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

Checkweigher consistency: a pack's values are fed to the interpreter together with its
counter, never on their own. When the counter (``pack_counter``, else ``label_sequence``)
changes, the adapter reads all the device's other checkweigher variables in one Read and
feeds those values first and the counter last, in one ``interpret()`` call. The machine
writes the weights before the counter, but by the time the read arrives it may already have
written the *next* pack's weights (its counter not yet), so "the counter has not moved" does
not prove the values are this pack's. Each value is therefore placed by its SourceTimestamp
against the counter's (:mod:`adapters.opcua.packs`): written at or before the counter it is
this pack's; written after it, this pack's value is looked up among the notifications and
reads seen so far; when that cannot be proven (no source timestamps, a value never seen) the
pack is stored flagged ``VALUES_UNCERTAIN`` and counted (:attr:`OpcUaAdapter.uncertain_packs`).
A poll group holding the counter reads the counter first and then every checkweigher
variable in its one Read, and is judged the same way; a checkweigher poll group without the
counter is not polled (its values are read with the counter). docs/devices.md has the cases.
A ``changeover`` flag is the machine's state, not a value of a pack: it is handed on as it
arrives (its notifications, or every poll of its group) and never picked by source time; the
interpreter turns its changes into ``changeover`` events. ``bit``/``mask`` tags read their
part of an integer variable (:func:`adapters.opcua.status.bit_field`); other tags are scaled
and converted into the rules' units, the server's EngineeringUnits checked at connect
(:mod:`adapters.opcua.units`).

Backpressure: a poll group reads only when the store has room
(:meth:`RecordSink.wait_for_space`). A subscription's next Publish request waits (for at most
half a keep-alive period) while the adapter has a backlog of notifications or the store has
no room, so a flooding server keeps its notifications in its own bounded queues
(:mod:`adapters.opcua.backpressure`). The notifications that do arrive are handled as they
come; should the store still be that far behind, the pipeline sheds them, counted per
device and alerted (:mod:`gateway.shedding`).

Time: record times are the gateway clock (``clock.wall_us()``) when a value is handled, the
one time base of every device and of the store's clock-step flags; source timestamps come
from PLC clocks that may never have been set, and are only used to order queued values.

Values and status codes: :mod:`adapters.opcua.status` (quality from the StatusCode severity
bits, OPC 10000-4 §7.34.1). Bad and uncertain samples go to the interpreter like good ones;
it turns them into rejected inputs and ``quality_change`` events. A label scanner's read is
handed on once: the same value with the same source timestamp (e.g. the initial value after
a reconnect) is not a new read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.node import Node
from asyncua.common.subscription import (
    DataChangeEvent,
    OverflowPolicy,
    StatusChangeEvent,
    Subscription,
)
from asyncua.observer import Observer, SubscriptionEvent
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from adapters.base import (
    DeviceRecorder,
    LinkState,
    Quality,
    RecordSink,
    TagSample,
    raise_if_cancelled,
)
from adapters.opcua.backpressure import NOTIFICATION_QUEUE, NOTIFICATIONS_PER_PUBLISH, PublishGate
from adapters.opcua.packs import PackAssembler
from adapters.opcua.publish_faults import PUBLISH_FAULT_LOGGER, DemoteNoSubscription
from adapters.opcua.security import SecureChannelSetup, configure_security
from adapters.opcua.status import (
    UA_ERRORS,
    bit_field,
    describe_status,
    is_security_code,
    sample_from,
    source_stamp_us,
    source_time_us,
    status_name,
    translate_error,
)
from adapters.opcua.units import check_engineering_units, engineering_sample
from adapters.roles import CheckweigherInterpreter, Interpreter, interpreter_for
from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.config import OpcUaDevice, OpcUaTag, OpcUaTagGroup
from gateway.errors import (
    DeviceBusy,
    DeviceConfigError,
    DeviceError,
    DeviceSecurityError,
    DeviceUnreachable,
)

__all__ = ["SESSION_TIMEOUT_MIN_S", "TEARDOWN_S", "OpcUaAdapter"]

log = logging.getLogger(__name__)
# Publish requests answered BadNoSubscription at a stop are expected (publish_faults.py).
logging.getLogger(PUBLISH_FAULT_LOGGER).addFilter(DemoteNoSubscription())

TEARDOWN_S: Final = 2.0
"""Longest time spent closing a client (DeleteSubscriptions, CloseSession, its tasks)."""

SESSION_TIMEOUT_MIN_S: Final = 30.0
"""Shortest session timeout requested (OPC 10000-4 §5.6.2 RequestedSessionTimeout).

A session whose connection broke stays on the server this long; short enough to give a
PLC's few session slots back soon, long enough to never expire a live session (the watchdog
and the publish requests keep it busy every few seconds).
"""

# Notifications handled between two turns of the event loop (see _consume).
_YIELD_EVERY: Final = 100
# asyncua's supervisor would probe ServerStatus.State every watchdog_intervall as well; the
# watchdog here does it (and checks the value), so asyncua's probe is pushed out of the way.
# Its supervisor still reports transport loss.
_ASYNCUA_PROBE_S: Final = 3600.0
# Added to device.timeout_s for our guard around a request asyncua already times out itself.
_GUARD_GRACE_S: Final = 0.25
# Floor of the jitter for security/config retries: about reconnect_max_s, never a storm.
_SLOW_FLOOR: Final = 0.75

LEVEL_SIGNALS: Final = frozenset({"changeover"})
"""Checkweigher signals that are a state of the machine, not a value of a pack: they are fed
to the interpreter when they change (and with every poll), never paired with a pack counter
by source time, which could hand an older state on after a newer one."""

_SERVER_STATE: Final = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_State))
_SERVER_START_TIME: Final = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_StartTime))
_RUNNING: Final = 0  # OPC 10000-5 §12.6 ServerState enumeration: Running = 0
_BAD_SUBSCRIPTION_ID: Final = int(StatusCodes.BadSubscriptionIdInvalid)
_BAD_SECURITY_CHECKS: Final = int(StatusCodes.BadSecurityChecksFailed)


@dataclass(frozen=True, slots=True)
class _Orphans:
    """Subscriptions a lost session left on the server, and which server run that was."""

    start_time: object
    ids: tuple[int, ...]


class _Session(Observer):
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


def _next_due(previous: float, now: float, interval: float) -> float:
    """The next slot on the poll grid after ``now``; missed slots are skipped."""
    due = previous + interval
    if due <= now:
        due += (math.floor((now - due) / interval) + 1) * interval
    return due


def _cause(error: DeviceError) -> str:
    if isinstance(error, DeviceSecurityError):
        return "security"
    if isinstance(error, DeviceConfigError):
        return "config"
    if isinstance(error, DeviceBusy):
        return "busy"
    return "unreachable"


class OpcUaAdapter(DeviceRecorder):
    """Reads one OPC UA device forever and submits its records to ``sink``.

    Args:
        device: the device's configuration.
        sink: where records go (the store).
        clock: wall time for record times, monotonic time for outages and polling.
        rng: random source for the backoff jitter (tests).

    Attributes:
        device_id: The configured device id.
        state: The link state: CONNECTING while a session is being set up, UP (DEGRADED
            while any tag is not good or a monitored item was refused), DOWN between
            sessions, DISABLED for a disabled device.
        last_error: The most recent error, as text for operators ("" until the first one).
        reconnects: Outages recovered from (``link_up`` events).
        connect_attempts: Sessions started, including the first.
        interpreter: The device role's interpreter (set ``last_counter`` on a checkweigher
            before :meth:`run` to carry the pack counter over a restart).
        uncertain_packs: Packs stored flagged VALUES_UNCERTAIN (a checkweigher's values
            that could not be tied to their pack counter).
    """

    def __init__(
        self,
        device: OpcUaDevice,
        sink: RecordSink,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.device = device
        self.device_id: str = device.id
        self.state: LinkState = LinkState.CONNECTING if device.enabled else LinkState.DISABLED
        self.last_error = ""
        self.reconnects = 0
        self.connect_attempts = 0
        self.tags: dict[str, OpcUaTag] = {t.name: t for g in device.groups for t in g.tags}
        self.interpreter: Interpreter = interpreter_for(device, self.tags)
        self._sink = sink
        self._clock = clock
        self._line = device.line
        self._backoff = Backoff(
            initial=device.reconnect_min_s, maximum=device.reconnect_max_s, rng=rng
        )
        self._slow = Backoff(
            initial=device.reconnect_max_s,
            maximum=device.reconnect_max_s,
            floor_fraction=_SLOW_FLOOR,
            rng=rng,
        )
        self._down_since: float | None = None
        self._first_link_recorded = False
        self._up_for = 0.0
        self._orphans: _Orphans | None = None
        self._bad_tags: set[str] = set()
        self._poll_reported: dict[str, tuple[str, str, str]] = {}
        self._last_scan: dict[str, tuple[str, int | None, str, str]] = {}
        self._config_reported: set[tuple[str, str]] = set()
        self._counter: str | None = None
        self._packs: PackAssembler | None = None
        self._levels: frozenset[str] = frozenset()
        self._doubts_logged = False
        if isinstance(self.interpreter, CheckweigherInterpreter):
            self._counter = self.interpreter.counter_tag
            self._levels = LEVEL_SIGNALS & set(self.tags)
            self._packs = PackAssembler(
                n for n in self.tags if n != self._counter and n not in self._levels
            )
        if device.password is not None and device.security is None:
            log.warning(
                "device %s: a password is configured without SignAndEncrypt security",
                device.id,
            )

    # ---------------------------------------------------------------- life cycle

    async def run(self) -> None:
        """Read the device until cancelled; reconnects by itself, never returns otherwise.

        On cancellation the session is closed (subscriptions deleted, session closed, socket
        closed, asyncua's tasks awaited) before ``CancelledError`` propagates. Device and
        asyncua errors never escape; errors of the sink do.
        """
        if not self.device.enabled:
            self._set_state(LinkState.DISABLED)
            await asyncio.get_running_loop().create_future()  # until cancelled
        try:
            while True:
                raise_if_cancelled()
                self._set_state(LinkState.CONNECTING)
                try:
                    await self._session()
                except DeviceError as exc:
                    raise_if_cancelled()
                    self._outage(exc)
                    delay = self._retry_delay(exc)
                log.debug("device %s: next session in %.2f s", self.device_id, delay)
                await asyncio.sleep(delay)
        finally:
            if self.state is not LinkState.DISABLED:
                self._set_state(LinkState.DOWN)

    def _retry_delay(self, error: DeviceError) -> float:
        if isinstance(error, DeviceSecurityError | DeviceConfigError):
            return self._slow.next_delay()
        if self._up_for >= self.device.reconnect_max_s:
            # A session that held for a while resets the backoff; one that drops straight
            # after connecting (a flapping link) keeps it growing.
            self._backoff.reset()
        return self._backoff.next_delay()

    async def _session(self) -> NoReturn:
        """One client from connect to teardown; raises the :class:`DeviceError` that ended it."""
        session = _Session(self.device_id)
        client = self._new_client(session)
        self.connect_attempts += 1
        self._up_for = 0.0
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                await self._open(client, session)
                subscribed = [
                    (group, *await self._subscribe(client, session, group))
                    for group in self.device.groups
                    if group.mode == "subscribe"
                ]
            except UA_ERRORS as exc:
                raise self._connect_error(exc, session) from exc
            if session.failure is not None:
                raise session.failure  # lost while the subscriptions were being made
            async with asyncio.TaskGroup() as tg:
                name = f"opcua[{self.device_id}]"
                for group, subscription, handles, _ in subscribed:
                    tasks.append(
                        tg.create_task(
                            self._consume(client, session, subscription, handles),
                            name=f"{name}.subscription[{group.name}]",
                        )
                    )
                tasks.extend(
                    tg.create_task(
                        self._poll(client, session, group), name=f"{name}.poll[{group.name}]"
                    )
                    for group in self._poll_groups()
                )
                tasks.append(
                    tg.create_task(self._watchdog(client, session), name=f"{name}.watchdog")
                )
                self._link_up(session)
                refused = [sample for *_, failed in subscribed for sample in failed]
                if refused:
                    self._feed(refused)
                await session.lost.wait()
                for task in tasks:
                    task.cancel()
            failure = session.failure or DeviceUnreachable(self.device_id, "session ended")
            self._outage(failure)  # at detection time, before the teardown
            raise failure
        finally:
            if session.up_at is not None:
                self._up_for = self._clock.monotonic() - session.up_at
            await self._teardown(client, session)

    def _new_client(self, session: _Session) -> Client:
        device = self.device
        client = Client(
            device.endpoint, timeout=device.timeout_s, watchdog_intervall=_ASYNCUA_PROBE_S
        )
        # OPC 10000-4 §5.6.2: the server closes a session idle for this long.
        timeout_s = max(SESSION_TIMEOUT_MIN_S, 6 * device.watchdog_interval_s)
        client.session_timeout = round(timeout_s * 1000)
        client.name = client.description = f"Lineside {device.id}"
        client.uaclient.observer = session
        client.connection_lost_callback = session.connection_lost
        # asyncua internals, read defensively (see _reap).
        session.publish_task = lambda: getattr(
            getattr(client.uaclient, "session", None), "_publish_task", None
        )
        if device.username is not None and device.password is not None:
            client.set_user(device.username)
            client.set_password(device.password.get_secret_value())
        return client

    async def _open(self, client: Client, session: _Session) -> None:
        """Security, connect, check the server runs, resolve node ids, remove orphans."""
        if self.device.security is not None:
            session.security = await configure_security(client, self.device)
        await client.connect()
        raise_if_cancelled()
        state, start = await self._read(
            client, [client.get_node(_SERVER_STATE), client.get_node(_SERVER_START_TIME)]
        )
        if problem := _not_running(state):
            raise DeviceUnreachable(self.device_id, problem)
        session.start_time = start.Value.Value if start.Value is not None else None
        session.nodes = await self._resolve(client)
        await check_engineering_units(self.device, session.nodes, self.device.timeout_s)
        await self._remove_orphans(client, session.start_time)

    async def _resolve(self, client: Client) -> dict[str, Node]:
        """Node ids of every tag; ``nsu=`` namespaces looked up on this server."""
        nodes: dict[str, Node] = {}
        for name, tag in self.tags.items():
            try:
                node_id = ua.NodeId.from_string(tag.node)
            except (ValueError, UaError) as exc:
                raise DeviceConfigError(
                    self.device_id,
                    f"tag {name}: bad node id {tag.node!r} (ns=<index>;s=<name> or "
                    "nsu=<namespace URI>;s=<name>)",
                ) from exc
            uri = getattr(node_id, "NamespaceUri", None)
            if uri:
                try:
                    index = await client.get_namespace_index(uri)
                except ValueError as exc:
                    raise DeviceConfigError(
                        self.device_id, f"tag {name}: the server has no namespace {uri!r}"
                    ) from exc
                node_id = ua.NodeId(node_id.Identifier, ua.Int16(index), node_id.NodeIdType)
            nodes[name] = client.get_node(node_id)
        return nodes

    def _connect_error(self, exc: BaseException, session: _Session) -> DeviceError:
        """Translate a failure of steps 1-4, naming certificate problems precisely."""
        setup = session.security
        if setup is None:
            return translate_error(self.device_id, exc, "connect")
        code = int(exc.code) if isinstance(exc, UaStatusCodeError) else None
        channel_opened = bool(session.reached & {"channel_open", "connected"})
        if "socket_open" in session.reached and not channel_opened:
            return self._channel_refused(exc, code, setup)
        if code is not None and is_security_code(code):
            if setup.validator.refused == code:
                return DeviceSecurityError(
                    self.device_id,
                    f"the server certificate (SHA-1 {setup.server_thumbprint}) was refused by "
                    f"this gateway: {describe_status(code)}",
                )
            return DeviceSecurityError(
                self.device_id,
                "the server refused this gateway's certificate or user credentials: "
                f"{describe_status(code)}",
            )
        return translate_error(self.device_id, exc, "connect")

    def _channel_refused(
        self, exc: BaseException, code: int | None, setup: SecureChannelSetup
    ) -> DeviceError:
        """OpenSecureChannel failed after the TCP connection was made."""
        if code is not None and code != _BAD_SECURITY_CHECKS:
            if is_security_code(code):
                return DeviceSecurityError(
                    self.device_id,
                    "the server rejected this gateway's certificate while opening the secure "
                    f"channel: {describe_status(code)}",
                )
            return translate_error(self.device_id, exc, "OpenSecureChannel")
        if isinstance(exc, TimeoutError):
            detail = "no answer"
        elif code is not None:
            detail = status_name(code)
        else:
            detail = "connection closed"
        pin = "pinned certificate" if setup.pinned else "certificate of its endpoint description"
        # A secure channel request is encrypted for the server certificate we hold (OPC
        # 10000-6 §6.7.2.3); a server with another key cannot read it and drops or refuses
        # it. Servers may also refuse a client certificate they do not trust this way.
        return DeviceSecurityError(
            self.device_id,
            f"server certificate does not match the {pin} (SHA-1 {setup.server_thumbprint}): "
            f"the server did not accept a {setup.policy} SignAndEncrypt channel encrypted "
            f"for that certificate ({detail}); or the server does not trust this gateway's "
            "certificate",
        )

    async def _remove_orphans(self, client: Client, start_time: object) -> None:
        orphans, self._orphans = self._orphans, None
        if orphans is None or start_time is None or orphans.start_time != start_time:
            return  # a restarted server forgot them, and their ids may be reused
        params = ua.TransferSubscriptionsParameters()
        params.SubscriptionIds = list(orphans.ids)
        params.SendInitialValues = False
        try:
            async with asyncio.timeout(self.device.timeout_s + _GUARD_GRACE_S):
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
                self.device_id,
                list(orphans.ids),
                exc,
            )
            return
        if moved:
            log.info(
                "device %s: removed subscriptions %s left by the lost session",
                self.device_id,
                moved,
            )

    # ---------------------------------------------------------------- subscriptions

    async def _subscribe(
        self, client: Client, session: _Session, group: OpcUaTagGroup
    ) -> tuple[Subscription, dict[int, str], list[TagSample]]:
        """One subscription for ``group``: the subscription, handle -> tag, refused tags."""
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = float(group.publishing_interval_ms)
        # OPC 10000-4 §5.13.2: a keep-alive comes after MaxKeepAliveCount empty publishing
        # intervals; one per watchdog interval lets asyncua notice a silent subscription.
        keepalive = max(
            1, math.ceil(self.device.watchdog_interval_s * 1000 / group.publishing_interval_ms)
        )
        params.RequestedMaxKeepAliveCount = keepalive
        # §5.13.2: "The lifetime count shall be a minimum of three times the keep keep-alive
        # count." The minimum, so the subscription of a dead connection goes away soon.
        params.RequestedLifetimeCount = 3 * keepalive
        # §5.13.2: what one response may carry; the server sends the rest in the next ones.
        params.MaxNotificationsPerPublish = NOTIFICATIONS_PER_PUBLISH
        params.PublishingEnabled = True
        params.Priority = 0
        subscription = await client.create_subscription(
            params, None, queue_maxsize=NOTIFICATION_QUEUE, overflow=OverflowPolicy.DISCONNECT
        )
        session.subscriptions.append(subscription)
        # Half a keep-alive period (about watchdog_interval_s): adapters/opcua/backpressure.py.
        gate = PublishGate(
            self._sink,
            max_wait_s=self.device.watchdog_interval_s / 2,
            # What the server can hold for this subscription (its items' queues) and send in
            # one response, plus a status change.
            per_response=len(group.tags) * group.queue_size + 1,
        )
        if gate.install(client, subscription):
            session.gates[id(subscription)] = gate
        handles = {handle: tag.name for handle, tag in enumerate(group.tags, start=1)}
        requests = [
            self._item_request(group, tag, session.nodes[tag.name], handle)
            for handle, tag in enumerate(group.tags, start=1)
        ]
        results = await subscription.create_monitored_items(requests)
        refused = []
        for tag, result in zip(group.tags, results, strict=True):
            if isinstance(result, int):
                continue
            refused.append(self._item_refused(tag, int(result.value)))
        return subscription, handles, refused

    def _item_request(
        self, group: OpcUaTagGroup, tag: OpcUaTag, node: Node, handle: int
    ) -> ua.MonitoredItemCreateRequest:
        read = ua.ReadValueId()
        read.NodeId = node.nodeid
        read.AttributeId = AttributeIds.Value
        parameters = ua.MonitoringParameters()
        parameters.ClientHandle = handle
        parameters.SamplingInterval = float(group.sampling_interval_ms)
        parameters.QueueSize = group.queue_size
        parameters.DiscardOldest = True
        data_filter = self._data_change_filter(group, tag)
        if data_filter is not None:
            parameters.Filter = data_filter
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = read
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = parameters
        return request

    def _data_change_filter(
        self, group: OpcUaTagGroup, tag: OpcUaTag
    ) -> ua.DataChangeFilter | None:
        """OPC 10000-4 §7.22.2 DataChangeFilter for one item, or None for the default."""
        deadband = {
            "none": None,
            "absolute": ua.DeadbandType.Absolute,
            "percent": ua.DeadbandType.Percent,  # needs an EURange on the server (Part 8)
        }[group.deadband]
        if tag.name == self._counter:
            deadband = None  # a deadband of 1 or more would swallow packs
        # A scanner may read the same label twice; StatusValueTimestamp reports a write of
        # an unchanged value too (its source timestamp changes). A checkweigher's pack
        # values likewise: two packs in a row are often both accepted, and only the
        # second write's notification shows a value was written for that pack (packs.py).
        every_write = self.device.role == "label_scanner" or (
            self._packs is not None
            and tag.name != self._counter
            and tag.name not in self._levels  # a level's changes are all that matter
            and deadband is None
        )
        if deadband is None and not every_write:
            return None  # the server's default trigger, StatusValue
        data_filter = ua.DataChangeFilter()
        data_filter.Trigger = (
            ua.DataChangeTrigger.StatusValueTimestamp
            if every_write
            else ua.DataChangeTrigger.StatusValue
        )
        data_filter.DeadbandType = deadband if deadband is not None else ua.DeadbandType.None_
        data_filter.DeadbandValue = group.deadband_value if deadband is not None else 0.0
        return data_filter

    def _item_refused(self, tag: OpcUaTag, code: int) -> TagSample:
        """A monitored item the server refused: reported once, and the tag goes BAD."""
        status = status_name(code)
        if (tag.name, status) not in self._config_reported:
            self._config_reported.add((tag.name, status))
            log.error(
                "device %s: the server refused monitoring tag %s (%s): %s; check the node id "
                "(ns=<index>;s=<name>, or nsu=<namespace URI>;s=<name> when the server's "
                "namespace indexes change; lineside browse lists them)",
                self.device_id,
                tag.name,
                tag.node,
                status,
            )
            self._emit([self._event("config_error", tag=tag.name, node=tag.node, status=status)])
        return TagSample(tag.name, None, Quality.BAD, status)

    async def _consume(
        self,
        client: Client,
        session: _Session,
        subscription: Subscription,
        handles: dict[int, str],
    ) -> None:
        """Hand one subscription's notifications on, in the order they arrive."""
        handled = 0
        gate = session.gates.get(id(subscription))
        try:
            async for event in subscription:
                if gate is not None:
                    gate.consumed()
                handled += 1
                if handled % _YIELD_EVERY == 0:
                    # Queue.get() returns without suspending while notifications are queued.
                    await asyncio.sleep(0)
                if isinstance(event, StatusChangeEvent):
                    code = int(event.notification.Status.value)
                    session.fail(
                        DeviceUnreachable(
                            self.device_id,
                            f"subscription status changed to {status_name(code)} "
                            "(OPC 10000-4 §7.20.4)",
                        )
                    )
                    return
                if not isinstance(event, DataChangeEvent):
                    continue
                notification = event.data.monitored_item
                tag = handles.get(int(notification.ClientHandle))
                if tag is not None:
                    await self._changed(client, session, tag, notification.Value)
        except UA_ERRORS as exc:
            session.fail(translate_error(self.device_id, exc, "reading a pack's values"))
            return
        session.fail(DeviceUnreachable(self.device_id, "subscription closed"))

    def _sample(self, name: str, data_value: ua.DataValue) -> TagSample:
        """One tag's sample, the tag's bit field picked out when it has one."""
        sample = sample_from(name, data_value)
        tag = self.tags.get(name)
        if tag is None:
            return sample
        if tag.bit is not None or tag.mask is not None:
            return bit_field(sample, bit=tag.bit, mask=tag.mask)
        return engineering_sample(sample, tag, self.device.rule_unit(name))

    async def _changed(
        self, client: Client, session: _Session, tag: str, data_value: ua.DataValue
    ) -> None:
        sample = self._sample(tag, data_value)
        if self._packs is not None:
            if tag == self._counter:
                await self._counter_changed(client, session, sample, source_stamp_us(data_value))
            elif tag in self._levels:
                self._feed([sample])  # a level's change is news now, pack or not
            else:
                self._packs.note(sample, source_stamp_us(data_value))  # fed with its counter
                self._track(sample)
            return
        if self.device.role == "label_scanner" and self._repeated_scan(
            session, sample, source_time_us(data_value)
        ):
            return
        self._feed([sample])

    async def _counter_changed(
        self, client: Client, session: _Session, counter: TagSample, counter_us: int | None
    ) -> None:
        """The pack counter moved: feed the pack's values first, then the counter, together."""
        packs = self._packs
        if packs is None:
            return
        if counter.quality is not Quality.GOOD:
            self._feed([counter])
            return
        names = packs.tags
        values = await self._read(client, [session.nodes[n] for n in names])
        samples, doubts = self._assemble(packs, counter, counter_us, names, values)
        self._feed(samples, doubts)

    def _assemble(
        self,
        packs: PackAssembler,
        counter: TagSample,
        counter_us: int | None,
        names: Sequence[str],
        values: Sequence[ua.DataValue],
    ) -> tuple[list[TagSample], tuple[str, ...]]:
        """The pack's values (picked by source time, packs.py) and the counter, last."""
        read = [
            (self._sample(name, value), source_stamp_us(value))
            for name, value in zip(names, values, strict=True)
        ]
        for sample, stamp in read:
            packs.note(sample, stamp)
        number = counter.value
        if counter.quality is not Quality.GOOD or not isinstance(number, int | float):
            # No pack comes of it (the interpreter rejects the counter); nothing to pair.
            return [*(sample for sample, _ in read), counter], ()
        pack = packs.pack(int(number), counter_us, read)
        if pack.doubts and not self._doubts_logged:
            self._doubts_logged = True
            log.warning(
                "device %s: pack %s stored flagged VALUES_UNCERTAIN: %s",
                self.device_id,
                number,
                "; ".join(pack.doubts),
            )
        elif not pack.doubts:
            self._doubts_logged = False
        return [*pack.samples, counter], pack.doubts

    @property
    def uncertain_packs(self) -> int:
        """Packs stored flagged VALUES_UNCERTAIN so far (0 for other roles)."""
        interpreter = self.interpreter
        if isinstance(interpreter, CheckweigherInterpreter):
            return interpreter.uncertain_packs
        return 0

    # ---------------------------------------------------------------- polling and watchdog

    def _poll_groups(self) -> list[OpcUaTagGroup]:
        groups = [g for g in self.device.groups if g.mode == "poll"]
        if self._packs is None:
            return groups
        kept = []
        for group in groups:
            if any(t.name == self._counter or t.name in self._levels for t in group.tags):
                kept.append(group)
            else:
                log.info(
                    "device %s: poll group %s has no %s; its values are read with the counter",
                    self.device_id,
                    group.name,
                    self._counter,
                )
        return kept

    async def _poll(self, client: Client, session: _Session, group: OpcUaTagGroup) -> None:
        """Read all of the group's nodes in one Read every ``poll_interval_ms``."""
        names = [t.name for t in group.tags]
        levels = [name for name in names if name in self._levels]
        packs, counter = self._packs, self._counter
        if packs is not None and counter is not None:
            if counter not in names:
                packs = None  # a group of levels only: read as they are, each poll
                names = levels
            else:
                # The whole pack, the counter first: a server that does not take a Read's
                # values at one moment then reads the weights no earlier than the counter,
                # and a weight stamped at or before the counter is still the one current at
                # it. The group's levels (changeover) come after, fed as they are.
                names = [counter, *packs.tags, *levels]
        nodes = [session.nodes[n] for n in names]
        interval = group.poll_interval_ms / 1000
        due = self._clock.monotonic()
        scanner = self.device.role == "label_scanner"
        while True:
            # Backpressure: no Read while the store has no room; late slots are skipped.
            await self._sink.wait_for_space()
            try:
                values = await self._read(client, nodes)
            except UA_ERRORS as exc:
                session.fail(translate_error(self.device_id, exc, f"polling group {group.name}"))
                return
            doubts: tuple[str, ...] = ()
            if packs is not None and counter is not None:
                end = 1 + len(packs.tags)
                now_read = [
                    self._sample(name, value)
                    for name, value in zip(names[end:], values[end:], strict=True)
                ]
                assembled, doubts = self._assemble(
                    packs,
                    self._sample(counter, values[0]),
                    source_stamp_us(values[0]),
                    names[1:end],
                    values[1:end],
                )
                read = [*now_read, *assembled]
            else:
                pairs = zip(names, values, strict=True)
                read = [self._sample(name, value) for name, value in pairs]
            samples = []
            for index, sample in enumerate(read):
                # A scanner is never a checkweigher, so its samples are in ``values`` order.
                if scanner and self._repeated_scan(session, sample, source_time_us(values[index])):
                    continue
                if self._repeated_fault(sample):
                    continue
                samples.append(sample)
            if samples:
                self._feed(samples, doubts)
            now = self._clock.monotonic()
            due = _next_due(due, now, interval)
            await asyncio.sleep(min(max(due - now, 0.0), interval))

    async def _watchdog(self, client: Client, session: _Session) -> None:
        """Read ServerStatus.State every ``watchdog_interval_s``; anything but Running ends it."""
        while True:
            await asyncio.sleep(self.device.watchdog_interval_s)
            try:
                (state,) = await self._read(client, [client.get_node(_SERVER_STATE)])
            except UA_ERRORS as exc:
                session.fail(translate_error(self.device_id, exc, "watchdog read of ServerStatus"))
                return
            if problem := _not_running(state):
                session.fail(DeviceUnreachable(self.device_id, problem))
                return
            # Stuck-value detection runs only while connected: no data while down is not a
            # stuck sensor.
            self._emit(self.interpreter.tick(self._clock.wall_us()))

    async def _read(self, client: Client, nodes: Sequence[Node]) -> list[ua.DataValue]:
        """One Read service call (OPC 10000-4 §5.10.2) for the Value of ``nodes``."""
        async with asyncio.timeout(self.device.timeout_s + _GUARD_GRACE_S):
            values = list(await client.read_attributes(nodes))
        raise_if_cancelled()
        if len(values) != len(nodes):
            raise DeviceUnreachable(
                self.device_id, f"Read returned {len(values)} results for {len(nodes)} nodes"
            )
        return values

    # ---------------------------------------------------------------- teardown

    async def _teardown(self, client: Client, session: _Session) -> None:
        """Close everything of ``client``; remember subscriptions that could not be deleted."""
        session.closing = True
        ids = [
            int(sid) for sub in session.subscriptions if (sid := sub.subscription_id) is not None
        ]
        deleted = not ids
        protocol = client.uaclient.protocol
        transport_up = protocol is not None and not protocol.is_closed
        try:
            async with asyncio.timeout(min(self.device.timeout_s, TEARDOWN_S)):
                if transport_up and ids and session.current == "connected":
                    # OPC 10000-4 §5.13.8 DeleteSubscriptions; CloseSession deletes them too,
                    # but this answer says whether it worked.
                    results = await client.delete_subscriptions(ids)
                    deleted = all(
                        r.is_good() or int(r.value) == _BAD_SUBSCRIPTION_ID for r in results
                    )
                if transport_up:
                    # Cancels asyncua's supervisor, watchdog and renew tasks, then
                    # CloseSession(DeleteSubscriptions=true) (§5.6.4) and CloseSecureChannel.
                    await client.close_session()
                    if "channel_open" in session.reached:
                        await client.close_secure_channel()
        except (*UA_ERRORS, ConnectionError) as exc:
            log.debug("device %s: closing the session: %r", self.device_id, exc)
        finally:
            # With the transport gone there is nothing to say to the server: drop the socket
            # and stop asyncua's tasks.
            client.disconnect_socket()
            await _reap(client)
        if not deleted and session.start_time is not None:
            self._orphans = _Orphans(session.start_time, tuple(ids))

    # ---------------------------------------------------------------- records and state

    def _feed(self, samples: Sequence[TagSample], doubts: Sequence[str] = ()) -> None:
        """Samples handled together go to the interpreter in one call; ``doubts`` say why a
        checkweigher's values may not be the counter's pack's (the pack is then flagged)."""
        interpreter = self.interpreter
        now = self._clock.wall_us()
        if isinstance(interpreter, CheckweigherInterpreter):
            records = interpreter.interpret_pack(samples, now, doubts)
        else:
            records = interpreter.interpret(samples, now)
        for sample in samples:
            self._track(sample)
        self._emit(records)

    def _track(self, sample: TagSample) -> None:
        if sample.quality is Quality.GOOD:
            if not self._bad_tags and self.state is LinkState.UP:
                return  # the common case, every good value: nothing changes
            self._bad_tags.discard(sample.tag)
        else:
            self._bad_tags.add(sample.tag)
        if self.state in (LinkState.UP, LinkState.DEGRADED):
            self._set_state(LinkState.DEGRADED if self._bad_tags else LinkState.UP)

    def _repeated_scan(self, session: _Session, sample: TagSample, source_us: int | None) -> bool:
        """True for a scanner value already handed on.

        That is the same value, status and source time again (a poll, or a write of the same
        value a server reports twice), or the first value of a session repeating the last
        read handed on: the initial value after a reconnect, which a restarted server gives
        a new timestamp.
        """
        key = (repr(sample.value), source_us, str(sample.quality), sample.status)
        last = self._last_scan.get(sample.tag)
        first = sample.tag not in session.scans_seen
        session.scans_seen.add(sample.tag)
        self._last_scan[sample.tag] = key
        if last is None:
            return False
        return last == key or (first and (last[0], *last[2:]) == (key[0], *key[2:]))

    def _repeated_fault(self, sample: TagSample) -> bool:
        """True for a poll repeating the same bad/uncertain value: reported once per episode."""
        if sample.quality is Quality.GOOD:
            self._poll_reported.pop(sample.tag, None)
            return False
        key = (str(sample.quality), sample.status, repr(sample.value))
        if self._poll_reported.get(sample.tag) == key:
            return True
        self._poll_reported[sample.tag] = key
        return False

    def _link_up(self, session: _Session) -> None:
        session.up_at = self._clock.monotonic()
        self._slow.reset()
        self._bad_tags.clear()
        self._set_state(LinkState.UP)
        if self._down_since is None:
            if self.reconnects == 0 and not self._first_link_recorded:
                # The first connection is recorded too, so the store shows when recording began.
                self._first_link_recorded = True
                log.info("device %s: connected to %s", self.device_id, self.device.endpoint)
                self._emit([self._event("link_up", endpoint=self.device.endpoint)])
            return
        self._first_link_recorded = True
        down_for = max(self._clock.monotonic() - self._down_since, 0.0)
        self._down_since = None
        self.reconnects += 1
        log.info("device %s: link up again after %.1f s", self.device_id, down_for)
        self._emit([self._event("link_up", down_for_s=round(down_for, 3))])

    def _outage(self, error: DeviceError) -> None:
        """Not connected: DOWN, and one ``link_down`` event per outage."""
        self.last_error = str(error)
        self._set_state(LinkState.DOWN)
        if self._down_since is not None:
            log.debug("still down: %s", error)
            return
        self._down_since = self._clock.monotonic()
        if isinstance(error, DeviceSecurityError | DeviceConfigError):
            log.error("link down: %s", error)  # the error names the device
        else:
            log.warning("link down: %s", error)
        self._emit([self._event("link_down", error=str(error), cause=_cause(error))])


def _not_running(data_value: ua.DataValue) -> str | None:
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


async def _reap(client: Client) -> None:
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
