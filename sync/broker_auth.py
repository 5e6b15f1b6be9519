"""The shipped broker authorisation (``config/mosquitto/``) and mosquitto password files.

``config/mosquitto/mosquitto.conf`` and ``config/mosquitto/acl`` are what a site installs;
:func:`render_config` turns the shipped file into one for another listener, password file,
ACL file and persistence folder (``make demo`` and the tests run the shipped rules that way,
changing nothing else), and :func:`write_password_file` writes a mosquitto password file in
mosquitto 2's own format (PBKDF2-SHA512, ``$7$``), as ``mosquitto_passwd`` would, without
needing that tool.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from gateway.core.shipped import shipped_path

SHIPPED = shipped_path("config", "mosquitto")
"""The shipped broker configuration (``config/mosquitto/``, package data in the wheel)."""
SHIPPED_CONF = SHIPPED / "mosquitto.conf"
SHIPPED_ACL = SHIPPED / "acl"

INGEST_USER = "lineside-ingest"
"""The central ingest's login in the shipped ACL."""
ANDON_BOARD_USER = "andon-board"
"""The andon boards' read-only login in the shipped ACL."""

PBKDF2_ITERATIONS = 1000
"""mosquitto_passwd uses 101; the passwords here are random, so either is plenty."""


def password_hash(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A mosquitto 2 password hash: ``$7$<iterations>$<salt>$<PBKDF2-SHA512>`` (base64)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_password_file(path: Path, users: Mapping[str, str]) -> None:
    """A mosquitto ``password_file`` for ``user → password``, mode 0600."""
    for user in users:
        if not user or ":" in user or "\n" in user:
            raise ValueError(f"not a broker user name: {user!r}")
    text = "".join(f"{user}:{password_hash(password)}\n" for user, password in users.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def render_config(
    *,
    port: int,
    password_file: Path,
    acl_file: Path,
    persistence_dir: Path | None,
    run_as: str | None = None,
    extra: str = "",
    shipped: Path = SHIPPED_CONF,
) -> str:
    """The shipped mosquitto.conf on ``127.0.0.1:port`` with these files; every other line
    (anonymous refused, the client id bound to the login, the packet size limit, logging)
    exactly as shipped, in its place (listener options follow their ``listener`` line)."""
    values = {
        "listener": f"{port} 127.0.0.1",
        "password_file": str(password_file),
        "acl_file": str(acl_file),
        "persistence": "true" if persistence_dir is not None else "false",
        "persistence_location": f"{persistence_dir}/" if persistence_dir is not None else None,
        "user": run_as,
    }
    lines: list[str] = []
    done: set[str] = set()
    for line in shipped.read_text(encoding="utf-8").splitlines():
        key = line.split(" ", 1)[0]
        if key in values:
            if values[key] is not None and key not in done:
                lines.append(f"{key} {values[key]}")
            done.add(key)
        else:
            lines.append(line)
    if "listener" not in done:
        raise ValueError(f"{shipped} has no listener line")
    lines += [f"{key} {value}" for key, value in values.items() if key not in done and value]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def shipped_setting(name: str) -> str | None:
    """The value of a setting in the shipped mosquitto.conf (the first one), if present."""
    for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return value.strip()
    return None
