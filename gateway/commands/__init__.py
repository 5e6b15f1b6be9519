"""The ``lineside`` sub-commands, one module per group; gateway/cli.py assembles the parser.

* :mod:`.common`: exit codes, :class:`~.common.CommandFailed`, the config, the control socket;
* :mod:`.service`: ``run``, ``check-config``, ``doctor``;
* :mod:`.simulation`: ``simulate``, ``demo``;
* :mod:`.operator`: ``run-start``, ``run-end``, ``alerts``, ``ack``, ``shelve``,
  ``line-mode``, ``tui``;
* :mod:`.dead_letter`: ``dead-letter list|show|requeue``;
* :mod:`.erp`: ``erp-sync``, ``erp-check``;
* :mod:`.reports`: ``shelf-life``, ``report``, ``reconcile``;
* :mod:`.ingest`: ``ingest``, ``ingest-token``.

``modbus-probe`` and ``browse`` add themselves (gateway/modbus_probe.py,
gateway/opcua_browse.py).
"""
