"""``[[devices]]`` of ``kind = "scanner_tcp"``: a fixed label scanner."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from gateway.config.device_base import DeviceBase


class ScannerTcpDevice(DeviceBase):
    """A fixed label scanner acting as a TCP server that sends one read per line."""

    kind: Literal["scanner_tcp"]
    host: str
    """Scanner address."""
    port: int = Field(ge=1, le=65535)
    """Scanner TCP port."""
    terminator: Literal["CRLF", "CR", "LF"] = "CRLF"
    """What ends each read."""
    separators: tuple[str, ...] = ()
    """Characters the scanner sends in place of FNC1/GS (0x1D), e.g. ``["|"]``."""
    max_read_bytes: int = Field(default=512, ge=16, le=65536)
    """A read longer than this is rejected as garbage."""

    @model_validator(mode="after")
    def _is_a_scanner(self) -> Self:
        if self.role != "label_scanner":
            raise ValueError("a scanner_tcp device has role = 'label_scanner'")
        return self
