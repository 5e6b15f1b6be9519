"""Gateway configurations for the benchmarks (TOML text, as an engineer would write them),
and the production run the readings join.

Every config is checked by :func:`gateway.config.load_config` before a gateway starts, so a
benchmark can only run what ``lineside check-config`` accepts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from bench.peers import NOMINAL_G
from gateway.config import LinesideConfig, load_config
from gateway.core.clock import SystemClock
from gateway.core.runs import Product, ProductionRun, RunStatus, run_version
from gateway.store import Store
from rules.model import Tier
from sync.ingest.auth import hash_token, new_token, write_tokens

GATEWAY_ID = "bench-gw"
SITE = "bench"
LINE = "L1"
RUN_NUMBER = "R-BENCH-1"
NAMESPACE_INDEX = 2
"""The bench OPC UA server registers its namespace first, so it gets index 2."""


def gateway_toml(
    db: Path,
    *,
    devices: Sequence[str] = (),
    rules: str = "",
    sync: str = "",
    commit_interval_ms: int = 250,
) -> str:
    """A whole config: gateway, store, line L1, then the given sections."""
    return (
        f'[gateway]\nid = "{GATEWAY_ID}"\nsite = "{SITE}"\nlog_level = "warning"\n\n'
        f'[store]\npath = "{db}"\ncommit_interval_ms = {commit_interval_ms}\n\n'
        f'[[lines]]\nid = "{LINE}"\nname = "Bench line"\n\n' + "\n".join(devices) + rules + sync
    )


def opcua_probes(
    endpoint: str, probes: int, *, publishing_ms: int, sampling_ms: int, queue_size: int
) -> str:
    """An OPC UA temperature-probe device subscribing to ``probes`` variables."""
    tags = ",\n".join(
        f'  {{ name = "P{i}", node = "ns={NAMESPACE_INDEX};s=P{i}.Temperature", '
        f'location = "product core", min = -40, max = 60 }}'
        for i in range(probes)
    )
    return (
        '[[devices]]\nid = "probes"\nkind = "opcua"\nline = "L1"\n'
        f'role = "temperature_probe"\nendpoint = "{endpoint}"\n\n'
        '[[devices.groups]]\nname = "probes"\nmode = "subscribe"\n'
        f"publishing_interval_ms = {publishing_ms}\nsampling_interval_ms = {sampling_ms}\n"
        f"queue_size = {queue_size}\ntags = [\n{tags},\n]\n"
    )


def opcua_checkweigher(endpoint: str, *, publishing_ms: int) -> str:
    """The OPC UA checkweigher ``cw1`` on the bench server's ``CW1`` variables."""
    ns = NAMESPACE_INDEX
    return (
        '[[devices]]\nid = "cw1"\nkind = "opcua"\nline = "L1"\n'
        f'role = "checkweigher"\nendpoint = "{endpoint}"\n\n'
        '[[devices.groups]]\nname = "weighing"\nmode = "subscribe"\n'
        f"publishing_interval_ms = {publishing_ms}\nsampling_interval_ms = 0\n"
        "queue_size = 100\ntags = [\n"
        f'  {{ name = "pack_counter", node = "ns={ns};s=CW1.PackCounter" }},\n'
        f'  {{ name = "nominal_weight", node = "ns={ns};s=CW1.NominalWeight", '
        "min = 5, max = 25000 },\n"
        f'  {{ name = "net_weight", node = "ns={ns};s=CW1.LastNetWeight", min = 0, max = 5000 }},\n'
        f'  {{ name = "accepted", node = "ns={ns};s=CW1.Accepted" }},\n'
        f'  {{ name = "label_sequence", node = "ns={ns};s=CW1.LabelSequence" }},\n'
        "]\n"
    )


def modbus_probes(device: str, port: int, tags: int, *, poll_ms: int) -> str:
    """A Modbus TCP temperature-probe device: ``tags`` int16 input registers from 0."""
    rows = ",\n".join(
        f'  {{ name = "T{i}", table = "input", address = {i}, type = "int16", scale = 0.1, '
        f"min = -40, max = 60 }}"
        for i in range(tags)
    )
    return (
        f'[[devices]]\nid = "{device}"\nkind = "modbus_tcp"\nline = "L1"\n'
        f'role = "temperature_probe"\nhost = "127.0.0.1"\nport = {port}\nunit_id = 1\n'
        f"poll_interval_ms = {poll_ms}\ntags = [\n{rows},\n]\n"
    )


def probe_rules(device: str, names: Sequence[str], *, upper_c: float = 8.0) -> str:
    """HACCP limits for every probe, so every reading is judged (none breaches them)."""
    return "".join(
        f'\n[[rules.probes]]\ndevice = "{device}"\nprobe = "{name}"\nupper_c = {upper_c}\n'
        for name in names
    )


DEFAULT_BATCH_RECORDS = 2000
DEFAULT_BATCH_BYTES = 1024 * 1024
DEFAULT_WINDOW = 8
"""The shipped defaults of ``[sync.mqtt]`` / ``[sync.https]`` (``gateway/config/``)."""


def mqtt_sync(
    port: int,
    *,
    batch_records: int = DEFAULT_BATCH_RECORDS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    window: int = DEFAULT_WINDOW,
) -> str:
    """``[sync.mqtt]`` to a broker on loopback."""
    return (
        f'\n[sync.mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f"batch_records = {batch_records}\nbatch_bytes = {batch_bytes}\nwindow = {window}\n"
    )


def https_sync(
    url: str,
    ca_file: Path,
    token_file: Path,
    *,
    batch_records: int = DEFAULT_BATCH_RECORDS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> str:
    """``[sync.https]`` to the ingest, TLS verified against the bench CA, with the gateway's
    token (see :func:`enrol_https_gateways`)."""
    return (
        f'\n[sync.https]\nurl = "{url}"\nca_file = "{ca_file}"\n'
        f'token = {{ file = "{token_file}" }}\n'
        f"batch_records = {batch_records}\nbatch_bytes = {batch_bytes}\n"
    )


def enrol_https_gateways(folder: Path, gateways: list[str]) -> Path:
    """A tokens file for the ingest and ``<folder>/<gateway>.token`` for each gateway."""
    tokens = {}
    for gateway in gateways:
        token = new_token(gateway)
        (folder / f"{gateway}.token").write_text(token + "\n")
        tokens[gateway] = hash_token(token)
    path = folder / "gateway-tokens"
    write_tokens(path, tokens)
    return path


def write_config(path: Path, text: str) -> LinesideConfig:
    """Write a config file and check it the way ``lineside check-config`` does."""
    path.write_text(text)
    return load_config(path)


def bench_run(now: dt.datetime) -> ProductionRun:
    """The production run on L1: started an hour ago, one 200 g fixed-weight product."""
    return ProductionRun(
        run_number=RUN_NUMBER,
        line=LINE,
        batch_codes=("B-BENCH-1",),
        description="Salmon fillets (benchmark)",
        species="salmon",
        product_type="fillet",
        products=(
            Product(
                plu="41240",
                description=f"Salmon fillet {NOMINAL_G:.0f} g",
                nominal_g=Decimal(str(NOMINAL_G)),
                tier=Tier.PREMIUM,
                species="salmon",
            ),
        ),
        raw_material_kg=Decimal(100000),
        pack_date=now.date(),
        shelf_life_adjust=0,
        planned_start=now - dt.timedelta(hours=1),
        planned_end=None,
        actual_start=now - dt.timedelta(hours=1),
        actual_end=None,
        status=RunStatus.RUNNING,
        updated=now,
    )


HISTORY_LINES = 4
"""The lines the seeded history's runs are spread over (the gateway indexes every run it has
stored, whatever its line)."""


def history_runs(now: dt.datetime, count: int) -> list[ProductionRun]:
    """``count`` finished two-hour runs before the bench run, spread over
    :data:`HISTORY_LINES` lines and going back in time (10,000 is about seven months of four
    lines running around the clock): the ERP history a gateway keeps in its store."""
    run = bench_run(now)
    older = []
    for i in range(count):
        line = f"L{1 + i % HISTORY_LINES}"
        end = now - dt.timedelta(hours=1 + 2 * (i // HISTORY_LINES))
        older.append(
            dataclasses.replace(
                run,
                run_number=f"R-HIST-{i}",
                line=line,
                batch_codes=(f"B-HIST-{i}",),
                planned_start=end - dt.timedelta(hours=2),
                actual_start=end - dt.timedelta(hours=2),
                actual_end=end,
                status=RunStatus.FINISHED,
                pack_date=end.date(),
            )
        )
    return older


def seed_run(config: LinesideConfig, *, history: int = 0) -> None:
    """Store the bench run (as an operator start would), so every reading joins it; with
    ``history``, that many finished runs before it (:func:`history_runs`)."""

    async def seed() -> None:
        clock = SystemClock()
        now = dt.datetime.now(dt.UTC)
        async with Store(config.store, clock) as store:
            task = asyncio.create_task(store.run_committer())
            for run in [*history_runs(now, history), bench_run(now)]:
                store.submit(run_version(run, clock.wall_us(), source="operator", actor="bench"))
            await store.stop_committer()
            await task

    asyncio.run(seed())


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lineside bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingest.bench")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "ingest.pem", folder / "ingest.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def probe_gateway(
    path: Path,
    db: Path,
    endpoint: str,
    probes: int,
    *,
    publishing_ms: int,
    queue_size: int,
    sync: str = "",
    history: int = 0,
) -> None:
    """Write the config of a gateway subscribed to ``probes`` OPC UA probes (HACCP limits on
    every one) and store the running production run, so every reading is judged and joined
    (after ``history`` finished runs, :func:`seed_run`)."""
    config = write_config(
        path,
        gateway_toml(
            db,
            devices=[
                opcua_probes(
                    endpoint,
                    probes,
                    publishing_ms=publishing_ms,
                    sampling_ms=0,
                    queue_size=queue_size,
                )
            ],
            rules=probe_rules("probes", [f"P{i}" for i in range(probes)]),
            sync=sync,
        ),
    )
    seed_run(config, history=history)
