"""The TLS context of a client from the CA, certificate and key files the config names.

A file that is missing, unreadable or not what it should be is a config problem at its key
path (``sync.mqtt.ca_file``), never a bare ``FileNotFoundError`` from the ssl module that
names no file. The config load already checks the files exist (gateway/config/paths.py); this
catches one removed since, or one that holds no certificate or key.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.core.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from gateway.config import LinesideConfig

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
    where: str,
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A verifying client context (the system's CAs without ``ca_file``); ``where`` is the
    config table (``sync.mqtt``)."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except OSError as exc:
        if ca_file is None:
            raise  # the system's own trust store: nothing in the config to name
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


def check_tls_files(config: LinesideConfig) -> None:
    """Load every CA, certificate and key of the uplinks and the ERP once, at start, so a
    bad one stops the start with its key path (exit 3) instead of failing a task later."""
    mqtt, https, erp = config.sync.mqtt, config.sync.https, config.erp
    if mqtt is not None and mqtt.ca_file is not None:
        client_tls_context("sync.mqtt", mqtt.ca_file, mqtt.cert_file, mqtt.key_file)
    if https is not None:
        client_tls_context("sync.https", https.ca_file, https.cert_file, https.key_file)
    erp_ca = getattr(erp, "ca_file", None)
    if erp_ca is not None:
        client_tls_context("erp", erp_ca)
