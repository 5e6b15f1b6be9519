"""The TLS context of a client from the CA, certificate and key files the config names.

A file that is missing, unreadable or not what it should be is a config problem at its key
path (``sync.mqtt.ca_file``), never a bare ``FileNotFoundError`` from the ssl module that
names no file. The config load already checks the files exist (gateway/config.py); this
catches one removed since, or one that holds no certificate or key.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.errors import ConfigError, ConfigProblem

RUNTIME_CONFIG = "(config)"
"""The ``path`` of a ConfigError found after loading; ``lineside run`` names its file."""


def _problem(key: str, path: Path, exc: OSError) -> ConfigError:
    if isinstance(exc, FileNotFoundError):
        reason = f"file not found: {path}"
    elif isinstance(exc, ssl.SSLError):
        reason = f"cannot load {path}: {exc.reason or exc}"
    else:
        reason = f"cannot read {path}: {exc.strerror or exc}"
    return ConfigError(RUNTIME_CONFIG, [ConfigProblem(key, str(path), reason)])


def client_tls_context(
    where: str, ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A verifying client context; ``where`` is the config table (``sync.mqtt``)."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except OSError as exc:
        raise _problem(f"{where}.ca_file", ca_file, exc) from exc
    if cert_file is not None and key_file is not None:
        try:
            # No passphrase prompt on a terminal (there is none under systemd): an
            # encrypted key fails here with a message instead.
            context.load_cert_chain(str(cert_file), str(key_file), password=lambda: b"")
        except OSError as exc:
            missing = next((p for p in (cert_file, key_file) if not p.is_file()), None)
            if missing is not None:
                key = "cert_file" if missing == cert_file else "key_file"
                raise _problem(f"{where}.{key}", missing, exc) from exc
            # The ssl module does not say which of the two it could not use: name both.
            reason = f"cannot load the certificate {cert_file} with the key {key_file}"
            raise ConfigError(
                RUNTIME_CONFIG,
                [ConfigProblem(f"{where}.cert_file", str(cert_file), f"{reason}: {exc}")],
            ) from exc
    return context
