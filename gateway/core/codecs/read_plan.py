"""Modbus read planning: which register spans one request may cover, and the words of each
span within a block's answer (pure; the limits are MBAP v1.1b3 §6.1-§6.4, see
:data:`gateway.core.codecs.registers.MAX_READ_COUNT`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.codecs.registers import ADDRESS_SPACE, MAX_READ_COUNT, Table


@dataclass(frozen=True)
class RegisterSpan:
    """A run of ``count`` consecutive registers (or bits) in ``table`` from 0-based ``address``."""

    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        """One past the last address in the span."""
        return self.address + self.count


@dataclass(frozen=True)
class ReadBlock:
    """One read request covering several spans.

    ``members`` are indexes into the ``spans`` sequence given to :func:`plan_reads`, in
    ascending order.
    """

    table: Table
    address: int
    count: int
    members: tuple[int, ...]

    @property
    def end(self) -> int:
        """One past the last address read."""
        return self.address + self.count


def _check_span(i: int, span: RegisterSpan, limit: int) -> None:
    if span.count < 1:
        raise ValueError(f"span {i} {span}: count must be >= 1")
    if span.address < 0 or span.end > ADDRESS_SPACE:
        raise ValueError(f"span {i} {span}: must lie within addresses 0..{ADDRESS_SPACE - 1}")
    if span.count > limit:
        raise ValueError(
            f"span {i} {span}: {span.count} exceeds the {limit}-item limit for one "
            f"{span.table} read; split the tag"
        )


def plan_reads(
    spans: Sequence[RegisterSpan],
    *,
    max_gap: int = 0,
    max_count: int | None = None,
) -> list[ReadBlock]:
    """Group spans into as few read requests as possible.

    Spans of the same table are merged when the gap between them (unread addresses) is at
    most ``max_gap``; overlapping and duplicate spans always merge. A block never exceeds
    the protocol limit for its table (125 registers for FC03/FC04, 2000 bits for FC01/FC02;
    MBAP v1.1b3 §6.1-§6.4) nor ``max_count`` if given (some devices accept less). Blocks
    are returned ordered by table (declaration order of :class:`Table`) then address.

    Greedy by start address: each block starts at the lowest unassigned span and absorbs
    the following spans while the gap and size limits allow, which yields the minimum
    number of blocks for these constraints.

    Raises:
        ValueError: negative ``max_gap``, ``max_count`` < 1, or a span that is empty, outside
            the 16-bit address space, or larger than one request may read.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    if max_count is not None and max_count < 1:
        raise ValueError(f"max_count must be >= 1, got {max_count}")

    def limit_for(table: Table) -> int:
        proto = MAX_READ_COUNT[table]
        return proto if max_count is None else min(proto, max_count)

    for i, span in enumerate(spans):
        _check_span(i, span, limit_for(span.table))

    blocks: list[ReadBlock] = []
    for table in Table:
        order = sorted(
            (i for i, s in enumerate(spans) if s.table is table),
            key=lambda i: (spans[i].address, spans[i].count, i),
        )
        limit = limit_for(table)
        start = end = 0
        members: list[int] = []
        for i in order:
            s = spans[i]
            if members and s.address - end <= max_gap and max(end, s.end) - start <= limit:
                end = max(end, s.end)
                members.append(i)
                continue
            if members:
                blocks.append(ReadBlock(table, start, end - start, tuple(sorted(members))))
            start, end, members = s.address, s.end, [i]
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(sorted(members))))
    return blocks


def slice_block(block_words: Sequence[int], block: ReadBlock, span: RegisterSpan) -> list[int]:
    """Return ``span``'s registers (or bits) out of the result of reading ``block``.

    For register tables ``block_words`` must have exactly ``block.count`` items. For coil and
    discrete-input tables it may be longer, because FC01/FC02 responses pad the last byte
    with zero bits (MBAP v1.1b3 §6.1-§6.2) and clients often return the padded list.

    Raises:
        ValueError: different table, span not inside the block, or wrong result length.
    """
    if span.table is not block.table:
        raise ValueError(f"span table {span.table} does not match block table {block.table}")
    if span.address < block.address or span.end > block.end:
        raise ValueError(
            f"span {span.address}..{span.end - 1} is not inside block "
            f"{block.address}..{block.end - 1}"
        )
    n = len(block_words)
    if n < block.count or (n != block.count and not block.table.is_bit_table):
        raise ValueError(f"block read returned {n} items, expected {block.count}")
    offset = span.address - block.address
    return list(block_words[offset : offset + span.count])
