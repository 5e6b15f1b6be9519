"""Values an OPC UA device hands on again that are no news: a scanner's read repeated, and a
poll repeating the same bad or uncertain value (each reported once per episode)."""

from __future__ import annotations

from adapters.base import Quality, TagSample


class RepeatedValues:
    """Remembers the last scanner read and the last reported fault of each tag."""

    def __init__(self) -> None:
        self._poll_reported: dict[str, tuple[str, str, str]] = {}
        self._last_scan: dict[str, tuple[str, int | None, str, str]] = {}

    def scan(self, seen: set[str], sample: TagSample, source_us: int | None) -> bool:
        """True for a scanner value already handed on.

        That is the same value, status and source time again (a poll, or a write of the same
        value a server reports twice), or the first value of a session repeating the last
        read handed on: the initial value after a reconnect, which a restarted server gives
        a new timestamp.
        """
        key = (repr(sample.value), source_us, str(sample.quality), sample.status)
        last = self._last_scan.get(sample.tag)
        first = sample.tag not in seen
        seen.add(sample.tag)
        self._last_scan[sample.tag] = key
        if last is None:
            return False
        return last == key or (first and (last[0], *last[2:]) == (key[0], *key[2:]))

    def fault(self, sample: TagSample) -> bool:
        """True for a poll repeating the same bad/uncertain value: reported once per episode."""
        if sample.quality is Quality.GOOD:
            self._poll_reported.pop(sample.tag, None)
            return False
        key = (str(sample.quality), sample.status, repr(sample.value))
        if self._poll_reported.get(sample.tag) == key:
            return True
        self._poll_reported[sample.tag] = key
        return False
