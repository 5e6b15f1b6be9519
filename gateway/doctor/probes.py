"""Network probes for the doctor's checks, and their errors in words."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path


async def tcp_probe(host: str, port: int, timeout_s: float) -> str:
    """Open and close one TCP connection; the error as text, or ``""`` when it worked."""
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror as exc:
        # Its errno is a resolver code (EAI_NONAME is -2), which os.strerror cannot name.
        return f"cannot resolve host {host!r}: {exc.strerror or exc}"
    except OSError as exc:
        return describe_error(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ""


def serial_port_usable(port: Path) -> bool:
    """Whether a serial device exists and this user may open it."""
    return port.exists() and os.access(port, os.R_OK | os.W_OK)


def describe_error(exc: BaseException) -> str:
    """An OS or network error as a short reason an engineer can act on."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # asyncio's "Connect call failed (...)" says less
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


__all__ = ["describe_error", "serial_port_usable", "tcp_probe"]
