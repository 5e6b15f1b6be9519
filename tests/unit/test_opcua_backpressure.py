"""The OPC UA publish gate on stand-ins for asyncua's session and subscription (the real
thing under a flood: tests/faults/test_intake_flood.py), and the log filter beside it."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from adapters.opcua.backpressure import NOTIFICATION_QUEUE, CollapseRepeats, PublishGate


class Sink:
    """A record sink whose room the test opens and closes."""

    def __init__(self) -> None:
        self.room = asyncio.Event()
        self.room.set()

    def submit(self, record: Any) -> asyncio.Future[int]:
        raise AssertionError("the gate never submits")

    def enqueue(self, record: Any) -> None:
        raise AssertionError("the gate never submits")

    async def wait_for_space(self) -> None:
        await self.room.wait()


def stand_ins(delivered: list[Any]) -> tuple[Any, Any, asyncio.Queue[Any]]:
    """A client whose session holds asyncua's callback for subscription 7, and that
    subscription with its notification queue."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=NOTIFICATION_QUEUE)
    callbacks = {7: delivered.append}
    client = SimpleNamespace(uaclient=SimpleNamespace(session=SimpleNamespace()))
    client.uaclient.session._subscription_callbacks = callbacks
    subscription = SimpleNamespace(subscription_id=7, _event_queue=queue)
    return client, subscription, queue


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_the_next_publish_waits_while_the_queue_lacks_room_for_a_response() -> None:
    delivered: list[Any] = []
    client, subscription, queue = stand_ins(delivered)
    gate = PublishGate(Sink(), max_wait_s=60, per_response=600)
    assert gate.high_water == NOTIFICATION_QUEUE - 600
    assert gate.install(client, subscription)
    publish = client.uaclient.session._subscription_callbacks[7]

    await asyncio.wait_for(publish("response 1"), 1)  # room: back to asyncua at once
    assert delivered == ["response 1"]
    assert gate.holds == 0

    for n in range(gate.high_water + 1):
        queue.put_nowait(n)
    held = asyncio.create_task(publish("response 2"))
    await settle()
    assert delivered == ["response 1", "response 2"], "handed on first, then held"
    assert not held.done()
    queue.get_nowait()
    gate.consumed()  # the adapter took one: room for a response again
    await asyncio.wait_for(held, 1)
    assert (gate.holds, gate.timeouts) == (1, 0)


async def test_the_store_holds_publishing_back_too_and_a_wait_is_bounded() -> None:
    delivered: list[Any] = []
    client, subscription, _queue = stand_ins(delivered)
    sink = Sink()
    gate = PublishGate(sink, max_wait_s=0.05, per_response=600)
    assert gate.install(client, subscription)
    publish = client.uaclient.session._subscription_callbacks[7]
    sink.room.clear()
    await asyncio.wait_for(publish("response"), 10)  # ends at max_wait_s, not never
    assert delivered == ["response"]
    assert gate.timeouts == 1


def test_other_asyncua_internals_leave_the_subscription_as_it_was() -> None:
    gate = PublishGate(Sink(), max_wait_s=1, per_response=1)
    no_session = SimpleNamespace(uaclient=SimpleNamespace())
    assert not gate.install(no_session, SimpleNamespace(subscription_id=1))  # type: ignore[arg-type]
    client, subscription, _ = stand_ins([])
    subscription._event_queue = None
    assert not gate.install(client, subscription)


def test_repeated_log_lines_are_collapsed_into_a_count() -> None:
    collapse = CollapseRepeats()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncua", logging.ERROR, __file__, 1, message, None, None)

    full = "Subscription 79 event queue full; forcing reconnect"
    kept = [r for r in (record(full) for _ in range(300)) if collapse.filter(r)]
    assert len(kept) == 1
    after = record("something else")
    assert collapse.filter(after)
    assert after.getMessage() == "something else (the message before it repeated 299 times)"
