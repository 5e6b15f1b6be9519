"""The subscriptions of an OPC UA session: one per subscribe group, its monitored items, and
the notifications handed on as they arrive (a pack's values with its counter)."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import (
    DataChangeEvent,
    OverflowPolicy,
    StatusChangeEvent,
    Subscription,
)

from adapters.base import Quality, TagSample
from adapters.opcua.adapter_state import OpcUaAdapterState
from adapters.opcua.backpressure import NOTIFICATION_QUEUE, NOTIFICATIONS_PER_PUBLISH, PublishGate
from adapters.opcua.monitored_items import data_change_filter, item_request
from adapters.opcua.session import Session
from adapters.opcua.status import (
    UA_ERRORS,
    source_stamp_us,
    source_time_us,
    status_name,
    translate_error,
)
from gateway.config import OpcUaTag, OpcUaTagGroup
from gateway.core.errors import DeviceUnreachable

# The adapter's log lines keep one logger name, whichever of its modules writes them.
log = logging.getLogger("adapters.opcua.client")

# Notifications handled between two turns of the event loop (see _consume).
_YIELD_EVERY: Final = 100


class Subscribing(OpcUaAdapterState):
    """Subscribes the device's subscribe groups and consumes their notifications."""

    async def _subscribe(
        self, client: Client, session: Session, group: OpcUaTagGroup
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
            item_request(
                group, session.nodes[tag.name], handle, self._data_change_filter(group, tag)
            )
            for handle, tag in enumerate(group.tags, start=1)
        ]
        results = await subscription.create_monitored_items(requests)
        refused = []
        for tag, result in zip(group.tags, results, strict=True):
            if isinstance(result, int):
                continue
            refused.append(self._item_refused(tag, int(result.value)))
        return subscription, handles, refused

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

    def _data_change_filter(
        self, group: OpcUaTagGroup, tag: OpcUaTag
    ) -> ua.DataChangeFilter | None:
        """The filter of ``tag``'s monitored item (:func:`data_change_filter`)."""
        counter = tag.name == self._counter
        return data_change_filter(
            group,
            counter=counter,
            # A scanner may read the same label twice, and two packs in a row often weigh
            # the same: their notifications must come for every write (monitored_items.py).
            # A level's changes are all that matter.
            every_write=self.device.role == "label_scanner",
            pack_value=self._packs is not None and not counter and tag.name not in self._levels,
        )

    async def _consume(
        self,
        client: Client,
        session: Session,
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

    async def _changed(
        self, client: Client, session: Session, tag: str, data_value: ua.DataValue
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
        if self.device.role == "label_scanner" and self._repeats.scan(
            session.scans_seen, sample, source_time_us(data_value)
        ):
            return
        self._feed([sample])

    async def _counter_changed(
        self, client: Client, session: Session, counter: TagSample, counter_us: int | None
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
