"""Bit fields of an integer value: one flag (``bit``) or a group of bits (``mask``). Pure.

Devices pack several facts into one status word: "bit 0 = accepted, bit 2 = catch-weight
mode, bit 5 = changeover", or "bits 8-11 = the mode". A tag picks its part of the word:

* ``bit = n``: bit ``n`` of the integer, counted from 0 at the least significant bit, as a
  ``bool``. ``bit = 0`` of 0x0005 is True, ``bit = 1`` is False.
* ``mask = m``: the bits of ``m`` (which must be one run of adjacent bits, e.g. 0x0F00),
  shifted down to start at bit 0, as an ``int``: ``mask = 0x0F00`` of 0x0A37 is 0xA = 10. The
  result is always the field's number, whatever its width: a one-bit mask gives 0 or 1 (use
  ``bit`` for a flag, which gives a bool). A mask with holes (0x0101) is refused: shifted down
  it would be a number no manual lists.

Bits are counted on the integer as decoded, after the word and byte order of a multi-register
value has been applied (so bit 0 is always the least significant bit of the number, whatever
the device's byte order). A signed value is its two's complement bit pattern: bit 15 of an
int16 is its sign bit.
"""

from __future__ import annotations

__all__ = ["extract_field", "is_contiguous", "mask_shift"]


def mask_shift(mask: int) -> int:
    """The index of the lowest set bit of ``mask`` (how far a masked field is shifted down).

    Raises:
        ValueError: ``mask`` is not a positive integer.
    """
    if mask <= 0:
        raise ValueError(f"a mask has at least one bit set, got {mask}")
    return (mask & -mask).bit_length() - 1


def is_contiguous(mask: int) -> bool:
    """True when the set bits of a positive ``mask`` are one run of adjacent bits."""
    if mask <= 0:
        return False
    field = mask >> mask_shift(mask)
    return field & (field + 1) == 0  # 0b0111 + 1 = 0b1000: no bit in common


def extract_field(raw: int, *, bit: int | None = None, mask: int | None = None) -> bool | int:
    """Bit ``bit`` of ``raw`` as a bool, or the bits of ``mask`` shifted down as an int.

    Exactly one of ``bit`` and ``mask`` is given. Negative ``raw`` values are taken as their
    two's complement pattern (Python's integers behave so with ``>>`` and ``&``).

    Raises:
        ValueError: both or neither of ``bit`` and ``mask``, a negative bit index, or a mask
            that is not one run of adjacent set bits.
    """
    if bit is not None:
        if mask is not None:
            raise ValueError("give exactly one of bit and mask")
        if bit < 0:
            raise ValueError(f"bit indexes count from 0, got {bit}")
        return bool((raw >> bit) & 1)
    if mask is None:
        raise ValueError("give exactly one of bit and mask")
    if not is_contiguous(mask):
        raise ValueError(f"mask 0x{mask:X} is not one run of adjacent bits")
    return (raw & mask) >> mask_shift(mask)
