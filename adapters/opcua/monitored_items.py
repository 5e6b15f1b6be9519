"""The monitored items of an OPC UA subscription: the request for one item and the data
change filter that decides which of its writes the server reports (pure)."""

from __future__ import annotations

from asyncua import ua
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds

from gateway.config import OpcUaTagGroup


def item_request(
    group: OpcUaTagGroup, node: Node, handle: int, data_filter: ua.DataChangeFilter | None
) -> ua.MonitoredItemCreateRequest:
    """The request for one monitored item of ``group`` on ``node`` (OPC 10000-4 §5.12.2)."""
    read = ua.ReadValueId()
    read.NodeId = node.nodeid
    read.AttributeId = AttributeIds.Value
    parameters = ua.MonitoringParameters()
    parameters.ClientHandle = handle
    parameters.SamplingInterval = float(group.sampling_interval_ms)
    parameters.QueueSize = group.queue_size
    parameters.DiscardOldest = True
    if data_filter is not None:
        parameters.Filter = data_filter
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = read
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = parameters
    return request


def data_change_filter(
    group: OpcUaTagGroup, *, counter: bool, every_write: bool, pack_value: bool
) -> ua.DataChangeFilter | None:
    """OPC 10000-4 §7.22.2 DataChangeFilter for one item, or None for the default.

    ``counter``: the item is a pack counter; ``every_write``: report every write of the
    item (a scanner); ``pack_value``: the item is a checkweigher's value of a pack.
    """
    deadband = {
        "none": None,
        "absolute": ua.DeadbandType.Absolute,
        "percent": ua.DeadbandType.Percent,  # needs an EURange on the server (Part 8)
    }[group.deadband]
    if counter:
        deadband = None  # a deadband of 1 or more would swallow packs
    # A scanner may read the same label twice; StatusValueTimestamp reports a write of
    # an unchanged value too (its source timestamp changes). A checkweigher's pack
    # values likewise: two packs in a row are often both accepted, and only the
    # second write's notification shows a value was written for that pack (packs.py).
    every_write = every_write or (pack_value and deadband is None)
    if deadband is None and not every_write:
        return None  # the server's default trigger, StatusValue
    data_filter = ua.DataChangeFilter()
    data_filter.Trigger = (
        ua.DataChangeTrigger.StatusValueTimestamp
        if every_write
        else ua.DataChangeTrigger.StatusValue
    )
    data_filter.DeadbandType = deadband if deadband is not None else ua.DeadbandType.None_
    data_filter.DeadbandValue = group.deadband_value if deadband is not None else 0.0
    return data_filter
