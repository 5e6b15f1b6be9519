"""The OPC UA simulator, device configs and certificates shared by the OPC UA tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.simulators import OpcUaSimulator
from adapters.simulators.scenario import LineSpec
from gateway.config import OpcUaDevice

LINE = LineSpec(pack_date=dt.date(2025, 3, 14))
GATEWAY_URI = "urn:lineside:gateway"
CW = {
    "net_weight": "LastNetWeight",
    "gross_weight": "LastGrossWeight",
    "tare": "TareWeight",
    "accepted": "Accepted",
    "label_sequence": "LabelSequence",
    "pack_counter": "PackCounter",
}

# ----------------------------------------------------------------------------- helpers


class Simulator(OpcUaSimulator):
    """The project's simulator, keeping a handle on the current asyncua server for checks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(drive=False, line=LINE, **kwargs)
        self.server: Any = None

    async def _build_server(self, port: int) -> Any:
        self.server = await super()._build_server(port)
        return self.server

    def subscriptions(self) -> list[int]:
        """Monitored items per subscription alive on the server right now."""
        service = self.server.iserver.subscription_service
        return sorted(
            len(sub.monitored_item_srv._monitored_items) for sub in service.subscriptions.values()
        )


class TcpProxy:
    """A loopback TCP proxy: records client->server bytes, can cut or black-hole traffic."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = bytearray()
        self.blackhole = False
        """While True, bytes are swallowed in both directions: a hung peer, sockets open."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def endpoint(self, path: str = "/lineside") -> str:
        return f"opc.tcp://127.0.0.1:{self.port}{path}"

    def cut(self) -> None:
        """Reset every connection, as a network fault would."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer, record=True), self._pipe(up_reader, writer)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool = False
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.blackhole:
                    continue
                if record:
                    self.sent.extend(data)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


def client_tasks() -> set[asyncio.Task[Any]]:
    """Live tasks of OPC UA *clients*: the adapter's own and asyncua's client-side ones."""
    found = set()
    for task in asyncio.all_tasks():
        if task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if task.get_name().startswith("opcua[") or "/asyncua/client/" in filename:
            found.add(task)
    return found


def device(endpoint: str, role: str, groups: list[dict[str, Any]], **extra: Any) -> OpcUaDevice:
    return OpcUaDevice.model_validate(
        {
            "kind": "opcua",
            "id": extra.pop("id", "dev1"),
            "line": "L1",
            "role": role,
            "endpoint": endpoint,
            "timeout_s": 2.0,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.3,
            "watchdog_interval_s": 0.25,
            "groups": groups,
            **extra,
        }
    )


def checkweigher(endpoint: str, mode: str = "subscribe", **extra: Any) -> OpcUaDevice:
    tags: list[dict[str, object]] = [
        {"name": name, "node": f"ns=2;s=CW1.{node}"} for name, node in CW.items()
    ]
    tags[0]["min"], tags[0]["max"] = 0, 2000  # net weight, grams
    group = {"name": "cw", "mode": mode, "publishing_interval_ms": 50, "tags": tags}
    group |= {"sampling_interval_ms": 0, "poll_interval_ms": 50}
    return device(endpoint, "checkweigher", [group], id="CW1", **extra)


def probes(endpoint: str, mode: str = "subscribe", **extra: Any) -> OpcUaDevice:
    tags = [
        {"name": p, "node": f"ns=2;s={p}.Temperature", "min": -40, "max": 60, "location": loc}
        for p, loc in (("P1", "product core"), ("P2", "chill room"))
    ]
    group = {"name": "temps", "mode": mode, "publishing_interval_ms": 50, "tags": tags}
    group |= {"sampling_interval_ms": 0, "poll_interval_ms": 50}
    return device(endpoint, "temperature_probe", [group], id="PT", **extra)


async def write_pack(sim: OpcUaSimulator, counter: int, net: float, tare: float = 12.5) -> None:
    """Weights first, counter last, as a checkweigher does."""
    await sim.set_value("CW1.LastNetWeight", net)
    await sim.set_value("CW1.LastGrossWeight", net + tare)
    await sim.set_value("CW1.TareWeight", tare)
    await sim.set_value("CW1.LabelSequence", counter)
    await sim.set_value("CW1.Accepted", net >= 231.0)
    await sim.set_value("CW1.PackCounter", counter)


def make_certificate(
    directory: Path,
    name: str,
    uri: str,
    *,
    server: bool,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """A self-signed application instance certificate (OPC 10000-6 §6.2.2) and its key."""
    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    san = [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")]
    if not_before is None:
        cert = cert_gen.generate_self_signed_app_certificate(key, name, {}, san, [usage])
    else:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after or not_before + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(key, hashes.SHA256())
        )
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


def secure_device(endpoint: str, certs: dict[str, Path], policy: str, **security: Any) -> Any:
    settings = {
        "policy": policy,
        "certificate": str(certs["client"]),
        "private_key": str(certs["client_key"]),
        **security,
    }
    return probes(endpoint, security=settings, reconnect_max_s=30.0)
