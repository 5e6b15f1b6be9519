"""OPC UA device adapter (asyncua): subscribe or poll tags, hand records to the store.

asyncua never leaks out of this package: its errors are translated into
:mod:`gateway.core.errors` classes in :mod:`adapters.opcua.status`. The design (one client per
session, teardown, exactly-once subscriptions, checkweigher consistency, security) is
described in :mod:`adapters.opcua.client` and :mod:`adapters.opcua.security`.
"""

from __future__ import annotations

from adapters.opcua.client import OpcUaAdapter

__all__ = ["OpcUaAdapter"]
