"""Pure: what ``lineside browse`` found on an OPC UA server, as a listing and as config.

The socket part (:mod:`adapters.opcua.browse`) walks the address space into
:class:`BrowsedNode` values; this module recognises devices among them and writes the
``[[devices]]`` fragments to paste into a config (docs/devices.md, "browse"). No I/O.

Recognised:

* OPC 40200 (OPC UA for Weighing Technology) objects: any object whose type definition is
  in an OPC 40200 namespace (``http://opcfoundation.org/UA/Scales/V2/``, the older
  ``.../UA/Scales``, or ``.../UA/Weighing/``), e.g. ``CheckweigherType``,
  ``CatchweigherType``, ``ScaleDeviceType``. Its variables, at any depth, are mapped to
  checkweigher signals by name (``RegisteredWeight`` is the last registered, i.e. the
  pack's, weight; ``ItemCount`` counts items).
* Other objects whose own variables have a pack counter and a net weight by name (the
  common vendor layout ``CW1.PackCounter``, ``CW1.LastNetWeight``).
* Label scanners: an object with a String variable named like ``Barcode``.
* Temperatures: variables whose EngineeringUnits are a temperature, one probe each.

Node ids are printed in the ``nsu=<namespace URI>;...`` form, which stays right when the
server renumbers its namespaces.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

from gateway.core.codecs.units import CELSIUS, GRAM, from_common_code

__all__ = [
    "WEIGHING_NAMESPACES",
    "BrowsedNode",
    "DeviceFragment",
    "browse_json",
    "find_devices",
    "format_fragments",
    "format_listing",
    "is_weighing_type",
]

WEIGHING_NAMESPACES: Final = (
    "http://opcfoundation.org/UA/Scales",
    "http://opcfoundation.org/UA/Weighing",
)
"""Namespace URI prefixes of OPC 40200 (the V2 URI is ``.../UA/Scales/V2/``)."""

# Variable names (lower case, letters and digits only) -> checkweigher signal.
_SIGNALS: Final[dict[str, str]] = {
    **dict.fromkeys(["packcounter", "itemcount", "counter", "packcount"], "pack_counter"),
    **dict.fromkeys(["labelsequence", "labelcounter"], "label_sequence"),
    **dict.fromkeys(
        ["netweight", "lastnetweight", "registeredweight", "net", "measuredweight"], "net_weight"
    ),
    **dict.fromkeys(["grossweight", "lastgrossweight", "gross"], "gross_weight"),
    **dict.fromkeys(["tare", "tareweight"], "tare"),
    **dict.fromkeys(["nominalweight", "targetweight", "nominal"], "nominal_weight"),
    **dict.fromkeys(["accepted"], "accepted"),
    **dict.fromkeys(["rejected"], "rejected"),
    **dict.fromkeys(["rejectcounter", "rejectedcount", "rejectcount"], "reject_counter"),
    **dict.fromkeys(["program", "programnumber", "productnumber"], "program"),
}
_WEIGHTS: Final = frozenset({"net_weight", "gross_weight", "tare", "nominal_weight"})
_BARCODES: Final = frozenset({"barcode", "lastbarcode", "label", "lastread", "scan"})
_SCALAR: Final = frozenset(
    {
        "Boolean",
        "SByte",
        "Byte",
        "Int16",
        "UInt16",
        "Int32",
        "UInt32",
        "Int64",
        "UInt64",
        "Float",
        "Double",
        "Number",
        "Integer",
        "UInteger",
    }
)
_NOT_ID: Final = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class BrowsedNode:
    """One object or variable found under Objects."""

    node_id: str
    """In the ``nsu=`` form (``i=``/``ns=0`` ids of the standard namespace as they are)."""
    path: tuple[str, ...]
    """Browse names from the Objects folder down, without namespace indexes."""
    node_class: str
    """``object`` or ``variable``."""
    type_name: str = ""
    """Browse name of the type definition (``CheckweigherType``, ``BaseDataVariableType``)."""
    type_uri: str = ""
    """Namespace URI of the type definition."""
    data_type: str = ""
    """Variables: the data type's browse name (``Double``, ``String``, a structure's name)."""
    unit: str = ""
    """UNECE common code of the EngineeringUnits (``KGM``), "" when the server gives none."""
    unit_name: str = ""
    """The EngineeringUnits' display name (``kg``)."""


@dataclass(slots=True)
class DeviceFragment:
    """A device recognised among the nodes, and the tags mapped for it."""

    device_id: str
    role: str
    source: str
    """Why it was recognised (``OPC 40200 CheckweigherType``, ``names``...)."""
    tags: list[tuple[str, BrowsedNode]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_weighing_type(node: BrowsedNode) -> bool:
    """True for an object whose type definition is an OPC 40200 type."""
    return node.node_class == "object" and node.type_uri.startswith(WEIGHING_NAMESPACES)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _identifier(text: str) -> str:
    ident = _NOT_ID.sub("_", text).strip("_.-")[:64]
    return ident or "device"


def _under(nodes: Sequence[BrowsedNode], parent: BrowsedNode, *, direct: bool) -> list[BrowsedNode]:
    depth = len(parent.path)
    return [
        n
        for n in nodes
        if n.node_class == "variable"
        and n.path[:depth] == parent.path
        and (len(n.path) == depth + 1 or not direct)
    ]


def _checkweigher(
    obj: BrowsedNode, variables: Sequence[BrowsedNode], source: str
) -> DeviceFragment:
    device = DeviceFragment(_identifier(obj.path[-1]).lower(), "checkweigher", source)
    taken: set[str] = set()
    for var in variables:
        signal = _SIGNALS.get(_key(var.path[-1]))
        if signal is None or signal in taken:
            continue
        if var.data_type not in _SCALAR:
            device.notes.append(
                f"{'.'.join(var.path)} ({var.node_id}) looks like the {signal} but is a "
                f"{var.data_type or 'non-scalar'} value; Lineside reads numbers: map a "
                "numeric variable the server offers for it"
            )
            continue
        taken.add(signal)
        device.tags.append((signal, var))
    if "pack_counter" not in taken and "label_sequence" not in taken:
        device.notes.append("no pack counter found: add the variable that moves once per pack")
    if "net_weight" not in taken and not {"gross_weight", "tare"} <= taken:
        device.notes.append("no net weight found: add net_weight (or gross_weight and tare)")
    return device


def find_devices(nodes: Sequence[BrowsedNode]) -> list[DeviceFragment]:
    """The devices recognisable among ``nodes`` (see the module docstring)."""
    devices: list[DeviceFragment] = []
    claimed: set[str] = set()
    objects = [n for n in nodes if n.node_class == "object"]
    weighing = [o for o in objects if is_weighing_type(o)]
    # Outermost OPC 40200 objects only: a WeighingItemType inside a CheckweigherType is a
    # part of that checkweigher, not another device.
    outer = [
        o
        for o in weighing
        if not any(p.path == o.path[: len(p.path)] for p in weighing if p is not o)
    ]
    for obj in outer:
        device = _checkweigher(obj, _under(nodes, obj, direct=False), f"OPC 40200 {obj.type_name}")
        devices.append(device)
        claimed.update(v.node_id for _, v in device.tags)
    for obj in objects:
        if any(obj.path[: len(o.path)] == o.path for o in outer):
            continue
        own = _under(nodes, obj, direct=True)
        signals = {_SIGNALS.get(_key(v.path[-1])) for v in own}
        if {"pack_counter", "label_sequence"} & signals and "net_weight" in signals:
            device = _checkweigher(obj, own, "variable names")
            devices.append(device)
            claimed.update(v.node_id for _, v in device.tags)
            continue
        scans = [v for v in own if _key(v.path[-1]) in _BARCODES and v.data_type == "String"]
        if scans:
            scanner = DeviceFragment(_identifier(obj.path[-1]).lower(), "label_scanner", "names")
            scanner.tags.append(("barcode", scans[0]))
            devices.append(scanner)
            claimed.add(scans[0].node_id)
    temperatures = [
        n
        for n in nodes
        if n.node_class == "variable"
        and n.node_id not in claimed
        and (unit := from_common_code(n.unit)) is not None
        and unit.quantity == "temperature"
        and n.data_type in _SCALAR
    ]
    if temperatures:
        probes = DeviceFragment("probes", "temperature_probe", "EngineeringUnits")
        names: set[str] = set()
        for var in temperatures:
            name = _identifier(var.path[-2] if len(var.path) > 1 else var.path[-1])
            while name in names:
                name = _identifier(f"{name}_{len(names)}")
            names.add(name)
            probes.tags.append((name, var))
        devices.append(probes)
    return devices


def _unit_key(signal: str, role: str, var: BrowsedNode) -> str:
    """``, unit = "kg"`` when the server's unit is not the rule's, else ""."""
    unit = from_common_code(var.unit)
    if unit is None or (role == "checkweigher" and signal not in _WEIGHTS):
        return ""
    rule = GRAM if unit.quantity == "mass" else CELSIUS
    return "" if unit.name == rule else f', unit = "{unit.name}"'


# Control and format characters (escape sequences, bidi overrides, line separators): a
# browse name or node id is the server's text, and must neither drive the terminal nor
# end a TOML comment or string early.
_UNSAFE: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def _shown(text: str) -> str:
    """Text for a listing line or a TOML comment: unsafe characters as ``\\xNN`` escapes."""
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _UNSAFE else ch for ch in text)


def _toml(text: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's, but JSON leaves DEL, C1 and format
    characters raw; TOML refuses DEL and the terminal would act on the others."""
    return "".join(
        (f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        if unicodedata.category(ch) in _UNSAFE
        else ch
        for ch in json.dumps(text, ensure_ascii=False)
    )


def format_fragments(devices: Iterable[DeviceFragment], endpoint: str, line: str) -> str:
    """The ``[[devices]]`` blocks, ready to paste after the ``[[lines]]`` of a config."""
    blocks = []
    for device in devices:
        lines = [_shown(f"# {device.role} recognised by {device.source}")]
        lines += [_shown(f"# NOTE: {note}") for note in device.notes]
        lines += [
            "[[devices]]",
            f"id = {_toml(device.device_id)}",
            'kind = "opcua"',
            f"line = {_toml(line)}",
            f'role = "{device.role}"',
            f"endpoint = {_toml(endpoint)}",
            "",
            "[[devices.groups]]",
            'name = "main"',
            "tags = [",
        ]
        for signal, var in device.tags:
            unit = _unit_key(signal, device.role, var)
            shown = f"  # {'.'.join(var.path)}, {var.data_type}"
            if var.unit_name or var.unit:
                shown += f", {var.unit_name or var.unit}"
            lines.append(_shown(shown))
            lines.append(f"  {{ name = {_toml(signal)}, node = {_toml(var.node_id)}{unit} }},")
        lines.append("]")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def format_listing(nodes: Sequence[BrowsedNode], *, truncated: bool) -> str:
    """One line per variable (node id, path, data type, unit) and per OPC 40200 object."""
    out = []
    for node in nodes:
        path = ".".join(node.path)
        if node.node_class == "object":
            if is_weighing_type(node):
                out.append(f"{path}  [OPC 40200 {node.type_name}]  {node.node_id}")
            continue
        unit = f"  [{node.unit_name or node.unit}]" if node.unit or node.unit_name else ""
        out.append(f"{path}  {node.data_type}{unit}  {node.node_id}")
    out = [_shown(line) for line in out]
    if truncated:
        out.append("... (stopped at --max-nodes; browse a deeper --depth or a larger limit)")
    return "\n".join(out)


def browse_json(
    nodes: Sequence[BrowsedNode],
    devices: Sequence[DeviceFragment],
    endpoint: str,
    line: str,
    *,
    truncated: bool,
) -> str:
    """Everything as one JSON document, for programs."""
    return json.dumps(
        {
            "endpoint": endpoint,
            "truncated": truncated,
            "nodes": [asdict(n) | {"path": list(n.path)} for n in nodes],
            "devices": [
                {
                    "id": d.device_id,
                    "role": d.role,
                    "source": d.source,
                    "tags": [{"name": s, "node": v.node_id} for s, v in d.tags],
                    "notes": d.notes,
                }
                for d in devices
            ],
            "fragment": format_fragments(devices, endpoint, line),
        },
        # ASCII only: the server's names may hold C1 controls and bidi overrides, which
        # JSON leaves raw otherwise and the terminal would act on.
        ensure_ascii=True,
    )
