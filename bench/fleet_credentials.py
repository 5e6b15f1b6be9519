"""Credentials for a fleet of simulated gateways: a broker user and an ack key per gateway
(MQTT, the shipped ACL), or a bearer token per gateway (HTTPS), and the files the broker and
the ingest read them from."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from bench.fleet_gateways import FleetSpec
from sync.ingest.ack_keys import new_ack_key
from sync.ingest.auth import new_token


def fleet_credentials(spec: FleetSpec) -> FleetSpec:
    """``spec`` with a new broker password and ack key for every gateway (write them for the
    broker with :func:`sync.broker_auth.write_password_file` and for the ingest with
    :func:`write_ack_keys`)."""
    gateways = [gw for gw, _ in spec.identities()]
    return replace(
        spec,
        mqtt_passwords={gw: secrets.token_urlsafe(18) for gw in gateways},
        ack_keys={gw: new_ack_key().encode() for gw in gateways},
    )


def write_ack_keys(path: Path, keys: Mapping[str, bytes]) -> Path:
    """The ingest's ``--ack-keys`` file for ``keys`` (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{gw}:{key.decode()}\n" for gw, key in keys.items())
    return path


def fleet_tokens(spec: FleetSpec) -> dict[str, str]:
    """A new bearer token for every gateway of ``spec`` (the ingest's tokens file holds their
    hashes: :func:`sync.ingest.auth.write_tokens` with :func:`sync.ingest.auth.hash_token`)."""
    return {gw: new_token(gw) for gw, _ in spec.identities()}
