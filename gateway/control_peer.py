"""Who gives an operator command: the process at the other end of the control socket.

The kernel's credentials of the connecting process (``SO_PEERCRED``) name the OS user; every
record an operator command writes carries that user beside the name the operator typed (see
gateway/control.py, *Local access control*).
"""

from __future__ import annotations

import dataclasses
import functools
import pwd
import socket
import struct
from contextvars import ContextVar
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a control connection, as the kernel reports it."""

    uid: int | None
    gid: int | None
    pid: int | None
    user: str
    """The OS user name; ``uid N`` for a uid without a name, ``unknown`` without credentials."""


UNKNOWN_PEER = Peer(uid=None, gid=None, pid=None, user="unknown")

CONNECTION_PEER: ContextVar[Peer] = ContextVar("control_peer", default=UNKNOWN_PEER)
"""The peer of the connection whose command is being handled (each connection is a task)."""


def current_peer() -> Peer:
    """Who sent the command being handled (``UNKNOWN_PEER`` outside a control connection)."""
    return CONNECTION_PEER.get()


@functools.lru_cache(maxsize=256)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def peer_of(sock: socket.socket | None) -> Peer:
    """The connecting process's credentials (``SO_PEERCRED``, Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return UNKNOWN_PEER
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return UNKNOWN_PEER
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(uid=uid, gid=gid, pid=pid, user=_user_name(uid))


@dataclasses.dataclass(frozen=True, slots=True)
class Operator:
    """Who gives a command: the name typed and the OS user the kernel vouches for."""

    name: str
    """As typed (may be empty where a name is optional)."""
    peer: Peer

    @property
    def label(self) -> str:
        """``Ann (os:alice)``, for log lines and messages."""
        return f"{self.name} (os:{self.peer.user})" if self.name else f"os:{self.peer.user}"

    def detail(self) -> dict[str, Any]:
        """The attribution every record of the command carries."""
        out: dict[str, Any] = {"os_user": self.peer.user, "os_uid": self.peer.uid}
        if self.name:
            out["operator"] = self.name
        return out
