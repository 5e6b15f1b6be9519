"""[sync.mqtt] over TLS with client certificates, through a real mosquitto that requires them
(``require_certificate true``, ``use_identity_as_username true``).

* With ca_file + cert_file + key_file the gateway connects, and its records reach an ingest
  (itself a TLS client with its own certificate): the outbox drains into the warehouse.
* Without a client certificate the broker refuses the gateway: the uplink never comes UP,
  every record stays in the outbox, the service keeps running and stops cleanly.
* A broker certificate from another CA is refused by the gateway: the same.

The PKI is generated here with ``cryptography`` (EC P-256, in tmp_path).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import gateway.composition
import gateway.uplink_factory
from gateway.config import LinesideConfig, load_config
from gateway.core.link import LinkState
from gateway.core.records import PackEvent
from gateway.service import run_gateway
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings
from sync.mqtt_uplink import MqttUplink
from tests.support.configs import minimal_config_text
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

PACKS = 200


# ----------------------------------------------------------------------------- the PKI


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def make_ca(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, _name(name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(key, cert, path)


def issue(directory: Path, ca: Authority, name: str, *, server: bool) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(name, ca.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    cert = builder.sign(ca.key, hashes.SHA256())
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


@dataclass(frozen=True)
class Pki:
    ca: Authority
    broker: Pair
    gateway: Pair
    ingest: Pair
    rogue_broker: Pair
    """A broker certificate (right names) from another CA."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "lineside-test-ca")
    rogue = make_ca(directory, "rogue-ca")
    return Pki(
        ca=ca,
        broker=issue(directory, ca, "broker", server=True),
        gateway=issue(directory, ca, "gw-test", server=False),
        ingest=issue(directory, ca, "lineside-ingest", server=False),
        rogue_broker=issue(directory, rogue, "rogue-broker", server=True),
    )


def tls_broker(directory: Path, ca: Path, server: Pair) -> Mosquitto:
    """A mosquitto whose (only) listener requires a client certificate from ``ca``."""
    return Mosquitto(
        directory,
        extra_config="\n".join(
            [
                f"cafile {ca}",
                f"certfile {server.cert}",
                f"keyfile {server.key}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        ),
    )


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    with tls_broker(tmp_path / "broker", pki.ca.path, pki.broker) as running:
        yield running


@pytest.fixture
def rogue_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    # Verifies clients against the right CA, but presents a certificate from another one.
    with tls_broker(tmp_path / "broker", pki.ca.path, pki.rogue_broker) as running:
        yield running


# ----------------------------------------------------------------------------- the gateway


def gateway_config(
    tmp_path: Path, broker: Mosquitto, ca: Path, client: Pair | None
) -> LinesideConfig:
    tls = f'ca_file = "{ca}"\n'
    if client is not None:
        tls += f'cert_file = "{client.cert}"\nkey_file = "{client.key}"\n'
    path = tmp_path / "gw.toml"
    path.write_text(
        minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20)
        + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n{tls}'
    )
    return load_config(path)


@pytest.fixture
def uplinks(monkeypatch: pytest.MonkeyPatch) -> list[MqttUplink]:
    """The uplinks the gateway service builds, to watch their state."""
    built: list[MqttUplink] = []
    original = gateway.uplink_factory.build_uplink

    def capture(*args: object, **kwargs: object) -> MqttUplink | None:
        uplink = original(*args, **kwargs)  # type: ignore[arg-type]
        if uplink is not None:
            built.append(uplink)
        return uplink

    monkeypatch.setattr(gateway.composition, "build_uplink", capture)
    return built


class RunningGateway:
    def __init__(self, config: LinesideConfig) -> None:
        self.config = config
        self.stop = asyncio.Event()
        self.started: asyncio.Future[Store] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(
            run_gateway(config, stop=self.stop, on_ready=self.started.set_result)
        )

    async def store(self) -> Store:
        return await asyncio.wait_for(self.started, 15)

    async def close(self) -> None:
        """Stop the service; it must end without an exception (no crash)."""
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


def submit_packs(store: Store) -> None:
    for i in range(PACKS):
        store.submit(PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240.0 + i % 7))


async def count(store: Store, sql: str) -> int:
    return int((await store.fetchall(sql))[0][0])


# ----------------------------------------------------------------------------- the tests


async def test_client_certificates_carry_records_to_the_warehouse(
    tmp_path: Path, broker: Mosquitto, pki: Pki, uplinks: list[MqttUplink]
) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(
        IngestSettings(
            mqtt_host="localhost",  # the DNS name in the broker's certificate
            mqtt_port=broker.port,
            tls_ca=pki.ca.path,
            tls_cert=pki.ingest.cert,
            tls_key=pki.ingest.key,
            http_port=0,
            sqlite_path=warehouse_path,
        )
    )
    ingest_task = asyncio.create_task(ingest.run())
    gw = None
    try:
        await asyncio.wait_for(ingest.ready.wait(), 15)
        assert ingest.consumer is not None
        await asyncio.wait_for(ingest.consumer.subscribed.wait(), 15)
        gw = RunningGateway(gateway_config(tmp_path, broker, pki.ca.path, pki.gateway))
        store = await gw.store()
        submit_packs(store)

        async def drained() -> bool:
            # The warehouse first: fetchall shares the committer's connection and may look
            # inside its open transaction (records inserted, outbox rows not yet).
            if ingest.warehouse.stats.inserted < PACKS:
                return False
            return await count(store, "SELECT count(*) FROM outbox") == 0

        await wait_for(drained, timeout=20)
        [uplink] = uplinks
        assert uplink.tls_context is not None
        assert uplink.state is LinkState.UP
        assert uplink.stats.connects >= 1
    finally:
        if gw is not None:
            await gw.close()
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)

    edge = sqlite3.connect(tmp_path / "gw.db")
    packs = {seq for (seq,) in edge.execute("SELECT seq FROM packs")}
    edge.close()
    warehouse = sqlite3.connect(warehouse_path)
    stored = {
        seq
        for (seq,) in warehouse.execute(
            "SELECT seq FROM records WHERE gateway = 'gw-test' AND stream = 'packs'"
        )
    }
    warehouse.close()
    assert len(packs) == PACKS
    assert stored == packs
    log = broker.log_path.read_text(errors="replace")
    assert "u'gw-test'" in log, "the broker took the certificate's CN as the user name"


def outbox_packs(tmp_path: Path) -> int:
    edge = sqlite3.connect(tmp_path / "gw.db")
    try:
        return int(
            edge.execute(
                "SELECT count(*) FROM outbox o JOIN packs p ON p.seq = o.seq"
                " WHERE o.stream = 'packs'"
            ).fetchone()[0]
        )
    finally:
        edge.close()


async def refused_and_buffered(gw: RunningGateway, uplinks: list[MqttUplink]) -> str:
    """Submit packs; the uplink must fail to connect (twice), never be UP, lose nothing."""
    store = await gw.store()
    submit_packs(store)
    [uplink] = uplinks
    seen_up = False

    async def retried() -> bool:
        nonlocal seen_up
        seen_up |= uplink.state is LinkState.UP
        return uplink.stats.connect_attempts >= 2 and uplink.state is not LinkState.CONNECTING

    await wait_for(retried, timeout=15)

    async def committed() -> bool:
        return await count(store, "SELECT count(*) FROM packs") == PACKS

    await wait_for(committed, timeout=10)
    assert not seen_up
    assert uplink.state is not LinkState.UP
    assert uplink.stats.connects == 0
    assert uplink.stats.records_acked == 0
    assert uplink.in_flight == 0
    assert not gw.task.done(), "the service keeps running"
    buffered = await count(
        store,
        "SELECT count(*) FROM outbox o JOIN packs p ON p.seq = o.seq WHERE o.stream = 'packs'",
    )
    assert buffered == PACKS, "every pack is still in the outbox"
    return uplink.stats.last_error


async def test_a_gateway_without_a_client_certificate_is_refused(
    tmp_path: Path, broker: Mosquitto, pki: Pki, uplinks: list[MqttUplink]
) -> None:
    gw = RunningGateway(gateway_config(tmp_path, broker, pki.ca.path, None))
    try:
        await refused_and_buffered(gw, uplinks)
    finally:
        await gw.close()
    # The broker, not the gateway, refused: it saw a TLS client without a certificate.
    assert "peer did not return a certificate" in broker.log_tail(200)
    assert outbox_packs(tmp_path) == PACKS, "still buffered after the shutdown"


async def test_a_broker_certificate_from_another_ca_is_refused(
    tmp_path: Path, rogue_broker: Mosquitto, pki: Pki, uplinks: list[MqttUplink]
) -> None:
    gw = RunningGateway(gateway_config(tmp_path, rogue_broker, pki.ca.path, pki.gateway))
    try:
        error = await refused_and_buffered(gw, uplinks)
    finally:
        await gw.close()
    assert "certificate verify failed" in error.lower()
    assert outbox_packs(tmp_path) == PACKS, "still buffered after the shutdown"
