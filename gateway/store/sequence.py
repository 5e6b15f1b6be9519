"""Gateway-wide sequence numbers that are never reused, even after a crash or power loss.

The warehouse identifies a record by ``(gateway id, sequence)``, and deduplicates on it.
Reusing a number for different content would make the warehouse drop a real record as a
duplicate. A number taken from the database alone (``max(seq) + 1``) is not safe: after a
power cut on storage that loses its last commits, or when an older copy of the database
is restored, numbers that already left the device would be handed out again.

So numbers are reserved ahead in a small file beside the database (high/low allocation,
like Sparkplug's persisted ``bdSeq``): before any number at or above the reserved mark is
used, a new mark ``block`` higher is written to a temporary file, fsynced, renamed over the
old one, and the directory fsynced. At start-up the next number is above both the file's
mark and the database's highest number, so every restart skips at most one block. Gaps are
allowed; reuse is not.

The reservation file is not moved when a damaged database is quarantined, so a fresh
database continues above every number the old one issued.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from gateway.core.errors import SequenceError, StoreFullError

_MAGIC = "lineside-sequence-reservation v1"
DEFAULT_BLOCK = 100_000
"""Numbers reserved per fsync of the reservation file: one fsync per this many records."""


class SequenceAllocator:
    """Hands out increasing sequence numbers from durably reserved blocks."""

    def __init__(self, path: Path, *, block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be positive")
        self.path = path
        self.block = block
        self._next = 0
        self._limit = 0  # numbers below this are covered by the file on disk
        self.recovered_from_damaged_file = False

    @property
    def next_value(self) -> int:
        """The number the next :meth:`take` returns first."""
        return self._next

    def start(self, database_max: int) -> None:
        """Continue above the reservation file and the database; reserve a fresh block."""
        reserved = self._read_mark()
        self._next = max(reserved, database_max + 1, 1)
        self._limit = self._next
        self._write_mark(self._next + self.block)

    def needs_reservation(self, count: int) -> bool:
        """Whether :meth:`take` of ``count`` numbers would have to write the file first."""
        return self._next + count > self._limit

    def reserve(self, count: int) -> None:
        """Durably reserve enough numbers for ``count`` more; blocking file I/O."""
        if self.needs_reservation(count):
            self._write_mark(self._next + count + self.block)

    def take(self, count: int) -> int:
        """Take ``count`` consecutive numbers and return the first; call :meth:`reserve` first."""
        if self.needs_reservation(count):
            self.reserve(count)
        first = self._next
        self._next += count
        return first

    def _read_mark(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError):
            text = ""
        magic, _, number = text.strip().partition(" @ ")
        if magic == _MAGIC and number.isdigit():
            return int(number)
        # A damaged reservation file (it is written atomically, so this means outside
        # interference): fall back to the wall clock in microseconds, which is above any
        # number issued unless the gateway once issued more than a million a second for
        # its whole life, or the clock is far behind. Recorded so the operator is told.
        self.recovered_from_damaged_file = True
        return time.time_ns() // 1000

    def _write_mark(self, mark: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="ascii") as handle:
                handle.write(f"{_MAGIC} @ {mark}\n")
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StoreFullError(
                    f"no space to reserve sequence numbers in {self.path}"
                ) from exc
            raise SequenceError(f"cannot reserve sequence numbers in {self.path}: {exc}") from exc
        self._limit = mark
