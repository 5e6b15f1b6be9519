"""What paho's return codes mean, in the words of a log line (docs/operations-logs.md).

``client.publish`` answers with an :class:`MQTTErrorCode`; logged bare it reads
"not accepted by paho: 15", which tells nobody that 15 is a full outgoing queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from paho.mqtt.client import error_string
from paho.mqtt.enums import MQTTErrorCode

from sync.protocol import seq_ranges

__all__ = ["describe_rc", "seq_text"]

# Why the codes a publish can return happen, and so what the operator can do about them.
_WHY: Final[dict[MQTTErrorCode, str]] = {
    MQTTErrorCode.MQTT_ERR_QUEUE_SIZE: "paho's outgoing queue is full (the broker is slow "
    "or the link is down)",
    MQTTErrorCode.MQTT_ERR_NO_CONN: "not connected to the broker",
    MQTTErrorCode.MQTT_ERR_PAYLOAD_SIZE: "the payload is larger than MQTT allows",
    MQTTErrorCode.MQTT_ERR_CONN_LOST: "the connection to the broker was lost",
}


def describe_rc(rc: MQTTErrorCode | int) -> str:
    """``rc 15 MQTT_ERR_QUEUE_SIZE: Message queue full (paho's outgoing queue is full ...)``."""
    try:
        code = MQTTErrorCode(int(rc))
    except ValueError:
        return f"rc {int(rc)} (unknown to paho)"
    text = f"rc {code.value} {code.name}: {error_string(code).rstrip('.')}"
    why = _WHY.get(code)
    return f"{text} ({why})" if why else text


def seq_text(seqs: Sequence[int]) -> str:
    """Sequence numbers as ranges: ``1-40, 42``."""
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in seq_ranges(seqs))
