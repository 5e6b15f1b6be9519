"""OPC UA server certificate swapped or expired (docs/reference/reliability.md §7 row 10).

Builds on ``tests/test_opcua_adapter.py`` (a wrong pin at the first connection, an untrusted
server, an expired *pinned* file, a wrong application URI). Here the certificate changes
under a running adapter, and an expired certificate is *presented by the server*:

* swapped: the server the adapter is connected to (pinned certificate) is replaced on the
  same port by one holding another key, as after a replaced PLC or a man in the middle. The
  adapter loses the link, then refuses the new server by name, retries slowly, and never
  opens a ``SecurityPolicy#None`` channel (the fault proxy keeps what the client sent);
* expired: the server presents a certificate that expired (the trust list still has it):
  refused with ``BadCertificateTimeInvalid``, slowly retried, no value read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from adapters.opcua import OpcUaAdapter
from adapters.simulators.opcua_server import APPLICATION_URI
from gateway.core.clock import SystemClock
from gateway.core.link import LinkState
from tests.support.collector import Collector, running
from tests.support.faultproxy import FaultProxy
from tests.support.opcua_harness import GATEWAY_URI, Simulator, make_certificate, secure_device
from tests.support.waiting import wait_for

NONE_POLICY = b"SecurityPolicy#None"


async def test_swapped_server_certificate_is_refused_by_name_without_falling_back(
    tmp_path: Path,
) -> None:
    cert, key = make_certificate(tmp_path, "server", APPLICATION_URI, server=True)
    other, other_key = make_certificate(tmp_path, "replacement", APPLICATION_URI, server=True)
    client, client_key = make_certificate(tmp_path, "gateway", GATEWAY_URI, server=False)
    certs = {"client": client, "client_key": client_key}
    sim = Simulator(certificate=cert, private_key=key)
    await sim.start()
    replacement: Simulator | None = None
    try:
        async with FaultProxy(sim.port, capture=True) as proxy:
            endpoint = f"opc.tcp://127.0.0.1:{proxy.port}/lineside"
            config = secure_device(
                endpoint, certs, "Basic256Sha256", server_certificate=str(cert)
            ).model_copy(update={"timeout_s": 0.5})
            sink = Collector()
            adapter = OpcUaAdapter(config, sink, SystemClock())
            async with running(adapter):
                await wait_for(lambda: len(sink.readings()) == 2, what="readings, pinned server")
                await sim.set_value("P1.Temperature", 3.25)
                await wait_for(lambda: any(r.celsius == 3.25 for r in sink.readings("P1")))
                readings = len(sink.readings())
                attempts = adapter.connect_attempts

                # The server is replaced on the same port by one with another key.
                await sim.stop()
                replacement = Simulator(port=sim.port, certificate=other, private_key=other_key)
                await replacement.start()
                await replacement.set_value("P1.Temperature", 9.5)
                await wait_for(
                    lambda: "does not match the pinned certificate" in adapter.last_error,
                    timeout=10,
                    what="the refusal",
                )
                assert adapter.state is LinkState.DOWN
                await asyncio.sleep(0.3)
                # Refused once per slow retry (reconnect_max_s is 30 s), not in a loop.
                assert adapter.connect_attempts <= attempts + 2
                assert len(sink.readings()) == readings, "nothing read from the impostor"
                assert not any(r.celsius == 9.5 for r in sink.readings())
            assert proxy.stats.connections >= 2
    finally:
        if replacement is not None:
            await replacement.stop()
        await sim.stop()
    downs = sink.events("link_down")
    assert len(downs) == 1, "one outage, however many refused attempts"
    assert b"SecurityPolicy#Basic256Sha256" in proxy.captured
    assert NONE_POLICY not in proxy.captured, "no fallback to SecurityPolicy None"


async def test_expired_server_certificate_is_refused_by_status_name(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    expired, expired_key = make_certificate(
        tmp_path,
        "expired",
        APPLICATION_URI,
        server=True,
        not_before=now - dt.timedelta(days=400),
        not_after=now - dt.timedelta(days=35),
    )
    client, client_key = make_certificate(tmp_path, "gateway", GATEWAY_URI, server=False)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "server.der").write_bytes(expired.read_bytes())
    certs = {"client": client, "client_key": client_key}
    async with Simulator(certificate=expired, private_key=expired_key) as sim:
        sink = Collector()
        config = secure_device(
            sim.endpoint, certs, "Basic256Sha256", trusted_certificates=str(trusted)
        )
        adapter = OpcUaAdapter(config, sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("link_down")), timeout=10, what="refusal")
            await asyncio.sleep(0.3)
            assert adapter.state is LinkState.DOWN
            assert adapter.connect_attempts == 1
    assert "BadCertificateTimeInvalid" in adapter.last_error
    (down,) = sink.events("link_down")
    assert down.detail["cause"] == "security"
    assert "BadCertificateTimeInvalid" in down.detail["error"]
    assert not sink.readings(), "no value read from a server with an expired certificate"
