"""Walk an OPC UA server's address space for ``lineside browse``: the socket part.

From the Objects folder down, breadth first, along hierarchical references (not
properties: EngineeringUnits and EURange are read, not listed), at most ``depth`` levels
and ``max_nodes`` nodes. The standard namespace's own objects (Server, Aliases...) are
skipped. For each variable the data type's name and the EngineeringUnits (OPC 10000-8
§5.6.3) are read; for each object its type definition, so OPC 40200 types are recognised
(:mod:`adapters.opcua.browse_fragment`). Errors are translated at this boundary into
:mod:`gateway.core.errors` (:func:`adapters.opcua.status.translate_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds

from adapters.opcua.browse_fragment import BrowsedNode
from adapters.opcua.security import configure_security
from adapters.opcua.status import UA_ERRORS, translate_error
from adapters.opcua.units import read_engineering_units
from gateway.config import OpcUaDevice
from gateway.core.codecs.units import common_code

__all__ = ["BrowseResult", "browse_server"]

_HAS_PROPERTY = ua.NodeId(ua.Int32(ObjectIds.HasProperty))
_HIERARCHICAL = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
_CLASSES = frozenset({ua.NodeClass.Object, ua.NodeClass.Variable})


@dataclass(frozen=True, slots=True)
class BrowseResult:
    """What was found, in browse order, and whether ``max_nodes`` cut it short."""

    nodes: list[BrowsedNode]
    truncated: bool


class _Walker:
    def __init__(self, client: Client, namespaces: list[str], timeout_s: float) -> None:
        self.client = client
        self.namespaces = namespaces
        self.timeout_s = timeout_s
        self.names: dict[ua.NodeId, tuple[str, str]] = {}

    def nsu(self, node_id: ua.NodeId) -> str:
        """``node_id`` with its namespace URI instead of its index (the index may change)."""
        text = node_id.to_string()
        index = node_id.NamespaceIndex
        if index == 0 or index >= len(self.namespaces):
            return text
        return f"nsu={self.namespaces[index]};{text.split(';', 1)[1]}"

    async def name_of(self, node_id: ua.NodeId) -> tuple[str, str]:
        """A type's (or data type's) browse name and its namespace URI, cached."""
        if node_id in self.names:
            return self.names[node_id]
        if node_id.NamespaceIndex == 0 and isinstance(node_id.Identifier, int):
            found = (ObjectIdNames.get(node_id.Identifier, str(node_id.Identifier)), "")
        else:
            name = await self.client.get_node(node_id).read_browse_name()
            index = node_id.NamespaceIndex
            uri = self.namespaces[index] if index < len(self.namespaces) else ""
            found = (str(name.Name), uri)
        self.names[node_id] = found
        return found

    async def describe(self, ref: ua.ReferenceDescription, path: tuple[str, ...]) -> BrowsedNode:
        node_id = ref.NodeId
        definition = ref.TypeDefinition
        type_name, type_uri = await self.name_of(
            ua.NodeId(definition.Identifier, definition.NamespaceIndex, definition.NodeIdType)
        )
        if ref.NodeClass != ua.NodeClass.Variable:
            return BrowsedNode(self.nsu(node_id), path, "object", type_name, type_uri)
        node = self.client.get_node(node_id)
        data_type, _ = await self.name_of(await node.read_data_type())
        info = await read_engineering_units(node, self.timeout_s)
        unit = common_code(int(info.UnitId)) if info is not None else ""
        unit_name = ""
        if info is not None and info.DisplayName is not None and info.DisplayName.Text:
            unit_name = str(info.DisplayName.Text)
        return BrowsedNode(
            self.nsu(node_id), path, "variable", type_name, type_uri, data_type, unit, unit_name
        )

    async def children(self, node: Node) -> list[ua.ReferenceDescription]:
        refs = await node.get_references(
            refs=_HIERARCHICAL,
            direction=ua.BrowseDirection.Forward,
            includesubtypes=True,
        )
        return [r for r in refs if r.ReferenceTypeId != _HAS_PROPERTY and r.NodeClass in _CLASSES]


async def _walk(client: Client, depth: int, max_nodes: int, timeout_s: float) -> BrowseResult:
    namespaces = [str(uri) for uri in await client.get_namespace_array()]
    walker = _Walker(client, namespaces, timeout_s)
    found: list[BrowsedNode] = []
    seen: set[ua.NodeId] = set()
    queue: deque[tuple[Node, tuple[str, ...]]] = deque([(client.nodes.objects, ())])
    while queue:
        node, path = queue.popleft()
        for ref in await walker.children(node):
            if ref.NodeId in seen or (not path and ref.NodeId.NamespaceIndex == 0):
                continue  # a node reached twice, or the standard namespace's Server object
            seen.add(ref.NodeId)
            if len(found) >= max_nodes:
                return BrowseResult(found, truncated=True)
            child_path = (*path, str(ref.BrowseName.Name))
            found.append(await walker.describe(ref, child_path))
            if len(child_path) < depth:
                queue.append((client.get_node(ref.NodeId), child_path))
    return BrowseResult(found, truncated=False)


async def browse_server(
    endpoint: str,
    *,
    depth: int = 6,
    max_nodes: int = 2000,
    timeout_s: float = 5.0,
    device: OpcUaDevice | None = None,
) -> BrowseResult:
    """Browse ``endpoint`` (with ``device``'s security and login when given).

    Raises:
        DeviceError: the server cannot be reached, refuses the session, or fails a request.
    """
    label = device.id if device is not None else endpoint
    client = Client(endpoint, timeout=timeout_s)
    client.name = client.description = "Lineside browse"
    client.session_timeout = 60_000  # ms; a short look, not a long session
    try:
        if device is not None:
            if device.security is not None:
                await configure_security(client, device)
            if device.username is not None and device.password is not None:
                client.set_user(device.username)
                client.set_password(device.password.get_secret_value())
        async with asyncio.timeout(timeout_s * 4):
            await client.connect()
    except UA_ERRORS as exc:
        error = translate_error(label, exc, "connect")
        if device is None or device.security is None:
            raise error from None
        # A server that cannot read a channel encrypted for the certificate we pinned only
        # times out or hangs up; say which certificate that was.
        pinned = device.security.server_certificate or device.security.trusted_certificates
        raise type(error)(
            label,
            f"{str(error).split(': ', 1)[1]} (SignAndEncrypt {device.security.policy}; is "
            f"{pinned} this server's certificate, and does it trust ours?)",
        ) from None
    try:
        return await _walk(client, depth, max_nodes, timeout_s)
    except UA_ERRORS as exc:
        raise translate_error(label, exc, "browse") from None
    finally:
        with contextlib.suppress(*UA_ERRORS):
            await client.disconnect()
