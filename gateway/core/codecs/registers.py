"""Pure Modbus register codec: data types, word orders and Modicon addresses.

Read planning (which spans one request covers) is :mod:`gateway.core.codecs.read_plan`.

No sockets, no asyncio, no pymodbus, no clock reads: every function here maps values to values,
so the same code serves the live adapter, the simulators and the tests.

References: "MODBUS Application Protocol Specification V1.1b3" (Modbus Organization, 2012),
cited below as "MBAP v1.1b3 §x.y".

Modicon addresses (for engineers configuring tags)
--------------------------------------------------
Device manuals usually give *Modicon references*: a leading digit naming the table followed by
a **1-based** register number. On the wire (the PDU) the address is **0-based** (MBAP v1.1b3
§4.4, "MODBUS Addressing model": item number X is addressed in the PDU as X-1). Off-by-one
here is the most common integration bug, so :func:`parse_modicon_address` does the translation
in one place::

    first digit  table               function code        5-digit form   6-digit form
    0            coils               FC01 read / FC05/15  00001-09999    000001-065536
    1            discrete inputs     FC02 read            10001-19999    100001-165536
    3            input registers     FC04 read            30001-39999    300001-365536
    4            holding registers   FC03 read / FC06/16  40001-49999    400001-465536

Examples: ``"40001"`` -> ``(Table.HOLDING, 0)``; ``"400108"`` -> ``(Table.HOLDING, 107)``;
``"30010"`` -> ``(Table.INPUT, 9)``; ``"465536"`` -> ``(Table.HOLDING, 65535)``.
The 5-digit form only reaches the first 9999 items of a table; use the 6-digit form beyond that.
A manual that lists bare numbers such as "register 107" without a leading table digit is
ambiguous (it may already be 0-based): check it against a known value on the device.

Word and byte order
-------------------
Inside one 16-bit register Modbus is big-endian, high byte first (MBAP v1.1b3 §4.2, "Data
Encoding"). How a 32- or 64-bit value is spread across several registers is *not* specified
and varies by vendor; see :class:`WordOrder`. Always commission a tag against a golden value
(e.g. 123456.0 as float32 is 0x47F12000) rather than trusting a vendor's label for the order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from gateway.core.codecs.precision import scaled
from gateway.core.errors import LinesideError

__all__ = [
    "MAX_READ_COUNT",
    "DataType",
    "RegisterDecodeError",
    "Table",
    "WordOrder",
    "decode_registers",
    "encode_registers",
    "is_finite_number",
    "parse_modicon_address",
    "register_count",
    "scale",
]


class Table(StrEnum):
    """The four Modbus data tables (MBAP v1.1b3 §4.3, "MODBUS Data model")."""

    HOLDING = "holding"
    """Holding registers: 16-bit, read/write (FC03 read, FC06/FC16 write)."""
    INPUT = "input"
    """Input registers: 16-bit, read-only (FC04)."""
    COIL = "coil"
    """Coils: single bits, read/write (FC01 read, FC05/FC15 write)."""
    DISCRETE_INPUT = "discrete_input"
    """Discrete inputs: single bits, read-only (FC02)."""

    @property
    def is_bit_table(self) -> bool:
        """True for the single-bit tables (coils and discrete inputs)."""
        return self in (Table.COIL, Table.DISCRETE_INPUT)


class DataType(StrEnum):
    """How the content of one or more registers is interpreted.

    ``INT16``/``UINT16``/``BOOL`` use one register, ``INT32``/``UINT32``/``FLOAT32`` two,
    ``FLOAT64`` four, ``STRING`` one register per two ASCII characters. Signed types are two's
    complement; floats are IEEE 754 binary32/binary64.
    """

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"
    STRING = "string"


class WordOrder(StrEnum):
    """Byte order of a multi-register value, named by where the big-endian bytes land.

    Write the value's natural big-endian bytes as ``A B C D`` (32-bit) or ``A B C D E F G H``
    (64-bit); each name lists the bytes in the order they appear on the wire, register by
    register, high byte of each register first. Example float32 123456.0 = 0x47F12000:

    ========  =======================  ====================  ==================================
    order     32-bit registers         64-bit registers      meaning
    ========  =======================  ====================  ==================================
    ``ABCD``  ``[AB, CD]``             ``[AB, CD, EF, GH]``  big-endian; the Modbus default
              ``[0x47F1, 0x2000]``
    ``CDAB``  ``[CD, AB]``             ``[GH, EF, CD, AB]``  word swap: registers reversed,
              ``[0x2000, 0x47F1]``                           bytes within a register unchanged
    ``BADC``  ``[BA, DC]``             ``[BA, DC, FE, HG]``  byte swap within each register,
              ``[0xF147, 0x0020]``                           registers in natural order
    ``DCBA``  ``[DC, BA]``             ``[HG, FE, DC, BA]``  fully little-endian (both swaps)
              ``[0x0020, 0xF147]``
    ========  =======================  ====================  ==================================

    64-bit convention: the two swaps generalise per register, so ``CDAB`` reverses *all four*
    registers (``GHEFCDAB``, "low word first"), not just the two 32-bit halves. This matches
    pymodbus (``word_order="little"`` reverses the whole register list) and Telegraf's
    ``byte_order`` for 64-bit fields. A device that swaps only the 32-bit halves
    (``EFGHABCD``) is not expressible with these four names; read it as two 32-bit tags or
    decode the raw registers yourself.

    16-bit types: only the byte swap matters (``ABCD``/``CDAB`` read ``AB``; ``BADC``/``DCBA``
    read ``BA``). Strings: likewise only the byte swap applies (``BADC``/``DCBA`` put the first
    character in the low byte); registers are always in text order.
    """

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def swaps_words(self) -> bool:
        """True when the register sequence is reversed (``CDAB``, ``DCBA``)."""
        return self in (WordOrder.CDAB, WordOrder.DCBA)

    @property
    def swaps_bytes(self) -> bool:
        """True when the two bytes inside each register are swapped (``BADC``, ``DCBA``)."""
        return self in (WordOrder.BADC, WordOrder.DCBA)


class RegisterDecodeError(LinesideError, ValueError):
    """Registers cannot be decoded as the requested type (wrong count, bad word, bad text)."""


# A register holds 16 bits (MBAP v1.1b3 §4.3, "Holding Registers ... 16-bit word").
_WORD_MAX: Final = 0xFFFF

# struct formats (big-endian) and register counts of the fixed-width numeric types.
_STRUCT: Final[dict[DataType, tuple[str, int]]] = {
    DataType.INT16: (">h", 1),
    DataType.UINT16: (">H", 1),
    DataType.INT32: (">i", 2),
    DataType.UINT32: (">I", 2),
    DataType.FLOAT32: (">f", 2),
    DataType.FLOAT64: (">d", 4),
}

# Integer ranges, checked before packing so the error names the type rather than struct.
_INT_RANGE: Final[dict[DataType, tuple[int, int]]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}

# Highest 0-based PDU address: the address field is 2 bytes, 0x0000 to 0xFFFF
# (MBAP v1.1b3 §6.1-§6.4, "Starting Address 2 Bytes 0x0000 to 0xFFFF").
ADDRESS_SPACE: Final = 0x10000

# Largest quantity one read request may ask for (MBAP v1.1b3):
#   §6.1 FC01 Read Coils and §6.2 FC02 Read Discrete Inputs: 1 to 2000 (0x7D0);
#   §6.3 FC03 Read Holding Registers and §6.4 FC04 Read Input Registers: 1 to 125 (0x7D).
MAX_READ_COUNT: Final[dict[Table, int]] = {
    Table.COIL: 2000,
    Table.DISCRETE_INPUT: 2000,
    Table.HOLDING: 125,
    Table.INPUT: 125,
}


def register_count(data_type: DataType, *, length: int = 0) -> int:
    """Number of registers (or bits, for BOOL) that one value of ``data_type`` occupies.

    ``length`` is the string length in characters and is required (> 0) for
    :attr:`DataType.STRING`, which packs two characters per register, rounding up. It is
    ignored for the other types.

    Raises:
        ValueError: STRING with ``length`` < 1.
    """
    if data_type is DataType.STRING:
        if length < 1:
            raise ValueError(f"string tags need a length >= 1 character, got {length}")
        return (length + 1) // 2
    if data_type is DataType.BOOL:
        return 1
    return _STRUCT[data_type][1]


def _bytes_to_words(raw: bytes, order: WordOrder, *, reverse_words: bool) -> list[int]:
    """Split big-endian ``raw`` into registers, then apply ``order``'s swaps."""
    words = [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]
    if order.swaps_bytes:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if reverse_words and order.swaps_words:
        words.reverse()
    return words


def _words_to_bytes(words: Sequence[int], order: WordOrder, *, reverse_words: bool) -> bytes:
    """Inverse of :func:`_bytes_to_words`: registers as read -> natural big-endian bytes."""
    seq = list(words)
    if reverse_words and order.swaps_words:
        seq.reverse()
    if order.swaps_bytes:
        seq = [((w & 0xFF) << 8) | (w >> 8) for w in seq]
    return b"".join(w.to_bytes(2, "big") for w in seq)


def encode_registers(
    value: int | float | bool | str,
    data_type: DataType,
    order: WordOrder = WordOrder.ABCD,
    *,
    length: int = 0,
) -> list[int]:
    """Encode ``value`` as the registers a device would hold (inverse of decode_registers).

    Used by simulators and tests. Integers must fit the type's range; floats are rounded to
    the nearest float32 for FLOAT32 (NaN and infinities are encoded as such, values beyond
    the float32 range are an error). BOOL gives ``[1]`` or ``[0]``. STRING must be ASCII; it
    is NUL-padded to ``length`` characters (default: its own length), rounded up to whole
    registers.

    Raises:
        ValueError: value of the wrong kind, out of range, non-ASCII, or longer than ``length``.
    """
    if data_type is DataType.BOOL:
        if not isinstance(value, int):  # bool is a subclass of int
            raise ValueError(f"bool tag needs a bool, got {value!r}")
        return [1 if value else 0]

    if data_type is DataType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"string tag needs a str, got {value!r}")
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(f"string tag value {value!r} is not ASCII") from exc
        chars = length or len(raw)
        if len(raw) > chars:
            raise ValueError(f"string {value!r} is longer than the tag length {chars}")
        raw = raw.ljust(register_count(DataType.STRING, length=max(chars, 1)) * 2, b"\x00")
        return _bytes_to_words(raw, order, reverse_words=False)

    fmt, _ = _STRUCT[data_type]
    if data_type in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{data_type} tag needs an int, got {value!r}")
        low, high = _INT_RANGE[data_type]
        if not low <= value <= high:
            raise ValueError(f"{value} is outside the {data_type} range {low}..{high}")
        raw = struct.pack(fmt, value)
    else:
        if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
            raise ValueError(f"{data_type} tag needs a number, got {value!r}")
        try:
            raw = struct.pack(fmt, value)
        except OverflowError as exc:
            raise ValueError(f"{value!r} is outside the {data_type} range") from exc
    return _bytes_to_words(raw, order, reverse_words=True)


def decode_registers(
    words: Sequence[int],
    data_type: DataType,
    order: WordOrder = WordOrder.ABCD,
) -> int | float | bool | str:
    """Decode registers exactly as read from the device into a Python value.

    * numeric types: ``words`` must hold exactly :func:`register_count` registers;
    * BOOL: exactly one register (or one coil/discrete-input bit); nonzero -> ``True``;
    * STRING: any number >= 1 of registers, two ASCII characters each; trailing NULs and
      spaces are stripped;
    * FLOAT32/FLOAT64 may return NaN or +-inf unchanged: range checks are the caller's job
      (see :func:`is_finite_number`).

    Raises:
        RegisterDecodeError: wrong number of registers, a word that is not an int in
            0..65535, or non-ASCII bytes in a STRING.
    """
    for i, w in enumerate(words):
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= _WORD_MAX:
            raise RegisterDecodeError(
                f"register {i} is {w!r}; a Modbus register is an int in 0..65535 (0xFFFF)"
            )

    if data_type is DataType.STRING:
        if not words:
            raise RegisterDecodeError("string needs at least 1 register, got 0")
        raw = _words_to_bytes(words, order, reverse_words=False)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise RegisterDecodeError(
                f"string registers {[f'0x{w:04X}' for w in words]} contain non-ASCII bytes"
            ) from exc
        return text.rstrip("\x00 ")

    expected = register_count(data_type)
    if len(words) != expected:
        raise RegisterDecodeError(
            f"{data_type} needs exactly {expected} register(s), got {len(words)}"
        )
    if data_type is DataType.BOOL:
        return words[0] != 0

    fmt, _ = _STRUCT[data_type]
    value: int | float = struct.unpack(fmt, _words_to_bytes(words, order, reverse_words=True))[0]
    return value


def is_finite_number(v: object) -> bool:
    """True for an ``int`` or a finite ``float``.

    False for NaN, +-inf, ``bool`` (a state, not a measurement), ``str`` and anything else.
    Use it on decoded FLOAT32/FLOAT64 values before storing or comparing them.
    """
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v)


def scale(raw: int | float, *, factor: float = 1.0, offset: float = 0.0) -> float:
    """Engineering value ``raw * factor + offset`` (multiply first, then add the offset).

    E.g. an int16 temperature with LSB = 0.1 degC: ``scale(-185, factor=0.1)`` -> -18.5.
    Computed in decimal (:func:`gateway.core.codecs.precision.scaled`), so the value has the
    scale's decimal places and no binary noise: ``scale(68, factor=0.1)`` is 6.8, not
    6.800000000000001.
    """
    return scaled(raw, factor, offset)


# Leading Modicon digit -> table (see module docstring).
_MODICON_TABLES: Final[dict[str, Table]] = {
    "0": Table.COIL,
    "1": Table.DISCRETE_INPUT,
    "3": Table.INPUT,
    "4": Table.HOLDING,
}
_DIGITS: Final = frozenset("0123456789")


def parse_modicon_address(text: str) -> tuple[Table, int]:
    """Translate a 5- or 6-digit Modicon reference into ``(table, 0-based PDU address)``.

    ``"40001"`` -> ``(Table.HOLDING, 0)``; ``"400108"`` -> ``(Table.HOLDING, 107)``;
    ``"00001"`` -> ``(Table.COIL, 0)``. Surrounding whitespace is ignored. The 5-digit form
    covers items 1-9999, the 6-digit form items 1-65536 (the 16-bit PDU address space,
    MBAP v1.1b3 §4.4). See the module docstring for the full table.

    Raises:
        ValueError: not 5 or 6 ASCII digits, unknown table digit (2, 5-9), item number 0,
            or a 6-digit item number above 65536.
    """
    s = text.strip()
    if len(s) not in (5, 6) or not set(s) <= _DIGITS:
        raise ValueError(
            f"Modicon address {text!r} must be 5 digits (e.g. 40001) or 6 digits (e.g. 400001)"
        )
    table = _MODICON_TABLES.get(s[0])
    if table is None:
        raise ValueError(
            f"Modicon address {text!r}: leading digit {s[0]!r} is not a table "
            "(0 coil, 1 discrete input, 3 input register, 4 holding register)"
        )
    item = int(s[1:])
    if not 1 <= item <= ADDRESS_SPACE:
        raise ValueError(
            f"Modicon address {text!r}: item number {item} is outside 1..{ADDRESS_SPACE} "
            "(Modicon numbers are 1-based)"
        )
    return table, item - 1
