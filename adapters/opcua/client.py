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
after it connected, and a client is never reused; what a lost session leaves on the server
is taken over and deleted as :mod:`adapters.opcua.session` explains.

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
import logging
from typing import NoReturn

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.uaerrors import UaError

from adapters.base import raise_if_cancelled
from adapters.opcua.connect_errors import connect_error
from adapters.opcua.late_answers import DemoteLateAnswer
from adapters.opcua.polling import Polling
from adapters.opcua.publish_faults import (
    PUBLISH_FAULT_LOGGER,
    PUBLISH_LOOP_LOGGER,
    DemoteLostConnectionPublish,
    DemoteNoSubscription,
)
from adapters.opcua.security import configure_security
from adapters.opcua.session import (
    SERVER_START_TIME,
    SERVER_STATE,
    SESSION_TIMEOUT_MIN_S,
    TEARDOWN_S,
    Session,
    cause_of,
    new_client,
    not_running,
    remove_orphans,
    teardown,
)
from adapters.opcua.status import UA_ERRORS
from adapters.opcua.subscribing import Subscribing
from adapters.opcua.units import check_engineering_units
from gateway.core.errors import (
    DeviceConfigError,
    DeviceError,
    DeviceSecurityError,
    DeviceUnreachable,
)
from gateway.core.link import LinkState

__all__ = ["SESSION_TIMEOUT_MIN_S", "TEARDOWN_S", "OpcUaAdapter"]

log = logging.getLogger(__name__)
# Publish requests answered BadNoSubscription at a stop are expected (publish_faults.py).
logging.getLogger(PUBLISH_FAULT_LOGGER).addFilter(DemoteNoSubscription())
# A Publish failing on a connection already reported as lost is expected (publish_faults.py).
logging.getLogger(PUBLISH_LOOP_LOGGER).addFilter(DemoteLostConnectionPublish())
# Answers to Reads cancelled at a stop, or timed out and reported, are expected (late_answers.py).
logging.getLogger(PUBLISH_FAULT_LOGGER).addFilter(DemoteLateAnswer())


class OpcUaAdapter(Subscribing, Polling):
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
        session = Session(self.device_id)
        client = new_client(self.device, session)
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
                raise connect_error(self.device_id, exc, session) from exc
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
            orphans = await teardown(
                client, session, timeout_s=self.device.timeout_s, device_id=self.device_id
            )
            if orphans is not None:
                self._orphans = orphans

    async def _open(self, client: Client, session: Session) -> None:
        """Security, connect, check the server runs, resolve node ids, remove orphans."""
        if self.device.security is not None:
            session.security = await configure_security(client, self.device)
        await client.connect()
        raise_if_cancelled()
        state, start = await self._read(
            client, [client.get_node(SERVER_STATE), client.get_node(SERVER_START_TIME)]
        )
        if problem := not_running(state):
            raise DeviceUnreachable(self.device_id, problem)
        session.start_time = start.Value.Value if start.Value is not None else None
        session.nodes = await self._resolve(client)
        await check_engineering_units(self.device, session.nodes, self.device.timeout_s)
        orphans, self._orphans = self._orphans, None
        await remove_orphans(
            client,
            orphans,
            session.start_time,
            timeout_s=self.device.timeout_s,
            device_id=self.device_id,
        )

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

    # ---------------------------------------------------------------- link state

    def _link_up(self, session: Session) -> None:
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
        self._emit([self._event("link_down", error=str(error), cause=cause_of(error))])
