"""Which weights belong to which pack, when notifications queue up. Pure: no I/O, no clock.

A checkweigher writes a pack's weights first and its pack counter last. Notifications of
different monitored items carry no order between them (OPC 10000-4 §5.13.1.1: a
NotificationMessage groups notifications per monitored item), so the adapter reads the
other checkweigher variables explicitly when the counter moves and uses those values
(see :mod:`adapters.opcua.client`).

That read is only right for the *newest* pack. When the server queued several counter
changes (packs faster than the publishing interval), the earlier ones are paired with the
values that were current at their own time: for each tag, the latest value noted (from a
notification or a read) whose source timestamp is not after the counter's. A tag with no
such value is reported BAD rather than borrowing another pack's value.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from adapters.base import Quality, TagSample

__all__ = ["NO_VALUE_FOR_PACK", "PackAssembler"]

NO_VALUE_FOR_PACK = "BadNoData: no value of this tag was seen for this pack"
"""Status of the BAD sample given for a tag with no value at the counter's time."""


@dataclass(frozen=True, slots=True)
class _Noted:
    sample: TagSample
    source_us: int | None


class PackAssembler:
    """Recent values of a checkweigher's non-counter tags, with their source times.

    Args:
        tags: the tags to assemble (every checkweigher tag but the counter).
        history: values kept per tag; more than the queue of packs one publish can hold.
    """

    def __init__(self, tags: Iterable[str], history: int = 64) -> None:
        self._noted: dict[str, deque[_Noted]] = {tag: deque(maxlen=history) for tag in tags}

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags assembled, in configuration order."""
        return tuple(self._noted)

    def note(self, sample: TagSample, source_us: int | None) -> None:
        """Remember a value of one tag (ignored for tags not assembled)."""
        history = self._noted.get(sample.tag)
        if history is None:
            return
        if history and source_us is not None:
            last = history[-1]
            if last.source_us == source_us and last.sample == sample:
                return  # the same value seen twice (notification, then read)
        history.append(_Noted(sample, source_us))

    def at(self, source_us: int | None) -> list[TagSample]:
        """Each tag's latest value with a source time not after ``source_us``.

        A value without a source time is taken when met (going back from the newest): a
        server that sends no timestamps gives nothing better to go by. With ``source_us``
        None, each tag's latest value is given.
        """
        samples = []
        for tag, history in self._noted.items():
            chosen: TagSample | None = None
            for noted in reversed(history):
                if source_us is None or noted.source_us is None or noted.source_us <= source_us:
                    chosen = noted.sample
                    break
            if chosen is None:
                chosen = TagSample(tag, None, Quality.BAD, NO_VALUE_FOR_PACK)
            samples.append(chosen)
        return samples
