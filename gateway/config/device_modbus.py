"""``[[devices]]`` of ``kind = "modbus_tcp"`` and ``"modbus_rtu"``."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway.config.base import Identifier
from gateway.config.device_base import DeviceBase
from gateway.config.tag_limits import TagLimits, check_bit_field, check_mask
from gateway.config.urls import check_url_credentials
from gateway.core.codecs.registers import (
    DataType,
    Table,
    WordOrder,
    parse_modicon_address,
    register_count,
)
from gateway.core.codecs.units import UNIT_ALIASES, UnitName

INTEGER_TYPES = {DataType.INT16: 16, DataType.UINT16: 16, DataType.INT32: 32, DataType.UINT32: 32}
"""Modbus data types a ``bit`` or ``mask`` may be taken from, and their width in bits."""


class ModbusTag(TagLimits):
    """One Modbus value: where it is, how it is encoded, how it scales."""

    name: Identifier
    """What the value means for the device role (checkweigher signal or probe id)."""
    table: Table = Field(default=Table.HOLDING, strict=False)
    """``holding``, ``input``, ``coil`` or ``discrete_input``."""
    address: int = Field(ge=0, le=65535)
    """0-based protocol address. Modicon 40001 is holding address 0; see ``modicon``."""
    type: DataType = Field(default=DataType.UINT16, strict=False)
    """int16, uint16, int32, uint32, float32, float64, bool or string."""
    order: WordOrder = Field(default=WordOrder.ABCD, strict=False)
    """Byte and word order for multi-register values: ABCD, CDAB, BADC, DCBA."""
    length: int = Field(default=0, ge=0, le=250)
    """Characters, for ``string`` tags."""
    scale: float = 1.0
    """Value = raw × scale + offset, in ``unit`` (docs/devices.md, "Units and scale")."""
    offset: float = 0.0
    """Added after scaling."""
    unit: UnitName | None = None
    """Unit of raw × scale + offset when it is not the rule's (grams for weights, degC for
    temperatures), e.g. ``kg``, ``lb`` or ``degF``: the value is converted. Modbus carries
    no unit, so nothing on the device is checked against it."""
    bit: int | None = Field(default=None, ge=0, le=31)
    """A flag in an integer register (a status word): bit 0 is the least significant bit of
    the value as decoded; the tag reads true or false. Several tags may name bits of the same
    register, which is still read once. Not with mask, scale, offset, unit, min, max or
    fault_codes."""
    mask: int | None = Field(default=None, ge=1, le=0xFFFF_FFFF)
    """A group of adjacent bits of an integer register (e.g. ``0x0F00``), shifted down: the
    tag reads that number (a one-bit mask reads 0 or 1; use ``bit`` for a flag). Not with
    bit, scale, offset, unit or fault_codes."""

    @model_validator(mode="before")
    @classmethod
    def _modicon_reference(cls, data: object) -> object:
        # Accept ``modicon = "40001"`` as a friendlier spelling of table + address.
        if isinstance(data, dict) and "modicon" in data:
            if "address" in data or "table" in data:
                raise ValueError("give either modicon or table + address, not both")
            data = dict(data)
            table, address = parse_modicon_address(str(data.pop("modicon")))
            data["table"], data["address"] = table, address
        return data

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_alias(cls, value: object) -> object:
        return UNIT_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("bit", "mask")
    @classmethod
    def _bit_field(cls, value: int | None, info: ValidationInfo) -> int | None:
        key, data = info.field_name, info.data
        if value is None or key is None:
            return value
        table, data_type = data.get("table"), data.get("type")
        if isinstance(table, Table) and table.is_bit_table:
            raise ValueError(f"{key} picks bits of a register; a {table} is one bit already")
        if data_type not in INTEGER_TYPES:
            raise ValueError(
                f"{key} needs an integer type ({', '.join(map(str, INTEGER_TYPES))}), "
                f"not {data_type}"
            )
        if data.get("scale", 1.0) != 1.0 or data.get("offset", 0.0) != 0.0 or data.get("unit"):
            raise ValueError(f"a bit field is not scaled: remove scale, offset and unit, or {key}")
        check_bit_field(key, data)
        width = INTEGER_TYPES[data_type]
        if key == "bit" and value >= width:
            raise ValueError(f"bit {value} is beyond the {width} bits of a {data_type}")
        if key == "mask":
            check_mask(value, width, f"a {data_type}")
        return value

    @model_validator(mode="after")
    def _type_fits_table(self) -> Self:
        bit_table = self.table in (Table.COIL, Table.DISCRETE_INPUT)
        if bit_table and self.type != DataType.BOOL:
            raise ValueError(f"{self.table} holds bits: type must be bool")
        if self.fault_codes and self.type in (DataType.BOOL, DataType.STRING):
            raise ValueError(f"fault_codes are numbers; a {self.type} tag has none")
        if self.unit is not None and self.type in (DataType.BOOL, DataType.STRING):
            raise ValueError(f"unit converts numbers; a {self.type} tag has none")
        if self.type == DataType.STRING and self.length == 0:
            raise ValueError("string tags need length (characters)")
        if not bit_table and self.address + self.registers > 65536:
            raise ValueError("tag runs past register 65535")
        return self

    @property
    def registers(self) -> int:
        """Registers (or bits) this tag occupies."""
        if self.table in (Table.COIL, Table.DISCRETE_INPUT):
            return 1
        return register_count(self.type, length=self.length)


class ModbusDeviceBase(DeviceBase):
    """Keys shared by Modbus TCP and RTU devices."""

    unit_id: int = Field(default=1, ge=0, le=247)
    """Modbus unit (slave) id; 0 is broadcast and only valid for writes, so avoid it."""
    poll_interval_ms: int = Field(default=1000, ge=10, le=3_600_000)
    """How often all tags are read."""
    recovery_time_s: float = Field(default=10.0, ge=0, le=3600)
    """A device that stops answering is skipped this long, so it cannot stall the others."""
    max_gap: int = Field(default=0, ge=0, le=100)
    """Unused registers allowed inside one read request when merging neighbouring tags."""
    tags: tuple[ModbusTag, ...] = Field(min_length=1)
    """The values to read."""

    @model_validator(mode="after")
    def _units_fit_the_tags(self) -> Self:
        self._units_fit_the_role((t.name, t.unit) for t in self.tags)
        return self

    def tag_names(self) -> list[str]:
        """All tag names."""
        return [t.name for t in self.tags]

    def bit_fields(self) -> dict[str, str]:
        """Tags that read part of a value: name -> ``bit`` or ``mask``."""
        return {
            t.name: "bit" if t.bit is not None else "mask"
            for t in self.tags
            if t.bit is not None or t.mask is not None
        }


class ModbusTcpDevice(ModbusDeviceBase):
    """A Modbus TCP device (or a TCP-to-RTU gateway in front of serial devices)."""

    kind: Literal["modbus_tcp"]
    host: str
    """Host name or address."""
    port: int = Field(default=502, ge=1, le=65535)
    """TCP port."""


class ModbusRtuDevice(ModbusDeviceBase):
    """A Modbus RTU device on a serial line."""

    kind: Literal["modbus_rtu"]
    serial_port: str
    """Serial device (e.g. ``/dev/serial/by-id/...`` or ``/dev/ttyUSB0``), or a pyserial URL
    such as ``socket://10.20.1.50:4001`` for an Ethernet-to-serial converter."""
    baudrate: int = Field(default=19200, ge=1200, le=921_600)
    """Line speed."""
    parity: Literal["N", "E", "O"] = "E"
    """Parity; the Modbus serial spec's default is even."""
    stopbits: Literal[1, 2] = 1
    """Stop bits."""
    bytesize: Literal[7, 8] = 8
    """Data bits."""

    @field_validator("serial_port")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        if "://" not in value:
            return value
        return check_url_credentials(value, "a serial port URL takes no credentials")
