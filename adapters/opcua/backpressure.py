"""Backpressure for an OPC UA subscription: asyncua's publish loop waits for the adapter.

asyncua (2.1) sends one Publish request at a time and awaits the subscription's callback
with each response before it sends the next, but the callback itself never waits: it puts
the notifications into the subscription's queue, which the adapter consumes. A device that
changes faster than the adapter can handle (a checkweigher's values are read once per pack)
fills that queue; full, asyncua forces a reconnect (our overflow policy, so nothing is
dropped unseen) and logs an error for every notification that no longer fits: a session
torn down every second or two and thousands of log lines, for as long as the flood lasts.

:class:`PublishGate` wraps the callback so that, after handing a response on, it waits
while the queue has less room than the next response may need, or the store has no room
(:meth:`adapters.base.RecordSink.wait_for_space`). The next Publish request then leaves
later, and meanwhile the server keeps the notifications in its monitored items' queues,
discarding the oldest when one is full (OPC 10000-4 §5.12.1.5, ``DiscardOldest``): the
server's memory and the queue size we asked for bound it, not ours. A response can carry at
most what the server can hold for us, the subscription's items times their queue size
(fewer if the server honours MaxNotificationsPerPublish, which ``subscribing.py`` sets; asyncua's
own server does not). With the default queue size of 100 that is far below the
:data:`NOTIFICATION_QUEUE`; a configuration whose items and queue sizes exceed it can still
overflow the queue, and gets the reconnect.

A wait lasts at most ``max_wait_s``, half a keep-alive period: asyncua recreates a
subscription it has heard nothing from for 1.5 keep-alive periods, and the server drops one
that has had no Publish request for its lifetime (three keep-alive periods, OPC 10000-4
§5.13.2). After that the response's notifications are handed on anyway, as before.

When the queue overflows all the same (an adapter slower than even the held-back server),
asyncua logs the same error for every notification that arrives until the connection is
down, hundreds in a row: :class:`CollapseRepeats` lets the first through and counts the
rest into the next different message.

The callback registry is asyncua's own (``UaSession._subscription_callbacks``) and so is
the queue (``Subscription._event_queue``); both are read defensively, and without them the
subscription simply works as it did without the gate.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from asyncua.client.client import Client
from asyncua.common.subscription import Subscription

from adapters.base import RecordSink, raise_if_cancelled

__all__ = ["NOTIFICATIONS_PER_PUBLISH", "NOTIFICATION_QUEUE", "CollapseRepeats", "PublishGate"]

log = logging.getLogger(__name__)

NOTIFICATION_QUEUE: Final = 10_000
"""Notifications buffered per subscription between asyncua's publish loop and the adapter.
When it is full asyncua forces a reconnect (OverflowPolicy.DISCONNECT) instead of dropping
values silently; after the reconnect the counter logic records any missed packs."""

NOTIFICATIONS_PER_PUBLISH: Final = 1000
"""MaxNotificationsPerPublish asked of the server (OPC 10000-4 §5.13.2): what one response
may add to the queue. The server sends the rest in the responses after it."""


class PublishGate:
    """Holds one subscription's Publish requests back while the adapter or the store is
    behind. :meth:`install` it on the subscription; the adapter calls :meth:`consumed` after
    each notification it takes off the queue.

    Attributes:
        holds: Responses after which the publish loop waited for the adapter's queue.
        timeouts: Waits that ended at ``max_wait_s`` rather than with room.
    """

    def __init__(self, sink: RecordSink, max_wait_s: float, per_response: int) -> None:
        """``per_response``: the most notifications one Publish response can carry."""
        self.sink = sink
        self.max_wait_s = max_wait_s
        self.high_water = max(NOTIFICATION_QUEUE - per_response, 0)
        """Above this many queued notifications the next Publish request waits."""
        self.holds = 0
        self.timeouts = 0
        self._queue: asyncio.Queue[Any] | None = None
        self._room = asyncio.Event()
        self._room.set()

    def install(self, client: Client, subscription: Subscription) -> bool:
        """Wrap ``subscription``'s publish callback; False when asyncua's internals differ."""
        session = getattr(client.uaclient, "session", None)
        callbacks = getattr(session, "_subscription_callbacks", None)
        queue = getattr(subscription, "_event_queue", None)
        sid = subscription.subscription_id
        deliver = callbacks.get(sid) if isinstance(callbacks, dict) else None
        if deliver is None or not isinstance(queue, asyncio.Queue):
            log.debug("asyncua internals differ: subscription %s is not held back", sid)
            return False
        self._queue = queue
        callbacks[sid] = self._gated(deliver)  # type: ignore[index]  # a dict, checked above
        return True

    def consumed(self) -> None:
        """The adapter took a notification off the queue: let a held Publish go when there
        is room again."""
        queue = self._queue
        if not self._room.is_set() and queue is not None and queue.qsize() <= self.high_water:
            self._room.set()

    def _gated(self, deliver: Callable[..., Any]) -> Callable[[Any], Awaitable[None]]:
        async def gated(result: Any) -> None:
            handed = deliver(result)
            if inspect.isawaitable(handed):
                await handed
            # An overflow makes asyncua drop the connection, and the adapter then cancels this
            # very task (session.py, on_state_change). Taken here, the cancellation ends the
            # loop quietly; left for later, the next Publish fails first on the closed
            # connection and asyncua logs that with a traceback.
            raise_if_cancelled()
            queue = self._queue
            try:
                async with asyncio.timeout(self.max_wait_s):
                    if queue is not None and queue.qsize() > self.high_water:
                        self.holds += 1
                        self._room.clear()
                        await self._room.wait()
                    await self.sink.wait_for_space()  # at once while the store has room
            except TimeoutError:
                self.timeouts += 1

        return gated


class CollapseRepeats(logging.Filter):
    """Drops a log record that repeats the one before it word for word; the next different
    record says how many were dropped."""

    def __init__(self) -> None:
        super().__init__()
        self._last = ""
        self._repeats = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat of the previous message."""
        message = record.getMessage()
        if message == self._last:
            self._repeats += 1
            return False
        if self._repeats:
            record.msg = f"{record.msg} (the message before it repeated {self._repeats} times)"
        self._last, self._repeats = message, 0
        return True


# asyncua's subscription module logs once per notification that does not fit the queue.
logging.getLogger("asyncua.common.subscription").addFilter(CollapseRepeats())
