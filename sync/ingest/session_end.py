"""Ending an ingest instance's broker session (``lineside ingest --end-session``).

Why it is needed: an instance of a share group keeps a persistent session (expiry at least an
hour, 7 days by default) so that a restart loses nothing. While it is away, a broker that hands
shared messages round-robin over the group's *sessions* (mosquitto 2 does, connected or not:
docs/broker.md, "Several ingest instances") keeps queuing one share of the batches for it.
Nothing is lost — the gateways still hold those records and resend them after their ack
timeout, and a resend may land on a running instance — but they wait. An instance removed
for good must therefore say goodbye: connect once with its client id, ``clean_start`` and a
session expiry of 0 (MQTT 5 §3.1.2.4 and §3.1.2.11.2: the broker discards the old session and
the new one ends at disconnect), then disconnect. The batches its session held go with it; their
gateways resend them to the instances that remain.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.core.errors import SyncError
from sync.ingest.settings import IngestSettings
from sync.paho_loop import stop_network_loop
from sync.paho_poll import install as watch_any_descriptor
from sync.paho_tls import closing_on_failed_handshake


class SessionEndFailed(SyncError):
    """The broker could not be reached, or refused the connection that ends the session."""


def apply_credentials(client: mqtt.Client, settings: IngestSettings) -> None:
    """TLS and the broker login of the ingest's settings, on a paho client."""
    if settings.tls_ca is not None or settings.tls_cert is not None:
        # What paho's tls_set builds for these arguments (the peer's certificate and name
        # verified), made here so that a refused handshake closes its socket at once
        # (sync/paho_tls.py).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if settings.tls_cert is not None:
            context.load_cert_chain(
                str(settings.tls_cert), str(settings.tls_key) if settings.tls_key else None
            )
        if settings.tls_ca is not None:
            context.load_verify_locations(str(settings.tls_ca))
        else:
            context.load_default_certs()
        client.tls_set_context(closing_on_failed_handshake(context))
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)


def end_session(settings: IngestSettings, *, timeout_s: float = 15.0) -> None:
    """Discard the broker session of ``settings.client_id`` (blocking).

    :raises SessionEndFailed: no CONNACK within ``timeout_s``, or a refusal (bad login, ACL).
    """
    watch_any_descriptor()  # paho's select() cannot watch descriptors above 1023
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    apply_credentials(client, settings)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(
        client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        outcome.append("" if not reason.is_failure else str(reason))
        answered.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    try:
        client.connect(
            settings.mqtt_host,
            settings.mqtt_port,
            keepalive=settings.keepalive_s,
            clean_start=True,
            properties=props,
        )
    except (OSError, ssl.SSLError) as exc:
        raise SessionEndFailed(
            f"broker {settings.mqtt_host}:{settings.mqtt_port} unreachable: {exc}"
        ) from exc
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise SessionEndFailed(f"no answer from the broker within {timeout_s:.0f} s")
        if outcome[0]:
            raise SessionEndFailed(f"the broker refused the connection: {outcome[0]}")
    finally:
        client.disconnect()
        stop_network_loop(client)
