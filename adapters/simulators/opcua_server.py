"""Simulated OPC UA checkweigher, probes and label scanner (asyncua server).

Address space (namespace ``urn:lineside:simulator``, always index 2; string node ids)::

    Objects/
      CW1                        object modelled on OPC 40200 CheckweigherType (one per
                                 checkweigher, default only CW1)
        CW1.NominalWeight        Double   g   Qn (40200 CheckweigherProductType.NominalWeight)
        CW1.LowerToleranceLimit1 Double   g   T1 = Qn - TNE (40200 LowerToleranceLimit1)
        CW1.LowerToleranceLimit2 Double   g   T2 = Qn - 2 TNE (40200 LowerToleranceLimit2)
        CW1.LastNetWeight        Double   g   net weight of the last pack
        CW1.LastGrossWeight      Double   g   gross weight of the last pack
        CW1.TareWeight           Double   g   tare of the last pack
        CW1.LabelSequence        UInt32       last label sequence number (unchanged on rejects)
        CW1.Accepted             Boolean      last pack accepted (net >= T1)
        CW1.PackCounter          UInt32       packs weighed; written LAST for each pack
      P1, P2                     probes (P1 line 1 product core, P2 chill room)
        P1.Temperature           Double   °C
      SC1
        SC1.LastRead             String       last label read: GS1 element string, "]C1"
                                              prefix, GS (0x1D) separators, no CR LF

e.g. ``ns=2;s=CW1.PackCounter``. Weight and temperature variables carry an
``EngineeringUnits`` property (UNECE codes GRM and CEL).

Per pack the weights, tare, label sequence and accepted flag are written first and the pack
counter last, so a client that reacts to a counter change and then reads the other variables
sees that pack's values (unless the next pack has come in meanwhile). The scanner node follows.

No security by default (anonymous, SecurityPolicy None). Given a certificate and private key,
the server also offers SignAndEncrypt with Basic256Sha256, Aes128_Sha256_RsaOaep and
Aes256_Sha256_RsaPss; it accepts any client certificate.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from adapters.simulators._driver import ScenarioServer
from adapters.simulators.scenario import (
    DropoutChanged,
    LineSpec,
    PackEvent,
    ProbeSample,
    ScenarioName,
    SimEvent,
)

__all__ = ["APPLICATION_URI", "NAMESPACE_URI", "OpcUaSimulator"]

log = logging.getLogger(__name__)

NAMESPACE_URI: Final = "urn:lineside:simulator"
"""Namespace of every simulator node; registered first, so its index is 2."""

APPLICATION_URI: Final = "urn:lineside:simulator:opcua"
"""The server's ApplicationUri (namespace 1); put it in a test certificate's SAN."""

_NS: Final = 2

# UNECE Recommendation 20 codes as OPC UA EUInformation (OPC 10000-8 §5.6.3): UnitId packs
# the up-to-three-character code into an Int32, one byte per character.
_UNECE_NS: Final = "http://www.opcfoundation.org/UA/units/un/cefact"


def _unit(code: str, symbol: str, name: str) -> ua.EUInformation:
    unit_id = 0
    for ch in code:
        unit_id = (unit_id << 8) | ord(ch)
    return ua.EUInformation(
        NamespaceUri=_UNECE_NS,
        UnitId=unit_id,
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(name),
    )


_GRAM: Final = _unit("GRM", "g", "gram")
_CELSIUS: Final = _unit("CEL", "°C", "degree Celsius")

# Bind retries when a just-probed free port is taken by someone else before the server binds.
_BIND_ATTEMPTS: Final = 5
# How often ServerStatus.CurrentTime is refreshed (asyncua's own clock task is disabled
# because stopping it waits out its one-second sleep, which makes restarts slow).
_HEARTBEAT_S: Final = 1.0


@dataclass(slots=True)
class _Var:
    """A variable: where it hangs, what it is called and what it holds now."""

    parent: str
    name: str
    variant_type: ua.VariantType
    value: Any
    unit: ua.EUInformation | None = None
    status: ua.StatusCode | None = None
    source_time: datetime | None = None


def _node_id(node_id: str) -> str:
    """Accept ``CW1.PackCounter`` as shorthand for ``ns=2;s=CW1.PackCounter``."""
    return node_id if node_id.startswith("ns=") else f"ns={_NS};s={node_id}"


def _free_port(host: str) -> int:
    # asyncua binds to the port in the endpoint URL and the URL is advertised in the
    # endpoint descriptions before binding, so a port-0 bind cannot be used here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class OpcUaSimulator(ScenarioServer):
    """An asyncua server playing a scenario on checkweigher, probe and scanner nodes.

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one on first start, kept across restarts.
        path: endpoint URL path.
        seed: scenario random seed.
        scenario: the script to play.
        speed: simulated seconds per real second.
        pack_rate_hz: packs per second per checkweigher.
        line: the simulated line (default :class:`LineSpec` with today's pack date).
        checkweighers: ids of the checkweighers to serve (must be in ``line``).
        probes: ids of the probes to serve (must be in ``line``).
        scanner_checkweigher: checkweigher whose labels ``SC1.LastRead`` shows, or ``None``
            for no scanner node.
        drive: play the scenario; ``False`` leaves values alone for :meth:`set_value`.
        epoch: ``loop.time()`` at which simulated time is 0 (default: first start), so
            several simulators can share one timeline.
        certificate: server certificate (DER or PEM) to also offer encrypted endpoints.
        private_key: the certificate's private key (PEM).
    """

    _kind = "opcua"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/lineside",
        seed: int = 0,
        scenario: ScenarioName | str = ScenarioName.NORMAL,
        speed: float = 1.0,
        pack_rate_hz: float = 1.0,
        line: LineSpec | None = None,
        checkweighers: Sequence[str] = ("CW1",),
        probes: Sequence[str] = ("P1", "P2"),
        scanner_checkweigher: str | None = "CW1",
        drive: bool = True,
        epoch: float | None = None,
        certificate: Path | str | None = None,
        private_key: Path | str | None = None,
    ) -> None:
        if (certificate is None) != (private_key is None):
            raise ValueError("give both certificate and private_key, or neither")
        self._init_scenario(
            host=host,
            port=port,
            seed=seed,
            scenario=scenario,
            speed=speed,
            pack_rate_hz=pack_rate_hz,
            line=line,
            drive=drive,
            epoch=epoch,
        )
        self._path = path if path.startswith("/") else "/" + path
        self._checkweighers = tuple(checkweighers)
        self._probes = tuple(probes)
        self._scanner_cw = scanner_checkweigher
        self._certificate = certificate
        self._private_key = private_key
        self._vars = self._build_vars()
        self._held: set[str] = set()
        self._server: Server | None = None
        self._dropped = False
        self._last_heartbeat = -math.inf
        # Serialises server start/stop against value writes from the driver and set_value.
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ public API

    @property
    def endpoint(self) -> str:
        """The endpoint URL, e.g. ``opc.tcp://127.0.0.1:48400/lineside``."""
        if self._port == 0:
            raise RuntimeError("the port is chosen on start(); start the simulator first")
        return f"opc.tcp://{self._host}:{self._port}{self._path}"

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Every variable's node id (``ns=2;s=...``)."""
        return tuple(self._vars)

    def value(self, node_id: str) -> Any:
        """The value the server holds (or will hold after a restart) for ``node_id``."""
        return self._vars[_node_id(node_id)].value

    async def _open(self) -> None:
        async with self._lock:
            await self._start_server()

    async def _close(self) -> None:
        async with self._lock:
            await self._stop_server()

    async def _reopen(self) -> None:
        # One critical section: a write in between would hit a half-built server. During a
        # scripted dropout the server stays down until the dropout ends.
        async with self._lock:
            await self._stop_server()
            await self._start_server()

    async def set_value(
        self,
        node_id: str,
        value: Any,
        status_code: int | str | ua.StatusCode | None = None,
        *,
        hold: bool = False,
    ) -> None:
        """Write ``value`` (e.g. NaN, inf) with an optional status to a variable.

        ``node_id`` is ``ns=2;s=P1.Temperature`` or just ``P1.Temperature``. ``status_code``
        is a number, a name such as ``"BadSensorFailure"`` or a ``ua.StatusCode``. With
        ``hold`` the scenario stops overwriting the variable until :meth:`release`.

        Raises:
            KeyError: no such variable.
        """
        key = _node_id(node_id)
        var = self._vars[key]
        var.value = value
        var.status = _status(status_code)
        var.source_time = datetime.now(UTC)
        if hold:
            self._held.add(key)
        async with self._lock:
            await self._write(key, var)

    def release(self, node_id: str) -> None:
        """Let the scenario drive a variable pinned by ``set_value(..., hold=True)`` again."""
        self._held.discard(_node_id(node_id))

    # ------------------------------------------------------------------ internals

    def _build_vars(self) -> dict[str, _Var]:
        line = self._engine.line
        v = ua.VariantType
        out: dict[str, _Var] = {}

        def add(parent: str, name: str, vt: ua.VariantType, value: Any, unit: Any = None) -> None:
            out[f"ns={_NS};s={parent}.{name}"] = _Var(parent, name, vt, value, unit)

        for cw_id in self._checkweighers:
            cw = line.checkweigher(cw_id)
            add(cw_id, "NominalWeight", v.Double, cw.nominal_g, _GRAM)
            add(cw_id, "LowerToleranceLimit1", v.Double, cw.t1_g, _GRAM)
            add(cw_id, "LowerToleranceLimit2", v.Double, cw.t2_g, _GRAM)
            add(cw_id, "LastNetWeight", v.Double, 0.0, _GRAM)
            add(cw_id, "LastGrossWeight", v.Double, 0.0, _GRAM)
            add(cw_id, "TareWeight", v.Double, 0.0, _GRAM)
            add(cw_id, "LabelSequence", v.UInt32, 0)
            add(cw_id, "Accepted", v.Boolean, False)
            add(cw_id, "PackCounter", v.UInt32, 0)
        for probe_id in self._probes:
            line.probe(probe_id)  # KeyError early for a probe the line does not have
            add(
                probe_id, "Temperature", v.Double, self._engine.probe_value(probe_id, 0.0), _CELSIUS
            )
        if self._scanner_cw is not None:
            line.checkweigher(self._scanner_cw)
            add("SC1", "LastRead", v.String, "")
        return out

    async def _start_server(self) -> None:
        if self._server is not None or self._dropped:
            return
        pick = self._port == 0
        for attempt in range(_BIND_ATTEMPTS):
            port = _free_port(self._host) if pick else self._port
            server = await self._build_server(port)
            try:
                await server.start()
            except OSError as exc:
                if not pick or exc.errno != errno.EADDRINUSE or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            except asyncio.CancelledError:
                # Cancelled half-way (e.g. the driver stopped during a dropout's end): do not
                # leave a listening socket behind that nobody owns.
                await server.stop()
                raise
            self._port = port
            self._server = server
            log.info("OPC UA simulator listening on %s", self.endpoint)
            return

    async def _build_server(self, port: int) -> Server:
        server = Server()
        server.disable_clock()
        await server.init()
        server.set_server_name("Lineside simulator")
        await server.set_application_uri(APPLICATION_URI)
        server.set_endpoint(f"opc.tcp://{self._host}:{port}{self._path}")
        policies = [ua.SecurityPolicyType.NoSecurity]
        if self._certificate is not None and self._private_key is not None:
            await server.load_certificate(str(self._certificate))
            await server.load_private_key(str(self._private_key))
            policies += [
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
                ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
            ]
        else:
            # Without a certificate only anonymous login makes sense; this also keeps
            # asyncua from warning about plaintext user-name tokens.
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        server.set_security_policy(policies)
        ns = await server.register_namespace(NAMESPACE_URI)
        if ns != _NS:
            raise RuntimeError(f"{NAMESPACE_URI} got namespace index {ns}, expected {_NS}")
        objects = server.nodes.objects
        parents: dict[str, Any] = {}
        for key, var in self._vars.items():
            parent = parents.get(var.parent)
            if parent is None:
                parent = await objects.add_object(f"ns={_NS};s={var.parent}", f"{_NS}:{var.parent}")
                parents[var.parent] = parent
            node = await parent.add_variable(
                key, f"{_NS}:{var.name}", ua.Variant(var.value, var.variant_type)
            )
            if var.unit is not None:
                await node.add_property(f"{key}.EngineeringUnits", "EngineeringUnits", var.unit)
            if var.status is not None:
                await server.write_attribute_value(node.nodeid, _data_value(var))
        return server

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            log.info("OPC UA simulator on port %d stopped", self._port)

    async def _write(self, key: str, var: _Var) -> None:
        if self._server is not None:
            await self._server.write_attribute_value(ua.NodeId.from_string(key), _data_value(var))

    async def _set(self, key: str, value: Any) -> None:
        if key in self._held or key not in self._vars:
            return
        var = self._vars[key]
        var.value = value
        var.status = None
        var.source_time = datetime.now(UTC)
        await self._write(key, var)

    async def _apply(self, events: Sequence[SimEvent]) -> None:
        async with self._lock:
            latest: dict[str, float] = {}
            for event in events:
                match event:
                    case PackEvent():
                        await self._apply_pack(event)
                    case ProbeSample():
                        # Only the newest sample matters to a server that holds current values.
                        latest[event.probe_id] = event.celsius
                    case DropoutChanged(active=True):
                        self._dropped = True
                        await self._stop_server()
                    case DropoutChanged(active=False):
                        self._dropped = False
                        await self._start_server()
            for probe_id, celsius in latest.items():
                await self._set(f"ns={_NS};s={probe_id}.Temperature", celsius)
            await self._heartbeat()

    async def _apply_pack(self, pack: PackEvent) -> None:
        cw = pack.checkweigher_id
        if cw in self._checkweighers:
            prefix = f"ns={_NS};s={cw}."
            await self._set(prefix + "LastNetWeight", pack.net_g)
            await self._set(prefix + "LastGrossWeight", pack.gross_g)
            await self._set(prefix + "TareWeight", pack.tare_g)
            if pack.label_seq is not None:
                await self._set(prefix + "LabelSequence", pack.label_seq)
            await self._set(prefix + "Accepted", pack.accepted)
            await self._set(prefix + "PackCounter", pack.pack_counter)
        if cw == self._scanner_cw and pack.label is not None:
            await self._set(f"ns={_NS};s=SC1.LastRead", pack.label)

    async def _heartbeat(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._server is None or now - self._last_heartbeat < _HEARTBEAT_S:
            return
        self._last_heartbeat = now
        await self._server.write_attribute_value(
            ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime)),
            ua.DataValue(ua.Variant(datetime.now(UTC), ua.VariantType.DateTime)),
        )


def _status(code: int | str | ua.StatusCode | None) -> ua.StatusCode | None:
    if code is None or isinstance(code, ua.StatusCode):
        return code
    value = getattr(StatusCodes, code) if isinstance(code, str) else code
    return ua.StatusCode(ua.UInt32(value))


def _data_value(var: _Var) -> ua.DataValue:
    good = ua.StatusCode(ua.UInt32(StatusCodes.Good))
    # ua.DateTime is a datetime subclass used only as a type marker; asyncua encodes any
    # timezone-aware datetime.
    return ua.DataValue(
        ua.Variant(var.value, var.variant_type),
        StatusCode=var.status if var.status is not None else good,
        SourceTimestamp=cast("ua.DateTime | None", var.source_time),
        ServerTimestamp=cast("ua.DateTime", datetime.now(UTC)),
    )
