"""Turning one block's reply into tag samples, each bad tag reported once per episode.

A tag whose block failed, or whose value cannot be decoded, is handed on as a BAD sample
once per failure episode (per tag and kind of failure), not every cycle: the interpreter
already holds the tag as bad, and repeating it would write one rejected input per tag and
cycle for as long as a device stays busy (see :mod:`adapters.modbus.client`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from adapters.base import Quality, TagSample
from adapters.modbus.blocks import Block, tag_sample
from gateway.core.codecs.read_plan import RegisterSpan, slice_block
from gateway.core.codecs.registers import decode_registers
from gateway.core.errors import DecodeError

# The adapter's log lines keep one logger name, whichever of its modules writes them.
log = logging.getLogger("adapters.modbus.client")


class BlockDecoder:
    """Decodes a device's blocks and remembers which tags were last reported bad, and why."""

    def __init__(self, device_id: str) -> None:
        self._device_id = device_id
        self._bad_reported: dict[str, str] = {}

    def bad(self, block: Block, category: str, status: str) -> list[TagSample]:
        """BAD samples for the block's tags not already reported bad for this reason."""
        samples = []
        for tag in block.tags:
            if self._bad_reported.get(tag.name) == category:
                continue
            self._bad_reported[tag.name] = category
            samples.append(TagSample(tag.name, None, Quality.BAD, status))
        return samples

    def decode(
        self, block: Block, words: Sequence[int] | Sequence[bool]
    ) -> tuple[list[TagSample], list[DecodeError]]:
        """Samples of the block's tags (bad ones once per episode), and every decode error."""
        samples = []
        errors: list[DecodeError] = []
        for tag in block.tags:
            span = RegisterSpan(tag.table, tag.address, tag.registers)
            try:
                part = slice_block(words, block.read, span)
                if tag.table.is_bit_table:
                    raw: int | float | bool | str = bool(part[0])
                else:
                    raw = decode_registers([int(w) for w in part], tag.type, tag.order)
            except ValueError as exc:  # RegisterDecodeError is a ValueError
                error = DecodeError(self._device_id, f"tag {tag.name}: {exc}")
                errors.append(error)
                if self._bad_reported.get(tag.name) != "decode":
                    log.warning("%s", error)
                    self._bad_reported[tag.name] = "decode"
                    samples.append(TagSample(tag.name, None, Quality.BAD, str(error)))
                continue
            self._bad_reported.pop(tag.name, None)
            samples.append(tag_sample(tag, raw))
        return samples, errors
