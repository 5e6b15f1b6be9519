"""Which values belong to which pack, by the device's source timestamps. Pure: no I/O, no clock.

A checkweigher writes a pack's values (weights, label number, accepted) first and its pack
counter last. The adapter reads those values when it sees the counter change, but the read
may land after the device has already written the *next* pack's values (its counter not yet):
the counter still says N while the weights are N+1's. The counter read with them cannot tell
(it has not moved); only the time each value was written can. So for pack N, with counter
source time ``t(N)`` and the previous pack's ``t(N-1)``, each value is judged by its own
source time ``s``:

* ``s <= t(N)`` on a value read *after* counter N was seen: it was not written again
  between the counter and the read, so it is the value current at the counter: this pack's.
  (A value older than ``t(N-1)``, e.g. a nominal weight set once, is still current.)
* ``s > t(N)``: written after the counter, so a later pack's. This pack's value is then
  taken from the values seen earlier (notifications, earlier reads): the newest one stamped
  at or before ``t(N)``, *provided* it is stamped after ``t(N-1)``, i.e. it was written for
  this pack. If the newest seen is older than that, the device's write for this pack may
  have been missed (a sampling queue that dropped it, a poll that never saw it): uncertain.
* no source time on the value or on the counter: nothing places the value before or after
  the counter, so the pack is uncertain. (ServerTimestamp is not used: it says when the
  server took or sent the value, not when the device wrote it.)
* the counter's source time not after the previous one's (a PLC clock set back): the
  comparisons mean nothing, so values picked from history are uncertain.

An uncertain pack is not dropped: the best value known (the one current at ``t(N)`` as far as
was seen, else the value read) is given with the reasons, and the pack is stored with
:attr:`~gateway.core.records.RecordFlag.VALUES_UNCERTAIN`, outside the ℮ statistics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapters.base import TagSample

__all__ = ["PackAssembler", "PackValues"]


@dataclass(frozen=True, slots=True)
class _Noted:
    sample: TagSample
    source_us: int | None


@dataclass(frozen=True, slots=True)
class PackValues:
    """The values given for one pack, and why they may not be its own (empty when proven)."""

    samples: tuple[TagSample, ...]
    doubts: tuple[str, ...] = ()

    @property
    def certain(self) -> bool:
        """Every value was shown to be the one current when the pack's counter was written."""
        return not self.doubts


class PackAssembler:
    """Recent values of a checkweigher's non-counter tags with their source times, and the
    previous pack counter's source time.

    Args:
        tags: the tags to assemble (every checkweigher tag but the counter).
        history: values kept per tag; more than the packs one publish can hold.
    """

    def __init__(self, tags: Iterable[str], history: int = 64) -> None:
        self._noted: dict[str, deque[_Noted]] = {tag: deque(maxlen=history) for tag in tags}
        self._previous: tuple[int, int | None] | None = None

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

    def pack(
        self,
        counter: int,
        counter_us: int | None,
        read: Sequence[tuple[TagSample, int | None]],
    ) -> PackValues:
        """The values of pack ``counter`` (source time ``counter_us``).

        ``read`` is each assembled tag's value from a Read made after the counter was seen
        at ``counter`` (or, for a poll, in the same Read with the counter asked first), with
        its source time, in :attr:`tags` order. Call :meth:`note` with them first.
        """
        previous, self._previous = self._previous, (counter, counter_us)
        if counter_us is None:
            return PackValues(
                tuple(sample for sample, _ in read),
                (
                    "the counter has no source timestamp: the values cannot be placed before "
                    "or after it",
                ),
            )
        lower: int | None = None
        doubts: list[str] = []
        if previous is not None and previous[0] == counter - 1 and previous[1] is not None:
            if previous[1] < counter_us:
                lower = previous[1]
            else:
                doubts.append("the counter's source time did not advance (device clock set back?)")
        samples: list[TagSample] = []
        for sample, read_us in read:
            if read_us is None:
                doubts.append(f"{sample.tag}: no source timestamp")
                samples.append(sample)
            elif read_us <= counter_us:
                samples.append(sample)  # not rewritten since the counter: current at it
            else:
                samples.append(self._before(sample, counter_us, lower, doubts))
        return PackValues(tuple(samples), tuple(doubts))

    def _before(
        self, read: TagSample, counter_us: int, lower: int | None, doubts: list[str]
    ) -> TagSample:
        """The tag's value for a pack whose read came after a later pack rewrote it."""
        best: _Noted | None = None
        for noted in self._noted.get(read.tag, ()):
            if noted.source_us is None or noted.source_us > counter_us:
                continue
            if best is None or best.source_us is None or noted.source_us >= best.source_us:
                best = noted
        if best is None:
            doubts.append(f"{read.tag}: rewritten after the counter; no earlier value seen")
            return read
        if lower is None or best.source_us is None or best.source_us <= lower:
            doubts.append(
                f"{read.tag}: rewritten after the counter; the value seen before it may be "
                "an earlier pack's"
            )
        return best.sample
