"""The client side of the control socket: one request, one answer (the CLI, the doctor)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

from gateway.api import MAX_ANSWER_BYTES, MAX_REQUEST_BYTES
from gateway.core.errors import ControlError

COMMAND_TIMEOUT_S = 5.0


class ControlClientError(ControlError, ValueError):
    """The request could not be sent or its answer not understood (message for people)."""


async def send_command(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one command to a running gateway and return its answer (5 s at most).

    Raises :class:`ControlClientError` for a request too large to send or an answer that is
    not a JSON object, ``OSError`` when the gateway cannot be reached, ``TimeoutError``.
    The answer is read even when the gateway closes the connection early (a busy refusal):
    it is in the socket before the close.
    """
    data = json.dumps(request).encode() + b"\n"
    if len(data) > MAX_REQUEST_BYTES:
        raise ControlClientError(
            f"the request is {len(data)} bytes; the gateway takes at most {MAX_REQUEST_BYTES} "
            "(shorten the comment or the reason)"
        )
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(COMMAND_TIMEOUT_S):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, str(path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await loop.sock_sendall(sock, data)
            answer = bytearray()
            # Answers (a status snapshot) can be far larger than requests.
            while b"\n" not in answer and len(answer) <= MAX_ANSWER_BYTES:
                try:
                    chunk = await loop.sock_recv(sock, 65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
    line = bytes(answer).split(b"\n", 1)[0]
    if not line:
        raise ConnectionResetError("the gateway closed the connection without an answer")
    try:
        parsed = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ControlClientError("the gateway's answer is not JSON") from None
    if not isinstance(parsed, dict):
        raise ControlClientError("the gateway answered with something other than a JSON object")
    return parsed
