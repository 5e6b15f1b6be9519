"""What a checkweigher says about a pack besides its weight. Pure: no I/O, no clock reads.

The role interpreter (:mod:`adapters.roles`) reads these from the checkweigher's tags:

* ``program``: the device's program (product) number, stored as text: an integer register
  holding 12 is ``"12"`` (never ``"12.0"``), a string tag is taken as written.
* ``catch_weight_mode``, ``rejected``, ``accepted``, ``changeover``: flags, usually bits of
  a status word (``bit = n`` tags); an integer reads true when it is not 0.
* ``reject_counter``: how many packs the device has rejected. :class:`RejectPairing` turns
  its movement between two packs into a verdict for the pack (the rule is in its docstring
  and in docs/devices.md).
* ``changeover``: a level (the device is in changeover or not); :class:`Edge` turns it into
  the moments it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Edge", "RejectPairing", "RejectVerdict", "count_of", "flag", "program_text"]


def program_text(value: object) -> str | None:
    """A program number or code as text; None when there is none (or it is a flag)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip()
    return text or None


def flag(value: object) -> bool | None:
    """A flag's state: a bool as it is, an integer true when not 0; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return None


def count_of(value: object) -> int | None:
    """A counter's value: an integer (or a float holding one); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class RejectVerdict:
    """What the reject counter says about one pack."""

    accepted: bool | None
    """True: no reject was counted with it; False: it was rejected; None: not known."""
    doubt: str = ""
    """Why it is not known (empty when it is)."""


class RejectPairing:
    """Pairs the reject counter's movement with the pack counter's.

    The device counts every pack over the scale with the pack counter and the rejected ones
    also with the reject counter, updating the reject counter with the pack's other values
    (before or together with the pack counter). Between two packs read with a good reject
    count, the pack counter moved by ``k`` (1, or more when packs were missed) and the reject
    counter by ``r``:

    * ``r == 0``: none of the ``k`` packs was rejected: the pack is accepted;
    * ``r == k``: all of them were: the pack is rejected;
    * ``0 < r < k``: some of them were, and nothing says which: not known;
    * ``r < 0`` (the reject counter went back: reset or wrapped) or ``r > k`` (more rejects
      than packs: the counter counts something else too): not known.

    A pack whose reject count was not read (a bad value) is not known either, and the next
    good count is compared with the last good one, over the packs in between. After a start
    (no earlier count) or a pack counter reset, the first pack is not known.
    """

    def __init__(self) -> None:
        self._base: tuple[int, int] | None = None  # (pack counter, reject count) read together

    def baseline(self, counter: int, rejects: int | None) -> None:
        """The first pack counter seen (no pack): start counting from here."""
        self._base = None if rejects is None else (counter, rejects)

    def pack(self, counter: int, rejects: int | None, *, counter_reset: bool) -> RejectVerdict:
        """The verdict for the pack that took the pack counter to ``counter``."""
        base = self._base
        if rejects is not None:
            self._base = (counter, rejects)
        elif counter_reset:
            self._base = None
        if rejects is None:
            return RejectVerdict(None, "the reject counter was not read with this pack")
        if base is None or counter_reset:
            return RejectVerdict(
                None, "no earlier reject count to compare with (after a start or a counter reset)"
            )
        packs, moved = counter - base[0], rejects - base[1]
        if moved == 0:
            return RejectVerdict(True)
        if moved == packs:
            return RejectVerdict(False)
        if moved < 0:
            why = f"the reject counter went back from {base[1]} to {rejects}"
        elif moved > packs:
            why = f"the reject counter moved by {moved} while the pack counter moved by {packs}"
        else:
            why = f"{moved} of the last {packs} packs were rejected; which ones is not known"
        return RejectVerdict(None, why)


class Edge:
    """A level's changes: the new state when it differs from the last one seen.

    The first state seen is a change only when it is on: a gateway starting while the device
    is in changeover reports it, one starting in production has nothing to report.
    """

    def __init__(self) -> None:
        self._state: bool | None = None

    def update(self, state: bool) -> bool | None:
        """The new state after a rising or falling edge; None when nothing changed."""
        previous, self._state = self._state, state
        if previous is None:
            return True if state else None
        return state if state != previous else None
