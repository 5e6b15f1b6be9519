"""The central ingest service (``lineside ingest``): MQTT consumer and HTTP app, one warehouse.

Both paths commit through the same :class:`~sync.ingest.warehouse.Warehouse`, so a batch
that arrives over MQTT and again over HTTPS (a gateway that switched uplinks) is stored once.
:func:`run_ingest` runs until cancelled; signal handling belongs to the caller (uvicorn is
kept from installing its own handlers).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from gateway.core.backoff import Backoff
from gateway.core.http_server import QuietServer, bind_tcp, server_config
from sync.ingest.http_app import IngestApp
from sync.ingest.mqtt_consumer import MqttConsumer
from sync.ingest.settings import IngestSettings
from sync.ingest.warehouse import Warehouse, WarehouseUnavailable, create_warehouse

__all__ = ["IngestService", "IngestSettings", "run_ingest"]

logger = logging.getLogger(__name__)


class IngestService:
    """The running ingest. ``await IngestService(settings).run()`` until cancelled.

    A ``warehouse`` passed in is used as is (already opened, closed by its owner); otherwise
    the service creates one from the settings, opens it (waiting for the database if it is not
    up yet) and closes it on the way out.
    """

    def __init__(self, settings: IngestSettings, *, warehouse: Warehouse | None = None) -> None:
        self.settings = settings
        self._owns_warehouse = warehouse is None
        self.warehouse = warehouse or create_warehouse(
            postgres_dsn=settings.postgres_dsn,
            sqlite_path=settings.sqlite_path,
            pool_size=settings.db_pool_size,
        )
        self.consumer = MqttConsumer(settings, self.warehouse) if settings.mqtt_enabled else None
        self.app = IngestApp(
            self.warehouse,
            tokens=settings.gateway_tokens,
            max_body=settings.http_max_body,
            status=self._status,
        )
        self.http_port: int | None = None
        self.ready = asyncio.Event()
        """Set once the warehouse is open and the HTTP port is listening."""

    def _status(self) -> dict[str, object]:
        """What ``GET /v1/healthz`` adds: this instance's counters since start (no secrets;
        read from memory, no query). docs/operations.md describes each field."""
        w = self.warehouse.stats
        status: dict[str, object] = {
            "records": {
                "batches": w.batches,
                "inserted": w.inserted,
                "duplicates": w.duplicates,
                "conflicts": w.conflicts,
                "invalid": w.invalid,
            },
            "http": {"committed": self.app.stats.committed},
        }
        if self.consumer is None:
            return {"mqtt": "disabled", **status}
        return {
            "mqtt": "connected" if self.consumer.connected else "disconnected",
            "consumer": self.consumer.status(),
            **status,
        }

    async def run(self) -> None:
        """Serve until cancelled (or until one side fails, which ends both)."""
        if self._owns_warehouse:
            await self._open_warehouse()
        sock: socket.socket | None = None
        try:
            if self.settings.http_enabled:
                sock = bind_tcp(self.settings.http_host, self.settings.http_port)
                self.http_port = int(sock.getsockname()[1])
            async with asyncio.TaskGroup() as group:
                if self.consumer is not None:
                    group.create_task(self.consumer.run(), name="ingest-mqtt")
                if sock is not None:
                    group.create_task(self._serve_http(sock), name="ingest-http")
                    logger.info(
                        "ingest %s on %s:%d",
                        "HTTPS" if self.settings.http_tls_cert else "HTTP",
                        self.settings.http_host,
                        self.http_port,
                    )
                    if self.settings.gateway_tokens is None:
                        logger.warning("no gateway tokens configured: every POST is refused")
                self.ready.set()
        except ExceptionGroup as group:
            # One side failed (the other was cancelled): report that failure itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            if sock is not None:
                sock.close()
            self.ready.clear()
            if self._owns_warehouse:
                await self.warehouse.close()

    async def _open_warehouse(self) -> None:
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            try:
                await self.warehouse.open()
            except WarehouseUnavailable as exc:
                delay = backoff.next_delay()
                logger.warning("warehouse not available (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            else:
                return

    async def _serve_http(self, sock: socket.socket) -> None:
        app: Any = self.app
        # Each request may hold a 4 MiB body: bound the memory (32 × 4 MiB). Of those, up to
        # the warehouse's pool size commit at once; the others wait for a connection.
        config = server_config(app, graceful_s=5, limit_concurrency=32, **self._tls_options())
        server = QuietServer(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await asyncio.shield(serving)
        finally:
            if not serving.done():
                server.should_exit = True
                await serving
            sock.close()
        raise RuntimeError("the ingest HTTP server stopped")

    def _tls_options(self) -> dict[str, Any]:
        s = self.settings
        if s.http_tls_cert is None:
            return {}
        options: dict[str, Any] = {
            "ssl_certfile": str(s.http_tls_cert),
            "ssl_keyfile": str(s.http_tls_key),
        }
        if s.http_tls_client_ca is not None:
            options["ssl_ca_certs"] = str(s.http_tls_client_ca)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options


async def run_ingest(config: IngestSettings) -> None:
    """Run the central ingest until cancelled."""
    await IngestService(config).run()
