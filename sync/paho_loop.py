"""Stopping paho's network thread safely.

paho's ``loop_stop`` checks ``client._thread`` and then joins it, while the network thread
itself sets ``_thread`` to None as it ends (``_thread_main``'s ``finally``). After a
``disconnect()`` the thread can end between the check and the join, and ``loop_stop``
raises ``AttributeError: 'NoneType' object has no attribute 'join'`` (seen when the demo
stopped on a busy machine). The thread has then ended, which is all a caller waits for.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt


def stop_network_loop(client: mqtt.Client) -> None:
    """``client.loop_stop()``, where a network thread that ended by itself meanwhile counts
    as stopped."""
    try:
        client.loop_stop()
    except AttributeError:
        if getattr(client, "_thread", None) is not None:
            raise  # not the race above: a real fault
