"""The uplinks a config asks for, built from its ``[sync.*]`` sections.

The MQTT uplink carries the andon board: :class:`AndonBoard` keeps the board's state in step
with the alert book, and the alert transitions themselves are published from the store once
they are stored (sync/alert_feed.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import LinesideConfig
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.records import AlertRecord
from gateway.rules_engine import RulesEngine
from gateway.store import Store
from gateway.tls_files import client_tls_context
from sync.alert_feed import AlertFeed
from sync.andon import AndonPublisher
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox

if TYPE_CHECKING:
    from sync.https_uplink import HttpsUplink


class AndonBoard:
    """Keeps the andon publisher's per-line state in step with the rules engine's alert book.

    Called with every alert transition (a rules engine listener). Only the board's state is
    updated here: the transition itself is published once it is stored.
    """

    def __init__(self, andon: AndonPublisher, engine: RulesEngine, lines: list[str]) -> None:
        self.andon = andon
        self.engine = engine
        for line in lines:
            self.show(line)

    def show(self, line: str) -> None:
        """Put one line's current colour and active alerts on the board."""
        self.andon.update(line, self.engine.andon(line), self.engine.summary(line))

    def __call__(self, record: AlertRecord) -> None:
        if record.line is not None:
            self.show(record.line)


def build_uplink(
    config: LinesideConfig, store: Store, board: AndonBoard, outbox: Outbox | None = None
) -> MqttUplink | None:
    """The MQTT uplink when ``[sync.mqtt]`` is configured, publishing ``board``, sending
    ``outbox`` (the gateway's one, which knows whether batches report the backlog)."""
    settings = config.sync.mqtt
    if settings is None:
        return None
    tls = None
    if settings.ca_file is not None:
        tls = client_tls_context(
            "sync.mqtt", settings.ca_file, settings.cert_file, settings.key_file
        )
    return MqttUplink(
        store,
        host=settings.host,
        port=settings.port,
        site=config.gateway.site,
        gateway=config.gateway.id,
        andon=board.andon,
        alerts=AlertFeed(store, site=config.gateway.site, gateway=config.gateway.id),
        backoff=Backoff(initial=settings.reconnect_min_s, maximum=settings.reconnect_max_s),
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        tls_context=tls,
        keepalive_s=settings.keepalive_s,
        max_records=settings.batch_records,
        max_bytes=settings.batch_bytes,
        window=settings.window,
        outbox=outbox,
        ack_key=settings.ack_key.get_secret_value().encode() if settings.ack_key else None,
    )


def build_andon(config: LinesideConfig, engine: RulesEngine, clock: Clock) -> AndonBoard | None:
    """The andon board when the MQTT uplink that publishes it is configured."""
    if config.sync.mqtt is None:
        return None
    andon = AndonPublisher(site=config.gateway.site, gateway=config.gateway.id, clock=clock)
    return AndonBoard(andon, engine, [line.id for line in config.lines])


def build_https_uplink(
    config: LinesideConfig, store: Store, outbox: Outbox | None = None
) -> HttpsUplink | None:
    """The HTTPS uplink when ``[sync.https]`` is configured, sending ``outbox``."""
    settings = config.sync.https
    if settings is None:
        return None
    # Imported here, not at the top: httpx (and the command-line extras it loads when they are
    # installed) costs the process about 6 MiB, which a gateway syncing over MQTT never uses
    # (docs/benchmarks.md, figure 6).
    from sync.https_uplink import HttpsUplink  # noqa: PLC0415

    client_cert = None
    if settings.cert_file is not None and settings.key_file is not None:
        client_cert = (settings.cert_file, settings.key_file)
    return HttpsUplink(
        store,
        url=settings.url,
        site=config.gateway.site,
        gateway=config.gateway.id,
        ca_file=settings.ca_file,
        client_cert=client_cert,
        token=settings.token.get_secret_value() if settings.token else None,
        max_records=settings.batch_records,
        max_bytes=settings.batch_bytes,
        timeout_s=settings.timeout_s,
        outbox=outbox,
    )
